package caddytest

// End-to-end tests of contract promises that the other files of this
// package leave open or prove only in part: the defaults of every option,
// the directive's order without a route block, the pipeline's order, what
// is stored for replay and what is not, the normalized request's exact
// bytes, the repeatable re-send, the mapping's precedence, resultMessage
// never echoing a value, one bbolt file shared by two handlers, the end of
// a replay record's life, and the Redis store's connection options.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// scriptedUpstream answers each request by the merchantBizNo it is about:
// the reply set for it with on, else (HOLD- orders) no answer until the
// gateway gives up, else an issued SUCCESS.
type scriptedUpstream struct {
	*fakeUpstream
	replies sync.Map // merchantBizNo -> func(http.ResponseWriter)
	held    chan string
}

func newScriptedUpstream(t testing.TB) *scriptedUpstream {
	s := &scriptedUpstream{held: make(chan string, 8)}
	var n atomic.Int64
	s.fakeUpstream = newUpstream(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct{ MerchantBizNo, RequestID string }
		_ = json.Unmarshal(body, &req)
		if reply, ok := s.replies.Load(req.MerchantBizNo); ok {
			reply.(func(http.ResponseWriter))(w)
			return
		}
		if strings.HasPrefix(req.MerchantBizNo, "HOLD-") {
			s.held <- req.RequestID
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"orderId":"ORD-%d-%s","distributeResult":[{"sceneCode":"PASS"}]}`, n.Add(1), uid(6))
	})
	return s
}

// on makes the upstream answer status and body for o's order.
func (s *scriptedUpstream) on(o order, status int, body string) {
	s.replies.Store(o["merchantBizNo"].(string), func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

// issue makes the upstream issue o's order again.
func (s *scriptedUpstream) issue(o order) { s.replies.Delete(o["merchantBizNo"].(string)) }

// epochMillis is t as a Request-Time in epoch milliseconds.
func epochMillis(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }

// TestDefaultsAndDirectiveOrder (README, "Configuration"): a site without a
// route block that lists reverse_proxy first and gives alipay_order_sync
// only a client and a signing key. The directive runs before
// reverse_proxy; every option left out has its documented default: the
// bbolt file in Caddy's data directory, max_body_size 64KiB,
// request_time_window 5m, key_version 1, claim_lease 30s, idempotency_ttl
// 72h, upstream_timeout 10s.
func TestDefaultsAndDirectiveOrder(t *testing.T) {
	up := newScriptedUpstream(t)
	k := demoKeys(t)
	in := startCaddy(t, func(in *instance) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	reverse_proxy %s
	alipay_order_sync {
		client %s {
			public_key_file 1 %s
		}
		sign_responses {
			private_key_file %s
		}
	}
}
`, in.adminPort, in.port, up.addr(), testClient, k.merchantPub, k.gatewayPriv)
	}, caddyOptions{})

	o := newOrder()
	first := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	sdkVerifies(t, first, k.gatewayPublic) // keyVersion=1
	if got := up.last(t); got.method != http.MethodPost || got.path != syncPath || got.header.Get("X-Order-Sync-Scenario") != "gift_card" {
		t.Errorf("the upstream got %s %s %v: not the normalized request, so reverse_proxy ran first", got.method, got.path, got.header)
	}

	t.Run("store: bbolt in Caddy's data directory", func(t *testing.T) {
		// startCaddy sets XDG_DATA_HOME to the data dir: Caddy's is
		// <it>/caddy.
		path := filepath.Join(in.dataDir, "caddy", "alipay_order_sync", "orders.db")
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("no state at the default path %s: %v", path, err)
		}
	})

	t.Run("idempotency_ttl 72h", func(t *testing.T) {
		var v opsRequestView
		status, body := opsAdminGet(t, in, opsRequestPath(testClient, o["requestId"].(string)), &v)
		exp, err := time.Parse(time.RFC3339Nano, v.ExpiresAt)
		if status != http.StatusOK || err != nil {
			t.Fatalf("HTTP %d %s", status, body)
		}
		if d := time.Until(exp); d < 71*time.Hour || d > 72*time.Hour {
			t.Errorf("the record expires in %s, want 72h", d)
		}
	})

	t.Run("max_body_size 64KiB", func(t *testing.T) {
		pad := func(n int) []byte {
			o := newOrder()
			short := len(o.with("extInfo.pad", "").bytes())
			return o.with("extInfo.pad", strings.Repeat("x", n-short)).bytes()
		}
		if b := pad(64 << 10); len(b) != 64<<10 {
			t.Fatalf("built %d bytes", len(b))
		} else {
			send(t, in.url(), signed(t, b)).expect(t, "SUCCESS", "S")
		}
		before := up.count()
		send(t, in.url(), signed(t, pad(64<<10+1))).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "65536", "max_body_size")
		if up.count() != before {
			t.Error("a body over the default limit reached the upstream")
		}
	})

	t.Run("request_time_window 5m", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			at   time.Duration
			ok   bool
		}{{"4m ago", -4 * time.Minute, true}, {"4m ahead", 4 * time.Minute, true}, {"6m ago", -6 * time.Minute, false}, {"6m ahead", 6 * time.Minute, false}} {
			c := signed(t, newOrder().bytes())
			c.requestTime = epochMillis(time.Now().Add(tc.at))
			a := send(t, in.url(), c)
			if tc.ok {
				a.expect(t, "SUCCESS", "S")
			} else {
				a.expect(t, "INVALID_SIGNATURE", "F").messageHas(t, "Request-Time")
			}
		}
	})

	// The accepted forms: epoch milliseconds, ISO-8601 with Z or an offset,
	// with or without fractional seconds, up to 9 digits.
	t.Run("Request-Time forms", func(t *testing.T) {
		now := time.Now()
		hk, westHalf := time.FixedZone("", 8*3600), time.FixedZone("", -(5*3600+30*60))
		for _, tc := range []struct {
			rt string
			ok bool
		}{
			{epochMillis(now), true},
			{now.UTC().Format("2006-01-02T15:04:05Z"), true},
			{now.UTC().Format("2006-01-02T15:04:05.0Z"), true},
			{now.UTC().Format("2006-01-02T15:04:05.000000000Z"), true},
			{now.In(hk).Format("2006-01-02T15:04:05-07:00"), true},
			{now.In(westHalf).Format("2006-01-02T15:04:05.000000000-07:00"), true},
			{now.UTC().Format("2006-01-02T15:04:05.000000000") + "0Z", false}, // 10 digits
			{now.UTC().Format("2006-01-02T15:04:05"), false},                  // no zone
		} {
			c := signed(t, newOrder().bytes())
			c.requestTime = tc.rt
			a := send(t, in.url(), c)
			if tc.ok && a.env.Result.ResultCode != "SUCCESS" {
				t.Errorf("Request-Time %q refused: %s", tc.rt, a.body)
			}
			if !tc.ok && a.env.Result.ResultCode != "INVALID_SIGNATURE" {
				t.Errorf("Request-Time %q: %s, want INVALID_SIGNATURE", tc.rt, a.body)
			}
		}
	})

	t.Run("claim_lease 30s and upstream_timeout 10s", func(t *testing.T) {
		held := newOrder().with("merchantBizNo", "HOLD-"+uid(8))
		id := held["requestId"].(string)
		began := time.Now()
		answered := make(chan answer, 1)
		go func() {
			a, err := trySend(t, in.url(), signed(t, held.bytes()))
			if err != nil {
				t.Error(err)
			}
			answered <- a
		}()
		select {
		case <-up.held:
		case <-time.After(30 * time.Second):
			t.Fatal("the held request never reached the upstream")
		}
		var v opsRequestView
		status, body := opsAdminGet(t, in, opsRequestPath(testClient, id), &v)
		exp, err := time.Parse(time.RFC3339Nano, v.ExpiresAt)
		if status != http.StatusOK || v.State != "in_flight" || err != nil {
			t.Fatalf("the request in flight: HTTP %d %s", status, body)
		}
		// The claim was taken between began and now, for 30s.
		if lo, hi := began.Add(29*time.Second), time.Now().Add(31*time.Second); exp.Before(lo) || exp.After(hi) {
			t.Errorf("the claim expires at %s, want 30s after it was taken (between %s and %s)", exp, lo, hi)
		}
		a := <-answered
		took := time.Since(began)
		a.expect(t, "UNKNOWN_EXCEPTION", "U")
		// 10s and at most the 1s grace; the margins are for a loaded machine.
		if took < 9500*time.Millisecond || took > 16*time.Second {
			t.Errorf("the caller waited %s for an upstream that never answers, want about 10s", took)
		}
	})
}

