package orderflow

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// The replay of the exact bytes (step 3b): right after authentication,
// without decoding, validating or claiming, and the same answer the claim
// would have replayed.

// TestReplayBeforeDecoding: the same bytes, signed afresh, get the stored
// reply byte for byte from one read-only lookup: no claim, no upstream
// call; the answer still says its scenario and ids for the metrics and
// the log line.
func TestReplayBeforeDecoding(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	first := h.send(o.body())
	expect(t, first, Success, "success")
	claims, calls := h.backend.count(opClaim), h.up.calls()

	again := h.send(o.body())
	expect(t, again, Success, "replay")
	if !again.Replay {
		t.Fatal("not a replay")
	}
	if ops := opNames(again); !slices.Equal(ops, []string{"lookup"}) {
		t.Errorf("store operations %v, want only the lookup", ops)
	}
	if h.backend.count(opClaim) != claims || h.up.calls() != calls {
		t.Errorf("claims %d -> %d, upstream calls %d -> %d: want neither", claims, h.backend.count(opClaim), calls, h.up.calls())
	}
	if !bytes.Equal(again.Reply.Body, first.Reply.Body) ||
		again.Reply.Header[HeaderResponseTime][0] != first.Reply.Header[HeaderResponseTime][0] ||
		again.Reply.Header[HeaderSignature][0] != first.Reply.Header[HeaderSignature][0] {
		t.Errorf("replay %s %v differs from the answer %s %v", again.Reply.Body, again.Reply.Header, first.Reply.Body, first.Reply.Header)
	}
	if again.Scenario != "coupon_with_code" || again.RequestID != o.requestID || again.MerchantBizNo != o.bizNo || !again.KnownClient {
		t.Errorf("replay answer: scenario %q, request %q, merchantBizNo %q, known client %v", again.Scenario, again.RequestID, again.MerchantBizNo, again.KnownClient)
	}
}

