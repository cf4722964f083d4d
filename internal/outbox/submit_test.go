package outbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/store"
)

// AlipayHK's final answer within wait is the answer: 200, its envelope
// byte for byte, decided by AlipayHK; the entry is final, and on S the
// lane's accepted state moved.
func TestSubmitFinalWithinWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("S", func(t *testing.T) {
		o := newOrder()
		r := e.post(o.bytes())
		atts := e.alipay.attempts(o.id())
		if len(atts) != 1 {
			t.Fatalf("AlipayHK got %d attempts: %s", len(atts), r)
		}
		expectAlipay(t, r, envelopeOf(Attempt{RequestID: o.id()}, orderflow.Success), o.id())
		if r.Code != orderflow.Success || r.Reason != ReasonAlipayHK || r.MerchantBizNo != o.biz() || r.Scenario != "gift_card" {
			t.Errorf("response fields: %+v", r)
		}
		x := e.entry(o.id())
		if x.State != store.EntrySucceeded || x.Attempts != 1 || x.Reply == nil || !bytes.Equal(x.Reply.Body, r.Body) {
			t.Errorf("entry after S: %+v", x)
		}
		l := e.lane(o.biz())
		if a := l.Accepted; a == nil || a.Status != "TICKETED" || a.OrderID != "ali-"+o.id() || string(a.DistributeResult) != `[{"sceneCode":"x"}]` ||
			a.RequestID != o.id() || a.Scenario != "gift_card" || a.ModifyTime != 1742977506708 || len(l.Queued) != 0 {
			t.Errorf("lane after S: %+v accepted %+v", l, a)
		}
	})
	t.Run("F", func(t *testing.T) {
		e.alipay.always(replyF)
		o := newOrder()
		r := e.post(o.bytes())
		expectAlipay(t, r, envelopeOf(Attempt{RequestID: o.id()}, orderflow.OrderStatusInvalid), o.id())
		if r.Code != orderflow.OrderStatusInvalid {
			t.Errorf("code %s", r.Code)
		}
		if x := e.entry(o.id()); x.State != store.EntryFailed || x.Reply == nil {
			t.Errorf("entry after F: %+v", x)
		}
		if l := e.lane(o.biz()); l.Accepted != nil || len(l.Queued) != 0 {
			t.Errorf("an F moved the lane: %+v", l)
		}
	})
	e.alipay.problems(t)
}