// TestPipelineOrder (README, "What the caller gets"): a request that breaks two rules gets
// the answer of the earlier step, and a stored reply is never served to a
// request whose signature does not verify. offline answers every request.
func TestPipelineOrder(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr(), options: opsCouponScenario + "\n\t\t\tmax_body_size 2KiB"}.start(t)
	k := demoKeys(t)
	big := newOrder().with("extInfo.pad", strings.Repeat("x", 3000)).bytes()
	notJSON := []byte(`{"requestId":`)
	stale := epochMillis(time.Now().Add(-time.Hour))
	cases := []struct {
		name    string
		call    call
		code    string
		has     []string
		hasNot  []string
		comment string
	}{
		{"method before Content-Type", call{method: http.MethodPut, clientID: testClient, body: newOrder().bytes(), key: k.merchant, contentType: "text/plain"},
			"METHOD_NOT_SUPPORTED", []string{"method"}, nil, ""},
		{"Content-Type before body size", call{clientID: testClient, body: big, key: k.merchant, contentType: "text/plain"},
			"MEDIA_TYPE_NOT_ACCEPTABLE", []string{"Content-Type"}, nil, ""},
		{"body size before signature", call{clientID: "NOBODY", body: big},
			"PARAM_ILLEGAL", []string{"max_body_size"}, nil, ""},
		{"Client-Id before the body is read as JSON", call{clientID: "NOBODY", body: notJSON, key: k.merchant},
			"INVALID_CLIENT", []string{"Client-Id"}, nil, ""},
		{"key version before verification", call{clientID: testClient, body: notJSON, key: k.gateway, keyVersion: "7"},
			"KEY_NOT_FOUND", []string{"keyVersion"}, nil, ""},
		{"verification before the Request-Time window", call{clientID: testClient, body: notJSON, key: k.gateway, requestTime: stale},
			"INVALID_SIGNATURE", []string{"Signature"}, []string{"Request-Time"}, ""},
		{"Request-Time window before JSON decode", call{clientID: testClient, body: notJSON, key: k.merchant, requestTime: stale},
			"INVALID_SIGNATURE", []string{"Request-Time"}, nil, ""},
		{"base schema before scenario match", signed(t, newOrder().with("extInfo", nil).with("merchantBizType", "NOTHING").bytes()),
			"PARAM_ILLEGAL", []string{"extInfo"}, nil, ""},
		{"scenario match before scenario schema", signed(t, newOrder().with("merchantBizType", "NOTHING").with("extInfo.product_id", nil).bytes()),
			"UN_SUPPORT_BUSINESS", []string{"merchantBizType"}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, in.url(), tc.call).expect(t, tc.code, "F").messageHas(t, tc.has...)
			for _, s := range tc.hasNot {
				if strings.Contains(a.env.Result.ResultMessage, s) {
					t.Errorf("resultMessage %q names %s: a later step answered", a.env.Result.ResultMessage, s)
				}
			}
		})
	}

	t.Run("a chunked body over max_body_size", func(t *testing.T) {
		c := signed(t, big)
		head := rawRequest(t, in, c, "")
		// The same request, its body sent chunked without a length.
		head = bytes.Replace(head, []byte(fmt.Sprintf("Content-Length: %d\r\n", len(big))), []byte("Transfer-Encoding: chunked\r\n"), 1)
		head = head[:len(head)-len(big)]
		var chunked bytes.Buffer
		for rest := big; len(rest) > 0; {
			n := min(len(rest), 512)
			fmt.Fprintf(&chunked, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		chunked.WriteString("0\r\n\r\n")
		calls := up.count()
		a := rawExchange(t, in, append(head, chunked.Bytes()...))
		if a.env.Result.ResultCode != "PARAM_ILLEGAL" || !strings.Contains(a.env.Result.ResultMessage, "max_body_size") {
			t.Errorf("got %s", a.body)
		}
		if up.count() != calls {
			t.Error("the upstream was called")
		}
	})

	t.Run("scenario schema before the replay check", func(t *testing.T) {
		o := newOrder()
		send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
		send(t, in.url(), signed(t, o.with("extInfo.product_id", nil).bytes())).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "extInfo.product_id")
	})

	t.Run("replay check before the transition check", func(t *testing.T) {
		o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
		ticketed := o.next("TICKETED", 1000)
		send(t, in.url(), signed(t, ticketed.bytes())).expect(t, "SUCCESS", "S")
		send(t, in.url(), signed(t, o.next("USED", 2000).bytes())).expect(t, "SUCCESS", "S")
		// Its requestId again with another body, which is also a change
		// back: the reuse answers.
		reused := ticketed.with("orderModifyTime", 3000)
		send(t, in.url(), signed(t, reused.bytes())).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "requestId")
	})

	t.Run("a stored reply is never served to a request that does not verify", func(t *testing.T) {
		body := newOrder().bytes()
		send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
		calls := up.count()
		wrongKey := signed(t, body)
		wrongKey.key = k.gateway
		send(t, in.url(), wrongKey).expect(t, "INVALID_SIGNATURE", "F")
		staleCall := signed(t, body)
		staleCall.requestTime = stale
		send(t, in.url(), staleCall).expect(t, "INVALID_SIGNATURE", "F")
		stranger := signed(t, body)
		stranger.clientID = "NOBODY"
		send(t, in.url(), stranger).expect(t, "INVALID_CLIENT", "F")
		if up.count() != calls {
			t.Error("the upstream was called")
		}
	})

	t.Run("offline answers every request", func(t *testing.T) {
		off := gateway{upstream: up.addr(), options: "offline"}.start(t)
		calls := up.count()
		for _, c := range []call{
			signed(t, newOrder().bytes()),
			{method: http.MethodGet, clientID: testClient},
			{clientID: "NOBODY", body: notJSON, contentType: "text/plain"},
		} {
			send(t, off.url(), c).expect(t, "UN_SUPPORT_BUSINESS", "F")
		}
		if up.count() != calls {
			t.Error("the upstream was called while offline")
		}
	})
}

