package orderflow

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// The time bound (issue 9 item 8; README, "Configuration":
// upstream_timeout): the caller has an answer within upstream_timeout +
// TimeBoundGrace whatever the upstream and the store do, and never an S
// that is not durable.

const boundTimeout = 300 * time.Millisecond

func shortTimeout(c *Config) { c.UpstreamTimeout = boundTimeout }

// timed serves body and fails if the answer took longer than the bound
// (plus a margin for a busy machine: this is a bound, not a benchmark).
func timed(t *testing.T, h *harness, body []byte) Answer {
	t.Helper()
	began := time.Now()
	a := h.send(body)
	if took, bound := time.Since(began), boundTimeout+TimeBoundGrace+500*time.Millisecond; took > bound {
		t.Fatalf("answered %s after %s, beyond the bound %s", a.Code, took, bound)
	}
	return a
}

// TestTimeBoundWhenTheStoreHangs: a store that stops answering, but honours
// deadlines (a frozen redis-server), at any step before the upstream.
func TestTimeBoundWhenTheStoreHangs(t *testing.T) {
	for _, op := range []string{opClaim, opLock, opGet} {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t, shortTimeout)
			h.backend.inject(fault{op: op, hang: true, err: context.DeadlineExceeded})
			o := newOrder("TICKETED")
			expect(t, timed(t, h, o.body()), UnknownException, "store_timeout")
			if h.up.calls() != 0 {
				t.Error("the upstream was called")
			}
			h.backend.heal()
			expect(t, h.send(o.body()), Success, "success")
		})
	}
}

// TestTimeBoundWhenAWriteIgnoresItsDeadline: the commit of an S and the
// storing of an F stall ignoring their context (a disk hung under bbolt).
// The caller gets U by the bound; the write goes on in the background with
// the order still locked, so no other change overtakes it; once it lands,
// a retry is its replay, and the upstream is not called again.
func TestTimeBoundWhenAWriteIgnoresItsDeadline(t *testing.T) {
	for _, tc := range []struct {
		op       string
		upstream func(Upstream) UpstreamReply
		final    Code
	}{
		{opCommit, nil, Success},
		{opFinish, replyWith(http.StatusBadRequest, ``), ParamIllegal},
	} {
		t.Run(tc.op, func(t *testing.T) {
			h := newHarness(t, shortTimeout)
			gate, open := h.gate()
			h.backend.inject(fault{op: tc.op, nth: 1, gate: gate, pass: true})
			h.up.answer(tc.upstream)
			o := newOrder("TICKETED")
			expect(t, timed(t, h, o.body()), UnknownException, "store_timeout")

			// Pending: the requestId stays claimed, and while an S may
			// still land the order stays locked (an F changes no order).
			h.up.answer(nil)
			expect(t, timed(t, h, o.body()), UnknownException, "in_flight")
			if tc.final == Success {
				expect(t, timed(t, h, o.next("USED").body()), UnknownException, "order_busy")
			}
			if h.up.calls() != 1 {
				t.Fatalf("upstream called %d times, want once", h.up.calls())
			}

			open()
			h.st.Wait()
			again := h.send(o.body())
			if !again.Replay || again.Code != tc.final {
				t.Fatalf("retry after the write landed: %s replay=%v, want the replay of %s", again.Code, again.Replay, tc.final)
			}
			if tc.final == Success {
				expect(t, h.send(o.next("USED").body()), Success, "success")
			}
			if want := 1 + b2i(tc.final == Success); h.up.calls() != want {
				t.Errorf("upstream called %d times, want %d", h.up.calls(), want)
			}
		})
	}
}

// TestStalledWriteThatFails: a write that outlived the bound and then
// fails gives the requestId and the order up: the retry is processed
// afresh.
func TestStalledWriteThatFails(t *testing.T) {
	h := newHarness(t, shortTimeout)
	gate, open := h.gate()
	h.backend.inject(fault{op: opCommit, nth: 1, gate: gate})
	o := newOrder("TICKETED")
	expect(t, timed(t, h, o.body()), UnknownException, "store_timeout")
	open()
	h.st.Wait()
	if rec := h.storedReply(o); rec != nil {
		t.Fatalf("a failed write left %+v", rec)
	}
	a := h.send(o.body())
	expect(t, a, Success, "success")
	if a.Replay || h.up.calls() != 2 {
		t.Errorf("retry: replay=%v, upstream calls %d; want processed afresh", a.Replay, h.up.calls())
	}
}

// TestTimeBoundWhenTheUpstreamNeverAnswers: the Forwarder is given until
// GiveUpAt, within the bound.
func TestTimeBoundWhenTheUpstreamNeverAnswers(t *testing.T) {
	h := newHarness(t, shortTimeout)
	var giveUp time.Time
	h.up.answer(func(up Upstream) UpstreamReply {
		giveUp = up.GiveUpAt
		time.Sleep(time.Until(up.GiveUpAt)) // a next handler that ignores its context
		return UpstreamReply{NeverDone: true}
	})
	began := time.Now()
	expect(t, timed(t, h, newOrder("TICKETED").body()), UnknownException, "timeout")
	if d := giveUp.Sub(began); d > boundTimeout+TimeBoundGrace || d < boundTimeout {
		t.Errorf("GiveUpAt %s after the request, want between upstream_timeout and the bound", d)
	}
}

var _ = store.ErrConflict