// Every refusal before anything is queued is the ingress envelope made by
// the gateway, HTTP 200, never signed, and nothing reaches AlipayHK.
func TestSubmitRefusedBeforeQueueing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MaxBodySize = 2048 }))
	o := newOrder()
	post := func(method, ct string, body []byte, bodyErr error) Response {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		return e.svc.Submit(context.Background(), SubmitRequest{Method: method, Header: h, Body: body, BodyErr: bodyErr})
	}
	for _, tt := range []struct {
		name   string
		r      Response
		code   orderflow.Code
		reason Reason
		id     string // the Order-Push-Request-Id expected
		msg    string // in resultMessage
	}{
		{"GET is a lookup, not a submit", post("GET", "application/json", o.bytes(), nil), orderflow.MethodNotSupported, ReasonMethod, "", "method"},
		{"PUT", post("PUT", "application/json", o.bytes(), nil), orderflow.MethodNotSupported, ReasonMethod, "", "method"},
		{"text/plain", post("POST", "text/plain", o.bytes(), nil), orderflow.MediaTypeNotAcceptable, ReasonMediaType, "", "Content-Type"},
		{"no Content-Type", post("POST", "", o.bytes(), nil), orderflow.MediaTypeNotAcceptable, ReasonMediaType, "", "Content-Type"},
		{"latin-1", post("POST", "application/json; charset=latin1", o.bytes(), nil), orderflow.MediaTypeNotAcceptable, ReasonMediaType, "", "Content-Type"},
		{"too large", post("POST", "application/json", o.with("pad", strings.Repeat("x", 2048)).bytes(), nil), orderflow.ParamIllegal, ReasonBodySize, "", "max_body_size"},
		{"unreadable", post("POST", "application/json", nil, errors.New("unexpected EOF")), orderflow.ParamIllegal, ReasonBodySize, "", "body"},
		{"not JSON", e.post([]byte(`{"requestId":`)), orderflow.ParamIllegal, ReasonJSON, "", "body"},
		{"duplicate key", e.post([]byte(`{"requestId":"a","requestId":"b"}`)), orderflow.ParamIllegal, ReasonJSON, "", "duplicate"},
		{"no merchantBizNo", e.post(o.without("merchantBizNo").bytes()), orderflow.ParamIllegal, ReasonSchema, o.id(), "merchantBizNo"},
		{"requestId too long", e.post(o.with("requestId", strings.Repeat("r", 33)).bytes()), orderflow.ParamIllegal, ReasonSchema, strings.Repeat("r", 33), "requestId"},
		{"control character in requestId", e.post(o.with("requestId", "a\nb").bytes()), orderflow.ParamIllegal, ReasonSchema, "", "requestId"},
		{"bad currency", e.post(o.with("amount", map[string]any{"value": "1", "currency": "XXX1"}).bytes()), orderflow.ParamIllegal, ReasonSchema, o.id(), "amount.currency"},
		{"no scenario", e.post(o.with("merchantBizType", "OTHER").bytes()), orderflow.UnSupportBusiness, ReasonNoScenario, o.id(), "merchantBizType"},
		{"scenario schema", e.post(o.with("extInfo", map[string]any{"benefit_issue_mode": "SALE"}).bytes()), orderflow.ParamIllegal, ReasonSchema, o.id(), "extInfo.product_id"},
		{"status not of the scenario", e.post(o.with("orderStatus", "REFUNDED").bytes()), orderflow.ParamIllegal, ReasonSchema, o.id(), "orderStatus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := expectGateway(t, tt.r, tt.code, tt.id)
			if tt.r.Reason != tt.reason {
				t.Errorf("reason %q, want %q", tt.r.Reason, tt.reason)
			}
			if !strings.Contains(env.Result.ResultMessage, tt.msg) {
				t.Errorf("resultMessage %q does not name %q", env.Result.ResultMessage, tt.msg)
			}
		})
	}
	if n := len(e.list("")); n != 0 {
		t.Errorf("%d entries queued by refused requests", n)
	}
	if n := len(e.alipay.attempts("")); n != 0 {
		t.Errorf("AlipayHK got %d attempts from refused requests", n)
	}
}