// TestWhatIsStoredForReplay (README, "Order state and replays"): answers given
// before the claim are not stored, so a corrected body under the same
// requestId is processed; an F from the upstream or from the state machine
// is stored and replayed byte for byte, and the requestId with another
// body is PARAM_ILLEGAL; a U, whatever produced it, is not stored.
func TestWhatIsStoredForReplay(t *testing.T) {
	up := newScriptedUpstream(t)
	in := gateway{upstream: up.addr(), options: opsCouponScenario}.start(t)

	t.Run("refusals before the claim are not stored", func(t *testing.T) {
		for _, broken := range []struct {
			name string
			edit func(order) order
			code string
		}{
			{"schema", func(o order) order { return o.with("extInfo.product_id", nil) }, "PARAM_ILLEGAL"},
			{"no scenario", func(o order) order { return o.with("merchantBizType", "NOTHING") }, "UN_SUPPORT_BUSINESS"},
			{"status not of the scenario", func(o order) order { return o.with("orderStatus", "USED") }, "PARAM_ILLEGAL"},
		} {
			o := newOrder()
			send(t, in.url(), signed(t, broken.edit(o).bytes())).expect(t, broken.code, "F")
			send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
		}
	})

	replayed := func(t *testing.T, o order, code string) {
		t.Helper()
		first := send(t, in.url(), signed(t, o.bytes())).expect(t, code, "F")
		calls := up.count()
		again := send(t, in.url(), signed(t, o.bytes())).expect(t, code, "F")
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("replay body differs:\n%s\n%s", first.body, again.body)
		}
		for _, h := range []string{"Response-Time", "Signature", "Client-Id"} {
			if again.header.Get(h) != first.header.Get(h) {
				t.Errorf("replay %s %q, first %q", h, again.header.Get(h), first.header.Get(h))
			}
		}
		if up.count() != calls {
			t.Error("the replay called the upstream")
		}
		other := o.with("tradeNo", "another-"+uid(4))
		send(t, in.url(), signed(t, other.bytes())).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "requestId", "different body")
		if up.count() != calls {
			t.Error("the reused requestId called the upstream")
		}
	}

	t.Run("F from the upstream is stored", func(t *testing.T) {
		o := newOrder()
		up.on(o, http.StatusBadRequest, `{"resultMessage":"no"}`)
		replayed(t, o, "PARAM_ILLEGAL")
		o2 := newOrder()
		up.on(o2, http.StatusOK, `{"resultCode":"ORDER_STATUS_INVALID","resultMessage":"orderStatus: already used"}`)
		replayed(t, o2, "ORDER_STATUS_INVALID")
	})

	t.Run("F from the state machine is stored", func(t *testing.T) {
		o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
		send(t, in.url(), signed(t, o.next("USED", 2000).bytes())).expect(t, "SUCCESS", "S")
		replayed(t, o.next("TICKETED", 3000), "ORDER_STATUS_INVALID")
	})

	t.Run("U is never stored", func(t *testing.T) {
		for _, u := range []struct {
			name, body, code string
			status           int
		}{
			{"HTTP 429", ``, "REQUEST_TRAFFIC_EXCEED_LIMIT", http.StatusTooManyRequests},
			{"resultCode REQUEST_TRAFFIC_EXCEED_LIMIT", `{"resultCode":"REQUEST_TRAFFIC_EXCEED_LIMIT","resultMessage":"slow down"}`, "REQUEST_TRAFFIC_EXCEED_LIMIT", http.StatusOK},
			{"resultCode UNKNOWN_EXCEPTION", `{"resultCode":"UNKNOWN_EXCEPTION","resultMessage":"later"}`, "UNKNOWN_EXCEPTION", http.StatusOK},
			{"HTTP 500", `oops`, "UNKNOWN_EXCEPTION", http.StatusInternalServerError},
		} {
			t.Run(u.name, func(t *testing.T) {
				o := newOrder()
				up.on(o, u.status, u.body)
				send(t, in.url(), signed(t, o.bytes())).expect(t, u.code, "U")
				up.issue(o)
				calls := up.count()
				send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
				if up.count() != calls+1 {
					t.Error("the retry after a U was not processed afresh")
				}
			})
		}
	})
}

