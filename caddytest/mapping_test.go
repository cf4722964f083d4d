package caddytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUpstreamReplyMapping drives one gateway against an upstream whose
// answer is chosen per request (by merchantBizNo) and checks the README's
// upstream table ("The upstream contract").
func TestUpstreamReplyMapping(t *testing.T) {
	var replies sync.Map // merchantBizNo -> func(http.ResponseWriter)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct{ MerchantBizNo string }
		_ = json.Unmarshal(body, &req)
		reply, ok := replies.Load(req.MerchantBizNo)
		if !ok {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("X-Upstream-Secret", "leak")
		w.Header().Set("Set-Cookie", "session=leak")
		reply.(func(http.ResponseWriter))(w)
	})
	in := gateway{upstream: up.addr(), options: "map_status 418 ORDER_STATUS_INVALID\n\t\t\tmap_status 5xx UN_SUPPORT_BUSINESS\n\t\t\tupstream_timeout 1s"}.start(t)

	status := func(code int, body string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}
	}
	cases := []struct {
		name, code, letter string
		reply              func(http.ResponseWriter)
		check              func(t *testing.T, a answer)
	}{
		{"alipay shape", "SUCCESS", "S", status(200, alipaySuccess), func(t *testing.T, a answer) {
			if string(a.env.DistributeResult) != `[{"sceneCode":"PASS","extInfo":{"benefitId":"B-1","detailLink":"alipayhk://x"}}]` {
				t.Errorf("distributeResult = %s", a.env.DistributeResult)
			}
		}},
		{"flat shape", "SUCCESS", "S", status(201, `{"orderId":"O-2","benefitId":"BEN","detailLink":"alipayhk://d","sceneCode":"PASS"}`), func(t *testing.T, a answer) {
			if a.env.OrderID != "O-2" {
				t.Errorf("orderId = %q", a.env.OrderID)
			}
			for _, want := range []string{`"sceneCode":"PASS"`, `"benefitId":"BEN"`, `"detailLink":"alipayhk://d"`} {
				if !strings.Contains(string(a.env.DistributeResult), want) {
					t.Errorf("distributeResult %s lacks %s", a.env.DistributeResult, want)
				}
			}
		}},
		{"flat shape partial", "SUCCESS", "S", status(200, `{"orderId":"O-3","benefitId":"BEN"}`), func(t *testing.T, a answer) {
			if string(a.env.DistributeResult) != `[{"extInfo":{"benefitId":"BEN"}}]` {
				t.Errorf("distributeResult = %s", a.env.DistributeResult)
			}
		}},
		{"2xx without orderId", "UNKNOWN_EXCEPTION", "U", status(200, `{"distributeResult":[]}`), nil},
		{"2xx not json", "UNKNOWN_EXCEPTION", "U", status(200, `<html>ok</html>`), nil},
		{"2xx empty", "UNKNOWN_EXCEPTION", "U", status(204, ``), nil},
		{"resultCode passthrough on 200", "ORDER_STATUS_INVALID", "F", status(200, `{"resultCode":"ORDER_STATUS_INVALID","resultMessage":"orderStatus: already used"}`), func(t *testing.T, a answer) {
			a.messageHas(t, "already used")
		}},
		{"resultCode passthrough on 500", "PARAM_ILLEGAL", "F", status(500, `{"resultCode":"PARAM_ILLEGAL","resultMessage":"extInfo.product_id: unknown campaign"}`), nil},
		{"nested result", "UN_SUPPORT_BUSINESS", "F", status(200, `{"result":{"resultCode":"UN_SUPPORT_BUSINESS","resultStatus":"F","resultMessage":"x"}}`), nil},
		{"resultCode SUCCESS without orderId", "UNKNOWN_EXCEPTION", "U", status(200, `{"resultCode":"SUCCESS"}`), nil},
		{"unknown resultCode", "UNKNOWN_EXCEPTION", "U", status(200, `{"resultCode":"WHATEVER"}`), nil},
		{"400", "PARAM_ILLEGAL", "F", status(400, `oops`), nil},
		{"422", "PARAM_ILLEGAL", "F", status(422, `{}`), nil},
		{"409 not json", "ORDER_STATUS_INVALID", "F", status(409, `conflict`), nil},
		{"404", "UN_SUPPORT_BUSINESS", "F", status(404, ``), nil},
		{"501", "UN_SUPPORT_BUSINESS", "F", status(501, ``), nil},
		{"429", "REQUEST_TRAFFIC_EXCEED_LIMIT", "U", status(429, ``), nil},
		{"403 unmapped", "UNKNOWN_EXCEPTION", "U", status(403, ``), nil},
		{"map_status 418", "ORDER_STATUS_INVALID", "F", status(418, ``), nil},
		{"map_status 5xx", "UN_SUPPORT_BUSINESS", "F", status(503, `down`), nil},
		{"oversized reply", "UNKNOWN_EXCEPTION", "U", status(200, `{"orderId":"O","pad":"`+strings.Repeat("x", 2<<20)+`"}`), nil},
		{"timeout", "UNKNOWN_EXCEPTION", "U", func(w http.ResponseWriter) { time.Sleep(3 * time.Second) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrder()
			replies.Store(o["merchantBizNo"].(string), tc.reply)
			start := time.Now()
			a := send(t, in.url(), signed(t, o.bytes())).expect(t, tc.code, tc.letter)
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("answer took %s", elapsed)
			}
			if a.header.Get("X-Upstream-Secret") != "" || a.header.Get("Set-Cookie") != "" {
				t.Error("upstream headers leaked into the envelope")
			}
			sdkVerifies(t, a, demoKeys(t).gatewayPublic)
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

func TestUnreachableUpstreamIsUnknownException(t *testing.T) {
	port := freePort(t) // nobody listens there
	in := gateway{upstream: fmt.Sprintf("127.0.0.1:%d", port)}.start(t)
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "UNKNOWN_EXCEPTION", "U")
}

// TestTimeBoundWithoutProxyTimeout: the caller gets an answer within
// upstream_timeout (plus a little) even when reverse_proxy has no timeout.
func TestTimeBoundWithoutProxyTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	in := gateway{upstream: up.addr(), options: "upstream_timeout 1s"}.start(t)
	start := time.Now()
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "UNKNOWN_EXCEPTION", "U")
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("answer took %s with upstream_timeout 1s", elapsed)
	}
}