// The derived requestId follows the documented rule, is written into the
// body AlipayHK gets, and maps a retried POST to the same entry.
func TestSubmitDerivedRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The rule, computed independently of the code under test.
	rule := func(bizNo, status, modified string) string {
		sum := sha256.Sum256([]byte(bizNo + "\n" + status + "\n" + modified))
		return hex.EncodeToString(sum[:])[:32]
	}
	ms := int64(1742977506708)
	if got, want := DeriveRequestID("biz-1", "TICKETED", &ms), rule("biz-1", "TICKETED", "1742977506708"); got != want {
		t.Errorf("DeriveRequestID = %s, want %s", got, want)
	}
	if got, want := DeriveRequestID("biz-1", "TICKETED", nil), rule("biz-1", "TICKETED", ""); got != want {
		t.Errorf("DeriveRequestID without a time = %s, want %s", got, want)
	}
	// A golden value: the rule is public (README), so it must never change.
	if got := DeriveRequestID("ORDER-1", "TICKETED", &ms); got != "ebec6c7c5ad8bb12cf797c385b520ca2" {
		t.Errorf("DeriveRequestID golden value changed: %s", got)
	}

	for _, tt := range []struct {
		name string
		o    order
	}{
		{"absent", newOrder().without("requestId")},
		{"null", newOrder().with("requestId", nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := rule(tt.o.biz(), "TICKETED", "1742977506708")
			r := e.post(tt.o.bytes())
			expectAlipay(t, r, envelopeOf(Attempt{RequestID: id}, orderflow.Success), id)
			atts := e.alipay.attempts(id)
			if len(atts) != 1 {
				t.Fatalf("%d attempts with the derived requestId", len(atts))
			}
			var sentBody map[string]any
			if err := json.Unmarshal(atts[0].Body, &sentBody); err != nil || sentBody["requestId"] != id {
				t.Errorf("AlipayHK got requestId %v, want %s", sentBody["requestId"], id)
			}
			// The legacy system retries its POST: the same entry, not sent again.
			expectAlipay(t, e.post(tt.o.bytes()), r.Body, id)
			if n := len(e.alipay.attempts(id)); n != 1 {
				t.Errorf("a retried POST was sent again: %d attempts", n)
			}
			// The same triple with another body is the same requestId with
			// another body.
			env := expectGateway(t, e.post(tt.o.with("tradeNo", "another").bytes()), orderflow.ParamIllegal, id)
			if !strings.Contains(env.Result.ResultMessage, "requestId") {
				t.Errorf("resultMessage %q", env.Result.ResultMessage)
			}
		})
	}
	t.Run("another orderModifyTime, another requestId", func(t *testing.T) {
		o := newOrder().without("requestId").without("orderModifyTime")
		id := rule(o.biz(), "TICKETED", "")
		// Without a time and with one: two ids.
		r := e.post(o.bytes())
		expectAlipay(t, r, envelopeOf(Attempt{RequestID: id}, orderflow.Success), id)
		later := o.with("orderModifyTime", int64(1742977506709))
		id2 := rule(o.biz(), "TICKETED", "1742977506709")
		// The gift card is TICKETED already: SUCCESS made by the gateway,
		// under the new requestId, and nothing sent.
		expectGateway(t, e.post(later.bytes()), orderflow.Success, id2)
		if n := len(e.alipay.attempts(id2)); n != 0 {
			t.Errorf("a re-post of the current status was sent")
		}
	})
	e.alipay.problems(t)
}

// The body AlipayHK gets is the gateway's canonical serialization, fixed
// at queue time: keys sorted, no whitespace, number literals exactly as
// written (a 64-digit amount, an integer beyond 2^64, a long fraction).
// The same JSON value written differently is the same entry.
func TestSubmitCanonicalBodyAndSameValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	digits64 := strings.Repeat("9", 64)
	raw := `{ "userId":"2088", "requestId":"canon-1", "merchantBizNo":"canon-biz",
	  "merchantBizType":"ALIPAY_COUPON", "orderStatus":"TICKETED", "orderModifyTime": 1742977506708,
	  "amount": {"value":"` + digits64 + `", "currency":"HKD"},
	  "extInfo": {"product_id":"p\u0031", "benefit_issue_mode":"SALE", "big": 123456789012345678901234567890, "f": 0.30000000000000000001, "e": 1E2} }`
	want := `{"amount":{"currency":"HKD","value":"` + digits64 + `"},"extInfo":{"benefit_issue_mode":"SALE","big":123456789012345678901234567890,"e":1E2,"f":0.30000000000000000001,"product_id":"p1"},` +
		`"merchantBizNo":"canon-biz","merchantBizType":"ALIPAY_COUPON","orderModifyTime":1742977506708,"orderStatus":"TICKETED","requestId":"canon-1","userId":"2088"}`
	e.alipay.always(replyU) // stays queued: the dedupe below meets a queued entry
	r := e.post([]byte(raw), "Prefer", "respond-async")
	expectQueued(t, r, "canon-1")
	x := e.entry("canon-1")
	if string(x.Body) != want {
		t.Errorf("queued body\n got %s\nwant %s", x.Body, want)
	}
	if x.BodyHash != store.HashBody([]byte(want)) {
		t.Errorf("body hash is not the SHA-256 of the bytes sent")
	}
	atts := e.alipay.attempts("canon-1")
	eventually(t, "first attempt", func() bool { atts = e.alipay.attempts("canon-1"); return len(atts) > 0 })
	if string(atts[0].Body) != want {
		t.Errorf("AlipayHK got\n%s\nwant\n%s", atts[0].Body, want)
	}

	// The same value: keys reordered, whitespace, escapes.
	doc, _ := message.Decode([]byte(raw))
	same, _ := doc.Canonical()
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, same, "", "\t")
	r2 := e.post(pretty.Bytes(), "Prefer", "respond-async")
	expectQueued(t, r2, "canon-1")
	// Another value under the same requestId: a number spelled differently
	// is another body (literals are kept as written).
	other := strings.Replace(raw, "1E2", "100", 1)
	expectGateway(t, e.post([]byte(other)), orderflow.ParamIllegal, "canon-1")
	if n := len(e.list("")); n != 1 {
		t.Errorf("%d entries; the same requestId queued twice?", n)
	}
}