// TestUpstreamReplyPrecedence (README, "The upstream contract"): a known resultCode
// wins over map_status; a numeric orderId is an orderId; distributeResult
// reaches the caller as the upstream's array, its literals and escapes
// unchanged.
func TestUpstreamReplyPrecedence(t *testing.T) {
	up := newScriptedUpstream(t)
	in := gateway{upstream: up.addr(), options: "map_status 500 PARAM_ILLEGAL\n\t\t\tmap_status 2xx UN_SUPPORT_BUSINESS"}.start(t)

	t.Run("resultCode before map_status", func(t *testing.T) {
		o := newOrder()
		up.on(o, http.StatusInternalServerError, `{"resultCode":"ORDER_STATUS_INVALID","resultMessage":"orderStatus: no"}`)
		send(t, in.url(), signed(t, o.bytes())).expect(t, "ORDER_STATUS_INVALID", "F")
		o2 := newOrder()
		up.on(o2, http.StatusInternalServerError, `{"result":{"resultCode":"UN_SUPPORT_BUSINESS","resultStatus":"F","resultMessage":"x"}}`)
		send(t, in.url(), signed(t, o2.bytes())).expect(t, "UN_SUPPORT_BUSINESS", "F")
		o3 := newOrder()
		up.on(o3, http.StatusInternalServerError, `down`)
		send(t, in.url(), signed(t, o3.bytes())).expect(t, "PARAM_ILLEGAL", "F")
	})

	t.Run("2xx with orderId before map_status", func(t *testing.T) {
		o := newOrder()
		up.on(o, http.StatusOK, `{"orderId":"O-1","distributeResult":[]}`)
		send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	})

	t.Run("flat form", func(t *testing.T) {
		for _, tc := range []struct{ reply, want string }{
			{`{"detailLink":"alipayhk://d","orderId":"O-3","benefitId":"BEN","sceneCode":"PASS"}`,
				`[{"sceneCode":"PASS","extInfo":{"benefitId":"BEN","detailLink":"alipayhk://d"}}]`},
			{`{"orderId":"O-4","detailLink":"alipayhk://d"}`, `[{"extInfo":{"detailLink":"alipayhk://d"}}]`},
			{`{"orderId":"O-5","sceneCode":"PASS"}`, `[{"sceneCode":"PASS"}]`},
		} {
			o := newOrder()
			up.on(o, http.StatusOK, tc.reply)
			a := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
			if string(a.env.DistributeResult) != tc.want {
				t.Errorf("flat %s\n got distributeResult %s\nwant %s", tc.reply, a.env.DistributeResult, tc.want)
			}
		}
	})

	t.Run("numeric orderId", func(t *testing.T) {
		o := newOrder()
		up.on(o, http.StatusOK, `{"orderId":2220100101001,"distributeResult":[{"sceneCode":"PASS"}]}`)
		a := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
		if a.env.OrderID != "2220100101001" || !strings.Contains(string(a.body), `"orderId":"2220100101001"`) {
			t.Errorf("orderId in %s, want the string 2220100101001", a.body)
		}
	})

	t.Run("distributeResult unchanged", func(t *testing.T) {
		const dr = `[{"sceneCode":"PASS","extInfo":{"n":1.50,"e":1e3,"big":123456789012345678901234567890,"u":"\u00e9","s":"a\/b","z":null,"l":[true,{}]}},{"sceneCode":"SECOND"}]`
		o := newOrder()
		up.on(o, http.StatusOK, `{"orderId":"O-2","distributeResult":`+dr+`}`)
		a := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
		if string(a.env.DistributeResult) != dr {
			t.Errorf("distributeResult\n got %s\nwant %s", a.env.DistributeResult, dr)
		}
		if a.env.OrderStatus != "TICKETED" {
			t.Errorf("orderStatus %q, want the request's", a.env.OrderStatus)
		}
	})
}

