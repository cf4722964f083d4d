package orderflow

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// syncPathCase is one way a claimed request can end, with what it is
// answered and what it leaves in the store when nothing fails.
type syncPathCase struct {
	name string
	// setup brings the order to where this path starts and returns the
	// request to send.
	setup    func(h *harness) order
	upstream func(Upstream) UpstreamReply // nil: the upstream issues
	code     Code
	reason   string
	forwards bool   // the upstream is called
	final    string // the store write of the answer: "commit", "finish" or "" (U: nothing)
}

// syncPaths are every S, F and U answer given after the claim.
var syncPaths = []syncPathCase{
	{name: "S new order", setup: func(h *harness) order { return newOrder("TICKETED") },
		code: Success, reason: "success", forwards: true, final: "commit"},
	{name: "S next status", setup: func(h *harness) order { return h.accepted(newOrder("TICKETED")).next("USED") },
		code: Success, reason: "success", forwards: true, final: "commit"},
	{name: "S re-sent status, stored reply", setup: func(h *harness) order { return h.accepted(newOrder("TICKETED")).next("TICKETED") },
		code: Success, reason: "already_current", final: "finish"},
	{name: "F upstream resultCode", setup: func(h *harness) order { return newOrder("TICKETED") },
		upstream: replyWith(http.StatusOK, `{"resultCode":"PARAM_ILLEGAL","resultMessage":"product_id: unknown product"}`),
		code:     ParamIllegal, reason: "result_code", forwards: true, final: "finish"},
	{name: "F upstream 409", setup: func(h *harness) order { return newOrder("TICKETED") },
		upstream: replyWith(http.StatusConflict, `conflict`),
		code:     OrderStatusInvalid, reason: "status", forwards: true, final: "finish"},
	{name: "F transition back", setup: func(h *harness) order { return h.accepted(newOrder("USED")).next("TICKETED") },
		code: OrderStatusInvalid, reason: "transition", final: "finish"},
	{name: "U upstream 503", setup: func(h *harness) order { return newOrder("TICKETED") },
		upstream: replyWith(http.StatusServiceUnavailable, `busy`),
		code:     UnknownException, reason: "status", forwards: true},
	{name: "U upstream 429", setup: func(h *harness) order { return newOrder("TICKETED") },
		upstream: replyWith(http.StatusTooManyRequests, ``),
		code:     RequestTrafficExceedLimit, reason: "status", forwards: true},
	{name: "U upstream timeout", setup: func(h *harness) order { return newOrder("TICKETED") },
		upstream: func(Upstream) UpstreamReply { return UpstreamReply{TimedOut: true, Err: context.DeadlineExceeded} },
		code:     UnknownException, reason: "timeout", forwards: true},
}

// accepted brings o to its status in the store (one SUCCESS through the
// flow) and returns it.
func (h *harness) accepted(o order) order {
	h.t.Helper()
	expect(h.t, h.send(o.body()), Success, "success")
	return o
}