// Prefer: respond-async is 202 with the entry at once, with
// Preference-Applied; the entry is delivered afterwards.
func TestSubmitRespondAsync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := newOrder()
	r := e.post(o.bytes(), "Prefer", "respond-async")
	m := expectQueued(t, r, o.id())
	if m["state"] != "queued" || m["attempts"] != float64(0) || m["lastError"] != "" || m["reply"] != nil {
		t.Errorf("202 body: %s", r.Body)
	}
	if r.Header.Get("Preference-Applied") != "respond-async" || r.Reason != ReasonAsync {
		t.Errorf("async answer: %s, Preference-Applied %q", r, r.Header.Get("Preference-Applied"))
	}
	for _, k := range []string{"createdAt", "updatedAt", "nextAttemptAt"} {
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", m[k].(string)); err != nil {
			t.Errorf("%s %v: %v", k, m[k], err)
		}
	}
	x := e.await(o.id(), store.EntrySucceeded)
	if x.Attempts != 1 {
		t.Errorf("attempts %d", x.Attempts)
	}
	// The same POST again: the final answer now.
	expectAlipay(t, e.post(o.bytes()), x.Reply.Body, o.id())
	// ...unless it asks for 202 again: the entry, final.
	r = e.post(o.bytes(), "Prefer", "respond-async")
	if r.Status != http.StatusOK {
		t.Logf("async re-post of a final entry: %s", r)
	}
}

// Not final within wait (AlipayHK keeps saying U): 202 with the entry as
// it stands, attempts made and the last error.
func TestSubmitQueuedAfterWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Wait = 400 * time.Millisecond }))
	e.alipay.always(replyU)
	o := newOrder()
	began := time.Now()
	r := e.post(o.bytes())
	if took := time.Since(began); took > 400*time.Millisecond+2*time.Second {
		t.Errorf("answered after %v with wait 400ms", took)
	}
	m := expectQueued(t, r, o.id())
	if m["state"] != "queued" || m["attempts"].(float64) < 1 || !strings.Contains(m["lastError"].(string), "UNKNOWN_EXCEPTION") || r.Reason != ReasonQueued {
		t.Errorf("202 after wait: %s", r)
	}
}

// Prefer: wait=0 shortens the configured wait (RFC 7240). The configured
// wait is long, so that a durable enqueue on a loaded machine (an fsync)
// is never mistaken for the wait: the answer must come well before it.
func TestSubmitPreferWaitShortensTheWait(t *testing.T) {
	t.Parallel()
	const wait = 10 * time.Second
	e := newEnv(t, withConfig(func(c *Config) { c.Wait = wait }))
	e.alipay.always(replyU)
	o := newOrder()
	began := time.Now()
	r := e.post(o.bytes(), "Prefer", "wait=0")
	expectQueued(t, r, o.id())
	if took := time.Since(began); took > wait/4 {
		t.Errorf("Prefer: wait=0 answered after %v with wait %v", took, wait)
	}
}