// TestNormalizedRequestBytes (README, "The upstream contract"): the exact
// body the upstream gets for a request with no merchantId, no userId, no
// amounts, times on a whole second, and an extInfo full of whitespace,
// escapes and literals that a re-encoder would change; sent as the Go SDK
// sends it. Then extInfo {} as {}, and previousStatus on the next sync.
func TestNormalizedRequestBytes(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr(), options: opsCouponScenario}.start(t)

	const extInfo = "{ \"benefit_issue_mode\" : \"SALE\",\n\t\"product_id\":\"P\\u00e9-1\", \"n\": 1.50, \"e\": 1E3,\n \"big\": 123456789012345678901234567890, \"nested\": {\"a\": [1, {}, null]}, \"s\": \"a\\/b \\\"q\\\"\" }"
	id, biz := uid(32), "GC-"+uid(16)
	body := []byte(`{"requestId":"` + id + `","merchantBizNo":"` + biz + `","orderStatus":"TICKETED","openId":"OPEN-1","merchantBizType":"ALIPAY_COUPON",` +
		`"orderCreateTime":1740385506000,"orderModifyTime":1742977506001,"extInfo":` + extInfo + `}`)
	if !json.Valid(body) {
		t.Fatalf("test body is not JSON: %s", body)
	}
	// The Go SDK's request: Content-Type twice, Key-Version, an empty
	// agent-token, its User-Agent and SDK-VERSION.
	a := rawExchange(t, in, rawRequest(t, in, signed(t, body), "",
		rawHeader{"Content-Type", "application/json; charset=UTF-8"},
		rawHeader{"Key-Version", "1"}, rawHeader{"agent-token", ""},
		rawHeader{"User-Agent", "global-open-sdk-go"}, rawHeader{"SDK-VERSION", "1.3.5"}))
	if a.env.Result.ResultCode != "SUCCESS" {
		t.Fatalf("the SDK's request got %s", a.body)
	}
	want := `{"requestId":"` + id + `","clientId":"` + testClient + `","scenario":"gift_card","merchantId":"","merchantBizNo":"` + biz +
		`","merchantBizType":"ALIPAY_COUPON","orderStatus":"TICKETED","previousStatus":"","userId":"","openId":"OPEN-1","tradeNo":"",` +
		`"orderCreateTime":"2025-02-24T08:25:06.000Z","orderModifyTime":"2025-03-26T08:25:06.001Z","extInfo":` + extInfo + `}`
	got := up.last(t)
	if string(got.body) != want {
		t.Errorf("upstream body\n got %s\nwant %s", got.body, want)
	}
	if got.header.Get("Content-Type") != "application/json" || got.header.Get("User-Agent") != "global-open-sdk-go" {
		t.Errorf("upstream headers %v", got.header)
	}

	coupon := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
	send(t, in.url(), signed(t, coupon.next("TICKETED", 1000).bytes())).expect(t, "SUCCESS", "S")
	first := up.last(t)
	if !bytes.HasSuffix(first.body, []byte(`,"extInfo":{}}`)) || !bytes.Contains(first.body, []byte(`"previousStatus":""`)) {
		t.Errorf("first sync of an order with extInfo {}: %s", first.body)
	}
	send(t, in.url(), signed(t, coupon.next("USED", 2000).bytes())).expect(t, "SUCCESS", "S")
	second := up.last(t)
	if !bytes.Contains(second.body, []byte(`"previousStatus":"TICKETED"`)) || !bytes.Contains(second.body, []byte(`"orderModifyTime":"1970-01-01T00:00:02.000Z"`)) {
		t.Errorf("second sync: %s", second.body)
	}
	for _, r := range []received{first, second} {
		if r.header.Get("X-Order-Sync-Client-Id") != testClient || r.header.Get("X-Order-Sync-Scenario") != "coupon_with_code" {
			t.Errorf("X-Order-Sync-* headers %v", r.header)
		}
	}
}

// TestRepeatableResend (README, "Scenarios and their state machines"): a repeatable status re-sent
// with an equal or newer orderModifyTime is forwarded again, an older one
// is refused; a status that is not repeatable, re-sent with an equal time,
// is the stored SUCCESS without the upstream.
func TestRepeatableResend(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr(), options: allScenarios}.start(t)
	queue := newOrder().with("merchantBizType", "QUEUE").with("extInfo", map[string]any{})
	runSteps(t, in, up, queue, []step{
		{"CALL_NUM", 1000, "SUCCESS", true},
		{"CALL_NUM", 1000, "SUCCESS", true},
		{"CALL_NUM", 2000, "SUCCESS", true},
		{"CALL_NUM", 1999, "ORDER_STATUS_INVALID", false},
	})
	coupon := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
	runSteps(t, in, up, coupon, []step{
		{"TICKETED", 1000, "SUCCESS", true},
		{"TICKETED", 1000, "SUCCESS", false},
		{"TICKETED", 999, "ORDER_STATUS_INVALID", false},
	})
}