// TestReplayOnlyAfterAuthentication: the exact bytes of an answered
// request get no stored reply without a signature that verifies, within
// the Request-Time window, by a known key: the lookup is not even made.
func TestReplayOnlyAfterAuthentication(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	expect(t, h.send(o.body()), Success, "success")
	keys := demoKeys(t)
	for _, tc := range []struct {
		name   string
		change func(*Request)
		code   Code
	}{
		{"signed by another key", func(r *Request) {
			sig, err := signature.Sign(keys.gateway, r.Method, r.Path, testClient, r.Header.Get("Request-Time"), r.Body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Signature", signature.FormatHeader("1", sig))
		}, InvalidSignature},
		{"signed for another path", func(r *Request) { r.Path += "/x" }, InvalidSignature},
		{"Request-Time outside the window", func(r *Request) {
			rt := signature.FormatEpochMillis(time.Now().Add(-time.Hour))
			sig, err := signature.Sign(keys.merchant, r.Method, r.Path, testClient, rt, r.Body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Request-Time", rt)
			r.Header.Set("Signature", signature.FormatHeader("1", sig))
		}, InvalidSignature},
		{"no signature", func(r *Request) { r.Header.Del("Signature") }, InvalidSignature},
		{"unknown key version", func(r *Request) {
			r.Header.Set("Signature", "algorithm=RSA256,keyVersion=7,signature=c2ln")
		}, KeyNotFound},
		{"another client", func(r *Request) { r.Header.Set("Client-Id", "NOPE") }, InvalidClient},
		{"a GET", func(r *Request) { r.Method = http.MethodGet }, MethodNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookups := h.backend.count(opStored)
			req := h.request(o.body())
			tc.change(req)
			a := h.flow.Serve(context.Background(), req, h.up)
			if a.Code != tc.code || a.Replay {
				t.Fatalf("answer %s replay=%v, want %s: %s", a.Code, a.Replay, tc.code, a.Reply.Body)
			}
			if h.backend.count(opStored) != lookups {
				t.Error("the stored reply was looked up")
			}
		})
	}
}

// TestReplayOfOtherBytesIsDecidedAfterValidation: under an answered
// requestId, other bytes are not found by the lookup and go through every
// step in order: the same order in other bytes is a reused requestId, an
// invalid body is refused by validation first, an encrypted one by its
// header.
func TestReplayOfOtherBytesIsDecidedAfterValidation(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	expect(t, h.send(o.body()), Success, "success")

	spaced := append(o.body(), ' ')
	expect(t, h.send(spaced), ParamIllegal, ReasonRequestIDReused)
	invalid := bytes.Replace(o.body(), []byte(`"extInfo"`), []byte(`"extInfoX"`), 1)
	expect(t, h.send(invalid), ParamIllegal, ReasonSchema)
	encrypted := h.request(o.body())
	encrypted.Header.Set("Encrypt", "1")
	expect(t, h.serve(encrypted), ParamIllegal, "encrypted")
	// The exact bytes still replay.
	if a := h.send(o.body()); !a.Replay || a.Code != Success {
		t.Fatalf("the exact bytes: %s replay=%v", a.Code, a.Replay)
	}
}

// TestReplayReadsTheTopLevelRequestID: a requestId nested in extInfo
// before the body's own does not hide it; the replay is found under the
// body's requestId.
func TestReplayReadsTheTopLevelRequestID(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	body := []byte(`{"extInfo":{"requestId":"NOT-THIS-ONE","product_id":"P-1"},"requestId":"` + o.requestID +
		`","merchantId":"2160120041113167","merchantBizNo":"` + o.bizNo + `","orderStatus":"TICKETED","userId":"2160220041431868",` +
		`"merchantBizType":"COUPON","orderCreateTime":1740385506708,"orderModifyTime":1742977506708,"tradeNo":"T"}`)
	expect(t, h.send(body), Success, "success")
	a := h.send(body)
	if !a.Replay || !slices.Equal(opNames(a), []string{"lookup"}) || a.RequestID != o.requestID {
		t.Fatalf("replay=%v, operations %v, requestId %q; want the lookup's replay of %s", a.Replay, opNames(a), a.RequestID, o.requestID)
	}
}

// TestReplayWithoutAStoredScenario: a reply stored without its scenario
// (by an earlier version) is left to the claim, which replays it with the
// scenario validation found.
func TestReplayWithoutAStoredScenario(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	fresh := h.send(o.body())
	expect(t, fresh, Success, "success")
	// The same answer, stored the old way under another requestId.
	old := o
	old.requestID += "-OLD"
	c, err := h.st.Claim(context.Background(), store.RequestKey{ClientID: testClient, RequestID: old.requestID}, store.HashBody(old.body()), time.Minute)
	if err != nil || c.Status != store.Claimed {
		t.Fatalf("claim: %v %v", c, err)
	}
	rep := fresh.Reply
	rep.Scenario = ""
	if err := c.Finish(context.Background(), rep, time.Hour); err != nil {
		t.Fatal(err)
	}
	a := h.send(old.body())
	if !a.Replay || a.Scenario != "coupon_with_code" || !slices.Contains(opNames(a), "claim") {
		t.Fatalf("replay=%v scenario %q operations %v; want the claim's replay with the scenario", a.Replay, a.Scenario, opNames(a))
	}
}

// TestReplayAfterAReload: a configuration that would now refuse the body
// (its scenario disabled) still replays the answer given, and refuses a
// new request of the same kind. The answer a caller was given stands.
func TestReplayAfterAReload(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	first := h.send(o.body())
	expect(t, first, Success, "success")

	onlyGiftCards, err := scenario.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.flow.cfg
	cfg.Scenarios = onlyGiftCards
	reloaded, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.flow = reloaded
	a := h.send(o.body())
	if !a.Replay || !bytes.Equal(a.Reply.Body, first.Reply.Body) {
		t.Fatalf("after the reload: %s replay=%v, want the stored answer", a.Code, a.Replay)
	}
	expect(t, h.send(newOrder("TICKETED").body()), UnSupportBusiness, ReasonNoScenario)
}