// wait 0 (Config.Wait NoWait) answers 202 as soon as the order is queued,
// and the order is still delivered; a zero Config.Wait is the default.
func TestSubmitNoWaitAnswersOnceQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Wait = NoWait }))
	hold := make(chan struct{})
	e.alipay.answer(func(a Attempt, nth int) action {
		return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return replyS(ctx, f, a)
		}
	})
	o := newOrder()
	r := e.post(o.bytes())
	close(hold)
	expectQueued(t, r, o.id())
	if r.Header.Get("Preference-Applied") != "" {
		t.Errorf("wait 0 answered as if respond-async was asked: %s", r)
	}
	e.await(o.id(), store.EntrySucceeded)

	if e.svc.cfg.Wait != 0 {
		t.Errorf("Config.Wait NoWait normalized to %v, want 0", e.svc.cfg.Wait)
	}
}

// The store failing before the entry is durable is 503 with the
// UNKNOWN_EXCEPTION envelope, and nothing is queued.
func TestSubmitStoreDownIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := newOrder()
	expectAlipay(t, e.post(ok.bytes()), envelopeOf(Attempt{RequestID: ok.id()}, orderflow.Success), ok.id())
	e.runner.Stop()
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, async := range []bool{false, true} {
		o := newOrder()
		var r Response
		if async {
			r = e.post(o.bytes(), "Prefer", "respond-async")
		} else {
			r = e.post(o.bytes())
		}
		if r.Status != http.StatusServiceUnavailable || r.Reason != ReasonStore || r.Header.Get(HeaderRequestID) != o.id() ||
			r.Header.Get(HeaderDecidedBy) != DecidedByGateway {
			t.Fatalf("store down: %s", r)
		}
		if env := envelope(t, r); env.Result.ResultCode != "UNKNOWN_EXCEPTION" || env.Result.ResultStatus != "U" {
			t.Errorf("503 envelope: %s", r.Body)
		}
	}
	if r := e.svc.Lookup(context.Background(), ok.id()); r.Status != http.StatusServiceUnavailable {
		t.Errorf("lookup with the store down: %s", r)
	}
	// Nothing was queued: reopen the file and look.
	e.db = openDB(t, e.path)
	e.ob = store.NewOutbox(e.db)
	if l := e.list(""); len(l) != 1 {
		t.Errorf("%d entries after the store came back, want the first one only", len(l))
	}
}