// TestResultMessageNamesTheFieldNeverTheValue (README, "What the caller gets"): for each
// kind of bad input the message names the field or header and never
// carries the offending value. The keys are given inline through {env.*},
// in the one-line base64 forms of the SDKs (SPKI, PKCS#8).
func TestResultMessageNamesTheFieldNeverTheValue(t *testing.T) {
	up := issuingUpstream(t)
	k := demoKeys(t)
	spki, err := x509.MarshalPKIXPublicKey(&k.merchant.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.gateway)
	if err != nil {
		t.Fatal(err)
	}
	in := startCaddy(t, func(in *instance) string {
		body := fmt.Sprintf("\t\t\tclient %s {\n\t\t\t\tpublic_key 1 {env.AUDIT_MERCHANT_PUBLIC}\n\t\t\t\tmerchants 2160120041113167\n\t\t\t}\n"+
			"\t\t\tsign_responses {\n\t\t\t\tprivate_key {env.AUDIT_GATEWAY_PRIVATE}\n\t\t\t}\n\t\t\tstore bbolt %s",
			testClient, filepath.Join(in.dataDir, "orders.db"))
		return routeCaddyfile(in, body, up.addr(), "")
	}, caddyOptions{env: []string{
		"AUDIT_MERCHANT_PUBLIC=" + base64.StdEncoding.EncodeToString(spki),
		"AUDIT_GATEWAY_PRIVATE=" + base64.StdEncoding.EncodeToString(pkcs8),
	}})
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "SUCCESS", "S")
	calls := up.count()
	const v = "Zq7Sentinel" // the offending part of every value below
	o := newOrder()
	cases := []struct {
		name  string
		call  call
		code  string
		field string
	}{
		{"currency", signed(t, o.with("amount", map[string]any{"value": "1", "currency": v}).bytes()), "PARAM_ILLEGAL", "amount.currency"},
		{"amount value", signed(t, o.with("amount", map[string]any{"value": v, "currency": "HKD"}).bytes()), "PARAM_ILLEGAL", "amount.value"},
		{"requestId too long", signed(t, o.with("requestId", v+strings.Repeat("9", 30)).bytes()), "PARAM_ILLEGAL", "requestId"},
		{"requestId not a string", signed(t, o.with("requestId", map[string]any{"x": v}).bytes()), "PARAM_ILLEGAL", "requestId"},
		{"orderStatus unknown", signed(t, o.with("orderStatus", v).bytes()), "PARAM_ILLEGAL", "orderStatus"},
		{"orderModifyTime a string", signed(t, o.with("orderModifyTime", v).bytes()), "PARAM_ILLEGAL", "orderModifyTime"},
		{"tradeNo an object", signed(t, o.with("tradeNo", map[string]any{"x": v}).bytes()), "PARAM_ILLEGAL", "tradeNo"},
		{"product_id too long", signed(t, o.with("extInfo.product_id", v+strings.Repeat("p", 64)).bytes()), "PARAM_ILLEGAL", "extInfo.product_id"},
		{"benefit_issue_mode other", signed(t, o.with("extInfo.benefit_issue_mode", v).bytes()), "UN_SUPPORT_BUSINESS", ""},
		{"merchantBizType unknown", signed(t, o.with("merchantBizType", v).bytes()), "UN_SUPPORT_BUSINESS", "merchantBizType"},
		{"merchantId not allowed", signed(t, o.with("merchantId", "2160"+v).bytes()), "UN_SUPPORT_BUSINESS", "merchantId"},
		{"merchantId absent, with an allow-list", signed(t, o.with("merchantId", nil).bytes()), "UN_SUPPORT_BUSINESS", "merchantId"},
		{"control character", signed(t, o.with("userId", v+"\u0001").bytes()), "PARAM_ILLEGAL", "userId"},
		{"duplicate key", signed(t, []byte(strings.Replace(string(o.bytes()), `"tradeNo":`, `"tradeNo":"`+v+`","tradeNo":`, 1))), "PARAM_ILLEGAL", "tradeNo"},
		{"unknown Client-Id", call{clientID: v, body: o.bytes(), key: k.merchant}, "INVALID_CLIENT", "Client-Id"},
		{"Request-Time", call{clientID: testClient, body: o.bytes(), key: k.merchant, requestTime: v}, "INVALID_SIGNATURE", "Request-Time"},
		{"Signature value", call{clientID: testClient, body: o.bytes(), headers: map[string]string{"Signature": "algorithm=RSA256,keyVersion=1,signature=" + v + "!"}}, "INVALID_SIGNATURE", "Signature"},
		{"Content-Type", call{clientID: testClient, body: o.bytes(), key: k.merchant, contentType: "text/" + v}, "MEDIA_TYPE_NOT_ACCEPTABLE", "Content-Type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, in.url(), tc.call).expect(t, tc.code, "F")
			sdkVerifies(t, a, k.gatewayPublic)
			if tc.field != "" {
				a.messageHas(t, tc.field)
			}
			if strings.Contains(strings.ToLower(a.env.Result.ResultMessage), strings.ToLower(v)) {
				t.Errorf("resultMessage %q echoes the value", a.env.Result.ResultMessage)
			}
		})
	}
	if up.count() != calls {
		t.Errorf("the upstream was called %d times", up.count()-calls)
	}
}