// TestSyncPaths: with a healthy store, each path gets its answer, stores
// what it must (S and F for replay, byte for byte; U nothing), changes the
// order only on S, and calls the upstream only when it must.
func TestSyncPaths(t *testing.T) {
	for _, p := range syncPaths {
		t.Run(p.name, func(t *testing.T) {
			h := newHarness(t)
			o := p.setup(h)
			before := h.storedOrder(o)
			h.up.answer(p.upstream)
			calls := h.up.calls()

			a := h.send(o.body())
			expect(t, a, p.code, p.reason)
			if got := h.up.calls() - calls; got != b2i(p.forwards) {
				t.Errorf("upstream called %d times, want %d", got, b2i(p.forwards))
			}
			if a.Forwarded != p.forwards {
				t.Errorf("Answer.Forwarded = %v", a.Forwarded)
			}
			after := h.storedOrder(o)
			if changed := !reflect.DeepEqual(before, after); changed != (p.final == "commit") {
				t.Errorf("order changed = %v (%+v -> %+v), want %v", changed, before, after, p.final == "commit")
			}
			if p.final == "commit" && (after.Status != o.status || after.RequestID != o.requestID) {
				t.Errorf("order after S: %+v", after)
			}
			h.st.Wait()
			rec := h.storedReply(o)
			switch {
			case p.final == "" && rec != nil:
				t.Errorf("a U left a replay record: %+v", rec)
			case p.final != "" && (rec == nil || !rec.Done || !bytes.Equal(rec.Reply.Body, a.Reply.Body)):
				t.Errorf("replay record %+v, want the answer %s", rec, a.Reply.Body)
			}
			if ops := opNames(a); p.final != "" && (len(ops) == 0 || ops[len(ops)-1] != p.final) {
				t.Errorf("store operations %v, want %s last", ops, p.final)
			}

			// The same bytes again (signed afresh): a replay of S or F,
			// byte for byte without the upstream; a U is processed afresh.
			h.up.answer(nil)
			calls = h.up.calls()
			again := h.send(o.body())
			if p.final != "" {
				if !again.Replay || !bytes.Equal(again.Reply.Body, a.Reply.Body) || !reflect.DeepEqual(again.Reply.Header, a.Reply.Header) || again.Code != p.code {
					t.Errorf("retry: replay=%v %s %v, want the stored %s %v", again.Replay, again.Reply.Body, again.Reply.Header, a.Reply.Body, a.Reply.Header)
				}
				if h.up.calls() != calls {
					t.Error("a replay called the upstream")
				}
			} else if again.Replay || h.up.calls() != calls+1 {
				t.Errorf("retry after U: replay=%v, upstream calls %d -> %d; want processed afresh", again.Replay, calls, h.up.calls())
			}
		})
	}
}

// storeStep is a store failure at one step of a claimed request.
type storeStep struct {
	name   string
	fault  fault
	reason string // of the U answer
	// applies says whether a path reaches the step.
	applies func(p syncPathCase) bool
	// landed: the write was done before the error came back, so a retry
	// is a replay of what was written.
	landed bool
}

func always(syncPathCase) bool { return true }
func finalIs(w string) func(syncPathCase) bool {
	return func(p syncPathCase) bool { return p.final == w }
}

var storeSteps = []storeStep{
	{name: "claim fails", fault: fault{op: opClaim, nth: 1}, reason: "store_error", applies: always},
	{name: "lock fails", fault: fault{op: opLock, nth: 1}, reason: "store_error", applies: always},
	{name: "lock times out", fault: fault{op: opLock, nth: 1, err: store.ErrLockTimeout}, reason: "order_busy", applies: always},
	{name: "reading the order fails", fault: fault{op: opGet, nth: 1}, reason: "store_error", applies: always},
	{name: "commit fails", fault: fault{op: opCommit, nth: 1}, reason: "store_error", applies: finalIs("commit")},
	{name: "commit conflicts", fault: fault{op: opCommit, nth: 1, err: store.ErrConflict}, reason: "conflict", applies: finalIs("commit")},
	{name: "commit lands, its reply is lost", fault: fault{op: opCommit, nth: 1, after: true}, reason: "store_error", applies: finalIs("commit"), landed: true},
	{name: "storing the answer fails", fault: fault{op: opFinish, nth: 1}, reason: "store_error", applies: finalIs("finish")},
	{name: "storing the answer lands, its reply is lost", fault: fault{op: opFinish, nth: 1, after: true}, reason: "store_error", applies: finalIs("finish"), landed: true},
}

// TestSyncPathsStoreFailures crosses every path with a store failure at
// each step it reaches. The caller always gets U (never S without a
// durable change, never an F that a retry could contradict), the order
// is unchanged, nothing is stored, the requestId is free again, and a
// retry with the store back gets the path's own answer — or, when the
// write landed after all, its replay.
func TestSyncPathsStoreFailures(t *testing.T) {
	for _, p := range syncPaths {
		for _, s := range storeSteps {
			if !s.applies(p) {
				continue
			}
			t.Run(p.name+"/"+s.name, func(t *testing.T) {
				h := newHarness(t)
				o := p.setup(h)
				before := h.storedOrder(o)
				h.up.answer(p.upstream)
				calls := h.up.calls()
				flt := s.fault
				flt.nth += h.backend.count(flt.op) // the nth call from now
				h.backend.inject(flt)

				a := h.send(o.body())
				expect(t, a, UnknownException, s.reason)
				// The upstream is called only past the order lock.
				reached := p.forwards && (s.fault.op == opCommit || s.fault.op == opFinish)
				if got := h.up.calls() - calls; got != b2i(reached) {
					t.Errorf("upstream called %d times, want %d", got, b2i(reached))
				}
				ops := a.StoreOps()
				if len(ops) == 0 || ops[len(ops)-1].Err == nil {
					t.Errorf("store operations %+v: the failed one is not last", ops)
				}
				h.st.Wait()
				after := h.storedOrder(o)
				if !s.landed && !reflect.DeepEqual(before, after) {
					t.Errorf("a failed request changed the order: %+v -> %+v", before, after)
				}
				rec := h.storedReply(o)
				if !s.landed && rec != nil {
					t.Errorf("a U left a replay record: %+v", rec)
				}

				h.backend.heal()
				h.up.answer(p.upstream)
				retry := h.send(o.body())
				if s.landed {
					if !retry.Replay || retry.Code != p.code {
						t.Fatalf("retry after a write that landed: %s replay=%v, want the replay of %s", retry.Code, retry.Replay, p.code)
					}
					return
				}
				expect(t, retry, p.code, p.reason)
				if retry.Replay {
					t.Error("the retry was a replay of nothing")
				}
			})
		}
	}
}