// The state check: against the lane's accepted status and every queued
// entry; reverse changes are refused and never sent; the current status
// again follows the ingress rule (SUCCESS by the gateway from the accepted
// state; with entries queued, the last queued entry's answer).
func TestSubmitStateCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const t0 = int64(1742977506708)

	t.Run("against the accepted status", func(t *testing.T) {
		biz := "sc-accepted"
		first := coupon(biz, "TICKETED", t0)
		expectAlipay(t, e.post(first.bytes()), envelopeOf(Attempt{RequestID: first.id()}, orderflow.Success), first.id())
		older := coupon(biz, "REFUNDED", t0-1)
		env := expectGateway(t, e.post(older.bytes()), orderflow.OrderStatusInvalid, older.id())
		if !strings.Contains(env.Result.ResultMessage, "orderModifyTime") {
			t.Errorf("resultMessage %q", env.Result.ResultMessage)
		}
		// The current status again, a new requestId: SUCCESS from the
		// accepted state, nothing sent.
		again := coupon(biz, "TICKETED", t0+5)
		r := e.post(again.bytes())
		env = expectGateway(t, r, orderflow.Success, again.id())
		if env.OrderID != "ali-"+first.id() || env.OrderStatus != "TICKETED" || string(env.DistributeResult) != `[{"sceneCode":"x"}]` || r.Reason != ReasonAlreadyCurrent {
			t.Errorf("already current: %s", r)
		}
		// Another scenario for the same order.
		other := queueUp(biz, "CALL_NUM")
		env = expectGateway(t, e.post(other.bytes()), orderflow.OrderStatusInvalid, other.id())
		if !strings.Contains(env.Result.ResultMessage, "coupon_with_code") {
			t.Errorf("scenario change: %q", env.Result.ResultMessage)
		}
		for _, o := range []order{older, again, other} {
			if n := len(e.alipay.attempts(o.id())); n != 0 || e.entry(o.id()) != nil {
				t.Errorf("%s was queued or sent", o.id())
			}
		}
	})

	t.Run("against every queued entry", func(t *testing.T) {
		biz := "sc-queued"
		// AlipayHK says U for this lane: its entries stay queued.
		e.alipay.answer(func(a Attempt, _ int) action {
			if a.MerchantBizNo == biz {
				return replyU
			}
			return nil
		})
		defer e.alipay.answer(nil)
		ticketed := coupon(biz, "TICKETED", t0)
		expectQueued(t, e.postAsync(ticketed.bytes()), ticketed.id())
		refunded := coupon(biz, "REFUNDED", t0+1)
		expectQueued(t, e.postAsync(refunded.bytes()), refunded.id())
		// USED after a queued REFUNDED (an end status): refused, although
		// nothing was accepted yet.
		used := coupon(biz, "USED", t0+2)
		env := expectGateway(t, e.post(used.bytes()), orderflow.OrderStatusInvalid, used.id())
		if !strings.Contains(env.Result.ResultMessage, "REFUNDED is an end status") {
			t.Errorf("resultMessage %q", env.Result.ResultMessage)
		}
		// REFUNDED again with another requestId: the queued REFUNDED's
		// answer, nothing queued twice.
		twin := coupon(biz, "REFUNDED", t0+3)
		r := e.post(twin.bytes(), "Prefer", "respond-async")
		expectQueued(t, r, refunded.id())
		if got := e.lane(biz); len(got.Queued) != 2 || e.entry(twin.id()) != nil {
			t.Errorf("lane after a twin: %d queued", len(got.Queued))
		}
		// A time older than the last queued one.
		stale := coupon(biz, "USED", t0)
		expectGateway(t, e.post(stale.bytes()), orderflow.OrderStatusInvalid, stale.id())
	})

	t.Run("repeatable is queued again", func(t *testing.T) {
		biz := "sc-repeat"
		a, b := queueUp(biz, "CALL_NUM"), queueUp(biz, "CALL_NUM")
		expectAlipay(t, e.post(a.bytes()), envelopeOf(Attempt{RequestID: a.id()}, orderflow.Success), a.id())
		expectAlipay(t, e.post(b.bytes()), envelopeOf(Attempt{RequestID: b.id()}, orderflow.Success), b.id())
	})

	t.Run("dedupe comes before the state check", func(t *testing.T) {
		o := newOrder()
		r := e.post(o.bytes())
		// The same POST again is the same entry's answer, AlipayHK's
		// envelope, not "already current" made by the gateway.
		expectAlipay(t, e.post(o.bytes()), r.Body, o.id())
	})
	e.alipay.problems(t)
}

// Concurrent POSTs to one lane: every one is either queued or refused,
// and the queue is always a legal sequence (the optimistic lane version
// makes a POST that raced another one judge again).
func TestSubmitConcurrentLaneStaysLegal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.alipay.always(replyU)
	biz := "race-lane"
	statuses := []string{"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "FINISHED"}
	var wg sync.WaitGroup
	results := make([]Response, 24)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := queueUp(biz, statuses[i%len(statuses)])
			results[i] = e.post(o.bytes(), "Prefer", "respond-async")
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Status != http.StatusAccepted && r.Code != orderflow.OrderStatusInvalid {
			t.Errorf("neither queued nor refused: %s", r)
		}
	}
	l := e.lane(biz)
	idx := map[string]int{}
	for i, s := range statuses {
		idx[s] = i
	}
	for i := 1; i < len(l.Queued); i++ {
		prev, cur := l.Queued[i-1].OrderStatus, l.Queued[i].OrderStatus
		if idx[cur] < idx[prev] || (cur == prev && cur != "CALL_NUM") {
			t.Errorf("queue goes from %s to %s", prev, cur)
		}
	}
	if len(l.Queued) == 0 {
		t.Error("nothing queued")
	}
}