// TestOneBboltFileTwoHandlers (README, "Stores and scaling out"): two alipay_order_sync
// handlers in one Caddy name the same bbolt file; their clients' orders
// with the same merchantBizNo and requestId do not collide.
func TestOneBboltFileTwoHandlers(t *testing.T) {
	up := issuingUpstream(t)
	k := demoKeys(t)
	in := startCaddy(t, func(in *instance) string {
		handler := func(client string) string {
			return fmt.Sprintf(`alipay_order_sync {
			client %s {
				public_key_file 1 %s
			}
			sign_responses {
				private_key_file %s
			}
			%s
			store bbolt %s
		}`, client, k.merchantPub, k.gatewayPriv, opsCouponScenario, filepath.Join(in.dataDir, "shared.db"))
		}
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route /a%s {
		%s
		reverse_proxy %s
	}
	route /b%s {
		%s
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, syncPath, handler("CLIENT-A"), up.addr(), syncPath, handler("CLIENT-B"), up.addr())
	}, caddyOptions{})
	base := fmt.Sprintf("http://127.0.0.1:%d", in.port)
	sendAs := func(client, prefix string, o order) answer {
		return send(t, base+prefix+syncPath, call{clientID: client, path: prefix + syncPath, body: o.bytes(), key: k.merchant})
	}
	o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
	ticketed := o.next("TICKETED", 1000)
	a := sendAs("CLIENT-A", "/a", ticketed).expect(t, "SUCCESS", "S")
	b := sendAs("CLIENT-B", "/b", ticketed).expect(t, "SUCCESS", "S")
	if a.env.OrderID == b.env.OrderID || up.count() != 2 {
		t.Errorf("one requestId of two clients: orderIds %q and %q, upstream calls %d; want two orders", a.env.OrderID, b.env.OrderID, up.count())
	}
	sendAs("CLIENT-A", "/a", o.next("USED", 2000)).expect(t, "SUCCESS", "S")
	// CLIENT-B's order is still at TICKETED: REFUNDED is a change for it.
	sendAs("CLIENT-B", "/b", o.next("REFUNDED", 2000)).expect(t, "SUCCESS", "S")
	sendAs("CLIENT-A", "/a", o.next("REFUNDED", 3000)).expect(t, "ORDER_STATUS_INVALID", "F")
	if again := sendAs("CLIENT-B", "/b", ticketed).expect(t, "SUCCESS", "S"); !bytes.Equal(again.body, b.body) {
		t.Errorf("CLIENT-B's replay differs:\n%s\n%s", again.body, b.body)
	}
	if _, err := os.Stat(filepath.Join(in.dataDir, "shared.db")); err != nil {
		t.Error(err)
	}
}

// TestReplayRecordsLiveIdempotencyTTL (README, "Order state and replays"): within idempotency_ttl
// the same bytes are a replay; after it the record is gone and the request
// is processed afresh (here: the current status again, so the stored
// SUCCESS, newly signed, without the upstream).
func TestReplayRecordsLiveIdempotencyTTL(t *testing.T) {
	up := issuingUpstream(t)
	for _, st := range []struct {
		name string
		g    func(t *testing.T) gateway
	}{
		{"bbolt", func(*testing.T) gateway { return gateway{upstream: up.addr(), options: "idempotency_ttl 2s"} }},
		{"redis", func(t *testing.T) gateway {
			g := redisGateway(up.addr(), redistest.Start(t), "ttl-"+uid(4)+":")
			g.options += "\n\t\t\tidempotency_ttl 2s"
			return g
		}},
	} {
		t.Run(st.name, func(t *testing.T) {
			in := st.g(t).start(t)
			body := newOrder().bytes()
			first := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
			calls := up.count()
			again := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
			if again.header.Get("Response-Time") != first.header.Get("Response-Time") {
				t.Fatal("within idempotency_ttl the same bytes were not a replay")
			}
			time.Sleep(3 * time.Second)
			late := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
			if late.header.Get("Response-Time") == first.header.Get("Response-Time") {
				t.Error("after idempotency_ttl the stored reply was replayed")
			}
			if late.env.OrderID != first.env.OrderID || up.count() != calls {
				t.Errorf("after idempotency_ttl: orderId %q (first %q), upstream calls %d -> %d; want the stored order, no call",
					late.env.OrderID, first.env.OrderID, calls, up.count())
			}
			sdkVerifies(t, late, demoKeys(t).gatewayPublic)
		})
	}
}

// tlsRedis is a private redis-server that speaks TLS on one port (for the
// gateway) and plain RESP on another (for the test's own look).
type tlsRedis struct {
	tlsAddr, plainAddr string
	caFile             string
}