// TestCleanupFailuresDelayNothing: when giving the requestId up or
// unlocking the order fails, the answer is the same; the lease ends what
// the store did not.
func TestCleanupFailuresDelayNothing(t *testing.T) {
	const lease = 300 * time.Millisecond
	shortLease := func(c *Config) { c.ClaimLease = lease }

	t.Run("release fails", func(t *testing.T) {
		h := newHarness(t, shortLease)
		o := newOrder("TICKETED")
		h.up.answer(replyWith(http.StatusServiceUnavailable, ``))
		h.backend.inject(fault{op: opRelease})
		expect(t, h.send(o.body()), UnknownException, "status")
		h.st.Wait()
		// The claim outlives the failed release until its lease ends.
		expect(t, h.send(o.body()), UnknownException, "in_flight")
		time.Sleep(lease)
		h.up.answer(nil)
		expect(t, h.send(o.body()), Success, "success")
	})
	t.Run("release hangs", func(t *testing.T) {
		h := newHarness(t)
		o := newOrder("TICKETED")
		h.up.answer(replyWith(http.StatusServiceUnavailable, ``))
		h.backend.inject(fault{op: opRelease, hang: true})
		began := time.Now()
		expect(t, h.send(o.body()), UnknownException, "status")
		if d := time.Since(began); d > time.Second {
			t.Errorf("a hung release held the answer %v", d)
		}
	})
	t.Run("unlock fails", func(t *testing.T) {
		h := newHarness(t, shortLease)
		o := newOrder("TICKETED")
		h.backend.inject(fault{op: opUnlock})
		expect(t, h.send(o.body()), Success, "success")
		h.st.Wait()
		// The next status waits for the lock's lease, then goes through.
		expect(t, h.send(o.next("USED").body()), Success, "success")
	})
	t.Run("unlock hangs", func(t *testing.T) {
		h := newHarness(t)
		h.backend.inject(fault{op: opUnlock, hang: true})
		began := time.Now()
		expect(t, h.send(newOrder("TICKETED").body()), Success, "success")
		if d := time.Since(began); d > time.Second {
			t.Errorf("a hung unlock held the answer %v", d)
		}
	})
}

// TestClaimAnswers: what a requestId already claimed or answered gets.
func TestClaimAnswers(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	first := h.send(o.body())
	expect(t, first, Success, "success")

	other := o
	other.status = "USED"
	expect(t, h.send(other.body()), ParamIllegal, "request_id_reused")
	if h.up.calls() != 1 {
		t.Errorf("upstream called %d times", h.up.calls())
	}

	// In flight: the upstream holds the first request while its duplicate
	// (same body, or another) comes in.
	inflight := newOrder("TICKETED")
	release := make(chan struct{})
	entered := make(chan struct{})
	h.up.answer(func(up Upstream) UpstreamReply {
		close(entered)
		<-release
		return issued(up)
	})
	done := make(chan Answer)
	go func() { done <- h.flow.Serve(context.Background(), h.request(inflight.body()), h.up) }()
	<-entered
	h.up.answer(nil)
	expect(t, h.send(inflight.body()), UnknownException, "in_flight")
	changed := inflight
	changed.status = "USED"
	expect(t, h.send(changed.body()), UnknownException, "in_flight")
	close(release)
	expect(t, <-done, Success, "success")
}