// Lookup: the entry, or 404.
func TestLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := newOrder()
	r := e.post(o.bytes())
	l := e.svc.Lookup(context.Background(), o.id())
	if l.Status != http.StatusOK || l.Header.Get(HeaderDecidedBy) != DecidedByGateway || l.Header.Get(HeaderRequestID) != o.id() || l.Reason != ReasonLookup {
		t.Fatalf("lookup: %s", l)
	}
	var v struct {
		EntryView
		Reply map[string]any `json:"reply"`
	}
	if err := json.Unmarshal(l.Body, &v); err != nil {
		t.Fatal(err)
	}
	if v.RequestID != o.id() || v.MerchantBizNo != o.biz() || v.OrderStatus != "TICKETED" || v.State != store.EntrySucceeded ||
		v.Attempts != 1 || v.NextAttemptAt != nil || v.Reply["orderId"] != "ali-"+o.id() {
		t.Errorf("lookup body: %s (answer was %s)", l.Body, r)
	}
	for _, tt := range []struct {
		id     string
		reason Reason
	}{{"nope", ReasonNotFound}, {"", ReasonMissingRequestID}} {
		nf := e.svc.Lookup(context.Background(), tt.id)
		if nf.Status != http.StatusNotFound || nf.Reason != tt.reason || !json.Valid(nf.Body) || nf.Header.Get(HeaderDecidedBy) != DecidedByGateway {
			t.Errorf("lookup of %q: %s", tt.id, nf)
		}
	}
}

// cutOff is a store whose Enqueue writes and then fails, as a write whose
// reply a deadline cut off does, and whose reads fail once an entry is
// queued while failReads is set.
type cutOff struct {
	store.OutboxBackend
	cutEnqueue atomic.Bool
	failReads  atomic.Bool
}

func (c *cutOff) Enqueue(ctx context.Context, e store.Entry, laneVersion uint64) (*store.Entry, error) {
	existing, err := c.OutboxBackend.Enqueue(ctx, e, laneVersion)
	if err == nil && existing == nil && c.cutEnqueue.Load() {
		return nil, context.DeadlineExceeded
	}
	return existing, err
}

func (c *cutOff) GetEntry(ctx context.Context, key store.RequestKey) (*store.Entry, error) {
	if c.failReads.Load() {
		if e, _ := c.OutboxBackend.GetEntry(ctx, key); e != nil {
			return nil, errors.New("connection reset")
		}
	}
	return c.OutboxBackend.GetEntry(ctx, key)
}

// Once the entry is durable the answer is never 503: an Enqueue whose
// reply was cut off after the write is found by a second look, and a store
// failing after the enqueue still gets the queued entry's 202.
func TestSubmitNever503OnceDurable(t *testing.T) {
	t.Parallel()
	var c *cutOff
	e := newEnv(t, func(e *env) {
		e.wrap = func(b store.OutboxBackend) store.OutboxBackend { c = &cutOff{OutboxBackend: b}; return c }
	}, withConfig(func(c *Config) { c.Wait = 300 * time.Millisecond }))
	e.alipay.always(replyU)

	c.cutEnqueue.Store(true)
	o := newOrder()
	expectQueued(t, e.post(o.bytes(), "Prefer", "respond-async"), o.id())
	c.cutEnqueue.Store(false)

	c.failReads.Store(true)
	o2 := newOrder()
	r := e.post(o2.bytes())
	if m := expectQueued(t, r, o2.id()); m["state"] != "queued" {
		t.Errorf("store failing after the enqueue: %s", r)
	}
	c.failReads.Store(false)
	if e.entry(o.id()) == nil || e.entry(o2.id()) == nil {
		t.Error("an entry answered 202 is not in the store")
	}
}