// startTLSRedis writes a CA and a server certificate for 127.0.0.1 and
// runs redis-server with both listeners until the test ends.
func startTLSRedis(t *testing.T) tlsRedis {
	t.Helper()
	redistest.Start(t) // skips or fails exactly as the other Redis tests do when it is missing
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	r := tlsRedis{caFile: filepath.Join(dir, "ca.pem")}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(r.caFile, "CERTIFICATE", caDER)
	write(filepath.Join(dir, "server.pem"), "CERTIFICATE", srvDER)
	write(filepath.Join(dir, "server-key.pem"), "PRIVATE KEY", srvKeyDER)
	plain, tlsPort := freePort(t), freePort(t)
	r.plainAddr, r.tlsAddr = fmt.Sprintf("127.0.0.1:%d", plain), fmt.Sprintf("127.0.0.1:%d", tlsPort)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(plain), "--tls-port", fmt.Sprint(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem"),
		"--tls-ca-cert-file", r.caFile, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for redistest.Do(r.plainAddr, "PING") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// TestRedisStoreConnectionOptions (README, "Configuration", store redis): username,
// password (from {env.*}), db and tls reach the server, and keys start
// with the default key_prefix "alipay_order_sync:". The server speaks only
// TLS to the gateway and refuses every user but the configured one.
func TestRedisStoreConnectionOptions(t *testing.T) {
	r := startTLSRedis(t)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: r.plainAddr})
	defer admin.Close()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "gateway", "on", ">audit-s3cret", "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	up := issuingUpstream(t)
	g := gateway{upstream: up.addr(), store: fmt.Sprintf("store redis {\n\t\t\t\taddress %s\n\t\t\t\tusername gateway\n\t\t\t\tpassword {env.AUDIT_REDIS_PASSWORD}\n\t\t\t\tdb 3\n\t\t\t\ttls\n\t\t\t}", r.tlsAddr)}
	in := startCaddy(t, g.caddyfile, caddyOptions{env: []string{"AUDIT_REDIS_PASSWORD=audit-s3cret", "SSL_CERT_FILE=" + r.caFile}})
	o := newOrder()
	first := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	again := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	if !bytes.Equal(first.body, again.body) || again.header.Get("Response-Time") != first.header.Get("Response-Time") {
		t.Error("the replay from Redis differs")
	}

	look := func(db int) []string {
		c := redis.NewClient(&redis.Options{Addr: r.plainAddr, Username: "gateway", Password: "audit-s3cret", DB: db})
		defer c.Close()
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	keys := look(3)
	if len(keys) == 0 {
		t.Fatal("no keys in db 3")
	}
	var order, request bool
	for _, k := range keys {
		if !strings.HasPrefix(k, "alipay_order_sync:") {
			t.Errorf("key %q lacks the default prefix", k)
		}
		order = order || strings.Contains(k, o["merchantBizNo"].(string))
		request = request || strings.Contains(k, o["requestId"].(string))
	}
	if !order || !request {
		t.Errorf("keys %v: want the order's and the request's", keys)
	}
	if other := look(0); len(other) != 0 {
		t.Errorf("keys outside db 3: %v", other)
	}

	// The same config with a wrong password: the store is unavailable.
	bad := startCaddy(t, g.caddyfile, caddyOptions{env: []string{"AUDIT_REDIS_PASSWORD=wrong", "SSL_CERT_FILE=" + r.caFile}})
	send(t, bad.url(), signed(t, newOrder().bytes())).expect(t, "UNKNOWN_EXCEPTION", "U")
	storeFailed(t, bad, "WRONGPASS")
	// And without trusting the server's CA: TLS is really spoken and verified.
	untrusted := startCaddy(t, g.caddyfile, caddyOptions{env: []string{"AUDIT_REDIS_PASSWORD=audit-s3cret"}})
	send(t, untrusted.url(), signed(t, newOrder().bytes())).expect(t, "UNKNOWN_EXCEPTION", "U")
	storeFailed(t, untrusted, "certificate")
}

// storeFailed waits for the log line of a state store failure whose error
// says why.
func storeFailed(t *testing.T, in *instance, why string) {
	t.Helper()
	opsWaitForLog(t, in, "a store failure naming "+why, func(e map[string]any) bool {
		msg, _ := e["error"].(string)
		return e["msg"] == "state store failed" && strings.Contains(msg, why)
	})
}

// TestCrashMidFlightBbolt (README, "Order state and replays"): a process
// killed while the upstream holds a request leaves no claim that outlives
// claim_lease in its bbolt file; after a restart the retry is processed.
func TestCrashMidFlightBbolt(t *testing.T) {
	up := newScriptedUpstream(t)
	dataDir := t.TempDir()
	g := gateway{upstream: up.addr(), options: "upstream_timeout 2s\n\t\t\tclaim_lease 8s"}
	a := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
	held := newOrder().with("merchantBizNo", "HOLD-"+uid(8))
	go sendNoFail(t, a.url(), signed(t, held.bytes())) // its connection dies with the process
	select {
	case <-up.held:
	case <-time.After(30 * time.Second):
		t.Fatal("the held request never reached the upstream")
	}
	a.kill()

	b := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
	// The upstream issues now: the retry is processed within the lease.
	up.replies.Store(held["merchantBizNo"].(string), func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, alipaySuccess)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ans := send(t, b.url(), signed(t, held.bytes()))
		if ans.env.Result.ResultCode == "SUCCESS" {
			break
		}
		if ans.env.Result.ResultCode != "UNKNOWN_EXCEPTION" || time.Now().After(deadline) {
			t.Fatalf("the requestId is still blocked long after claim_lease: %s", ans.body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestModuleNames (README, "Install"): the binary has the handlers, store
// modules, app and admin APIs under their documented IDs, exactly the
// modules the README's list-modules block shows.
func TestModuleNames(t *testing.T) {
	out, errOut, err := opsRunCaddy(t, nil, "list-modules")
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, errOut)
	}
	var ours []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "alipay") {
			ours = append(ours, strings.TrimSpace(l))
		}
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "`list-modules` prints the seven modules of this project when they are in:\n\n```text\n"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("the README's list-modules block is gone")
	}
	block := string(readme[i+len(start):])
	block = block[:strings.Index(block, "```")]
	if got, want := strings.Join(ours, "\n")+"\n", block; got != want {
		t.Errorf("list-modules prints\n%s\nthe README shows\n%s", got, want)
	}
	for _, id := range []string{
		"http.handlers.alipay_order_sync", "http.handlers.alipay_order_push",
		"http.alipay_order_sync.stores.bbolt", "http.alipay_order_sync.stores.redis",
	} {
		if !strings.Contains(block, id+"\n") {
			t.Errorf("module %s is missing", id)
		}
	}
}