// TestRefusalsBeforeTheClaim: answers given before the claim store
// nothing and claim nothing. The only store operation an authenticated
// request makes before validation is the read-only replay lookup (step
// 3b), which finds nothing for a body that fails validation: a reply is
// only ever stored for one that passed.
func TestRefusalsBeforeTheClaim(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	cases := []struct {
		name   string
		req    func() *Request
		code   Code
		reason string
	}{
		{"method", func() *Request { r := h.request(o.body()); r.Method = http.MethodGet; return r }, MethodNotSupported, "method"},
		{"media type", func() *Request { r := h.request(o.body()); r.Header.Set("Content-Type", "text/plain"); return r }, MediaTypeNotAcceptable, "media_type"},
		{"too large", func() *Request { r := h.request(o.body()); r.Body, r.BodyErr = nil, ErrBodyTooLarge; return r }, ParamIllegal, "body_size"},
		{"unknown client", func() *Request { r := h.request(o.body()); r.Header.Set("Client-Id", "NOPE"); return r }, InvalidClient, "client"},
		{"two client ids", func() *Request { r := h.request(o.body()); r.Header.Add("Client-Id", testClient); return r }, InvalidClient, "client"},
		{"bad signature", func() *Request { r := h.request(o.body()); r.Body = append([]byte(" "), r.Body...); return r }, InvalidSignature, "signature"},
		{"unknown key version", func() *Request {
			r := h.request(o.body())
			r.Header.Set("Signature", "algorithm=RSA256,keyVersion=7,signature=c2ln")
			return r
		}, KeyNotFound, "key_not_found"},
		{"schema", func() *Request {
			return h.request(bytes.Replace(o.body(), []byte(`"extInfo"`), []byte(`"extInfoX"`), 1))
		}, ParamIllegal, "schema"},
		{"no scenario", func() *Request { return h.request(bytes.Replace(o.body(), []byte(`COUPON`), []byte(`NOPE`), 1)) }, UnSupportBusiness, "no_scenario"},
		{"status of no scenario", func() *Request { return h.request(bytes.Replace(o.body(), []byte(`TICKETED`), []byte(`QUEUED`), 1)) }, ParamIllegal, "schema"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := h.backend.count(opClaim)
			a := h.serve(tc.req())
			expect(t, a, tc.code, tc.reason)
			ops := opNames(a)
			if h.backend.count(opClaim) != claims || (len(ops) != 0 && !slices.Equal(ops, []string{"lookup"})) {
				t.Errorf("the store was asked: %+v", a.StoreOps())
			}
		})
	}
	if h.up.calls() != 0 {
		t.Errorf("upstream called %d times", h.up.calls())
	}
	// The requestId is still free: the corrected request goes through.
	expect(t, h.send(o.body()), Success, "success")
}

// TestWhatTheUpstreamGets: the normalized body and exactly the headers of
// the README's upstream contract.
func TestWhatTheUpstreamGets(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	req := h.request(o.body())
	req.Header.Set("User-Agent", "sdk/1")
	req.Header.Set("Traceparent", "00-abc-def-01")
	req.Header.Set("X-Evil", "1")
	expect(t, h.serve(req), Success, "success")
	up := h.up.sent[0]
	want := http.Header{
		"Content-Type":           {"application/json"},
		"Idempotency-Key":        {testClient + ":" + o.requestID},
		"X-Order-Sync-Client-Id": {testClient},
		"X-Order-Sync-Scenario":  {"coupon_with_code"},
		"User-Agent":             {"sdk/1"},
		"Traceparent":            {"00-abc-def-01"},
	}
	if !reflect.DeepEqual(up.Header, want) {
		t.Errorf("upstream headers %v, want %v", up.Header, want)
	}
	if !contains(up.Body, `"previousStatus":""`) || !contains(up.Body, `"clientId":"`+testClient+`"`) || !contains(up.Body, `"orderModifyTime":"2025-03-26T08:25:06.708Z"`) {
		t.Errorf("upstream body %s", up.Body)
	}
}

func opNames(a Answer) []string {
	var names []string
	for _, op := range a.StoreOps() {
		names = append(names, op.Name)
	}
	return names
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

var _ = errors.New
