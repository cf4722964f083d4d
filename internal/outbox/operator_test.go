package outbox

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// retry of a queued entry makes it due now: an entry waiting out a long
// backoff is attempted at once.
func TestOperatorRetryQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour }),
		func(e *env) { e.jitter = func() float64 { return 0.99 } })
	o := newOrder()
	e.alipay.answer(func(a Attempt, nth int) action {
		if nth == 1 {
			return replyU
		}
		return replyS
	})
	e.postAsync(o.bytes())
	eventually(t, "the first attempt recorded", func() bool { return e.entry(o.id()).Attempts == 1 })
	if next := e.entry(o.id()).NextAttemptAt; time.Until(next) < 30*time.Minute {
		t.Fatalf("next attempt due in %v, want most of an hour", time.Until(next))
	}
	x, act, err := e.runner.Retry(context.Background(), o.id())
	if err != nil || act != ActionRetry || x.State != store.EntryQueued {
		t.Fatalf("Retry = %+v, %s, %v", x, act, err)
	}
	e.await(o.id(), store.EntrySucceeded)
	e.obs.mu.Lock()
	ops := append([]OperatorEvent(nil), e.obs.operator...)
	e.obs.mu.Unlock()
	if len(ops) != 1 || ops[0].Action != ActionRetry || ops[0].RequestID != o.id() {
		t.Errorf("operator events %+v", ops)
	}
	// A succeeded entry cannot be retried; an unknown one is not found.
	if _, _, err := e.runner.Retry(context.Background(), o.id()); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("Retry of a succeeded entry: %v", err)
	}
	if _, _, err := e.runner.Retry(context.Background(), "nope"); !errors.Is(err, store.ErrEntryNotFound) {
		t.Errorf("Retry of an unknown entry: %v", err)
	}
}

// retry of an expired (or failed) entry queues it again if the lane's
// state machine still allows its status; otherwise it is refused, saying
// why, and nothing changes.
func TestOperatorRequeue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MaxAge = 500 * time.Millisecond }))
	const t0 = int64(1742977506708)
	biz := "requeue"
	ticketed := coupon(biz, "TICKETED", t0)
	e.alipay.always(replyU)
	e.postAsync(ticketed.bytes())
	e.await(ticketed.id(), store.EntryExpired)

	e.cfg.MaxAge = time.Hour
	if err := e.runner.Update(e.cfg, e.alipay); err != nil {
		t.Fatal(err)
	}
	e.alipay.always(replyS)
	x, act, err := e.runner.Retry(context.Background(), ticketed.id())
	if err != nil || act != ActionRequeue || x.State != store.EntryQueued || x.Attempts != 0 || x.LastError != "" {
		t.Fatalf("requeue of an expired entry = %+v, %s, %v", x, act, err)
	}
	e.await(ticketed.id(), store.EntrySucceeded)

	// A lane where TICKETED expired and REFUNDED, an end status, was
	// accepted after it: requeueing TICKETED would go back. Refused, saying
	// why, and nothing changes.
	e.cfg.MaxAge = 500 * time.Millisecond
	_ = e.runner.Update(e.cfg, e.alipay)
	e.alipay.always(replyU)
	biz2 := "requeue-2"
	first := coupon(biz2, "TICKETED", t0)
	e.postAsync(first.bytes())
	e.await(first.id(), store.EntryExpired)
	e.cfg.MaxAge = time.Hour
	_ = e.runner.Update(e.cfg, e.alipay)
	e.alipay.always(replyS)
	later := coupon(biz2, "REFUNDED", t0) // the same time: not older, so the end status is the reason
	e.post(later.bytes())
	e.await(later.id(), store.EntrySucceeded)
	_, _, err = e.runner.Retry(context.Background(), first.id())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "REFUNDED is an end status") {
		t.Errorf("requeue against the state machine: %v", err)
	}
	if x := e.entry(first.id()); x.State != store.EntryExpired {
		t.Errorf("a refused requeue changed the entry: %s", x.State)
	}
}

// drop ends a queued entry as failed ("dropped by operator"), unblocks its
// lane, answers a POST waiting for it, and reports a final state.
func TestOperatorDrop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Wait = time.Minute }))
	biz := "drop"
	head, next := queueUp(biz, "CALL_NUM"), queueUp(biz, "NUMBER_ARRIVED")
	e.alipay.answer(func(a Attempt, _ int) action {
		if a.RequestID == head.id() {
			return replyU
		}
		return replyS
	})
	waiting := make(chan Response, 1)
	go func() { waiting <- e.post(head.bytes()) }()
	eventually(t, "the head attempted", func() bool { return len(e.alipay.attempts(head.id())) > 0 })
	e.postAsync(next.bytes())

	x, err := e.runner.Drop(context.Background(), head.id())
	if err != nil || x.State != store.EntryFailed || x.LastError != store.DroppedByOperator {
		t.Fatalf("Drop = %+v, %v", x, err)
	}
	select {
	case r := <-waiting:
		// Final, without AlipayHK's answer: the entry, in a 202.
		if m := expectQueued(t, r, head.id()); m["state"] != "failed" || m["lastError"] != store.DroppedByOperator || r.Reason != ReasonEnded {
			t.Errorf("the waiting POST got %s", r)
		}
	case <-time.After(patience):
		t.Fatal("the POST waiting for the dropped entry was not answered")
	}
	e.await(next.id(), store.EntrySucceeded)
	if f := e.obs.finalOf(head.id()); len(f) != 1 || f[0].By != EndedByOperator || f[0].State != store.EntryFailed {
		t.Errorf("final events %+v", f)
	}
	if _, err := e.runner.Drop(context.Background(), head.id()); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("Drop of a final entry: %v", err)
	}
	if _, err := e.runner.Drop(context.Background(), "nope"); !errors.Is(err, store.ErrEntryNotFound) {
		t.Errorf("Drop of an unknown entry: %v", err)
	}
	// Lookups and listings for the CLI and the admin API.
	if l, err := e.runner.List(context.Background(), store.EntryFailed, 10); err != nil || len(l) != 1 || l[0].RequestID != head.id() {
		t.Errorf("List(failed) = %v, %v", l, err)
	}
	if x, err := e.runner.Entry(context.Background(), head.id()); err != nil || x == nil || x.State != store.EntryFailed {
		t.Errorf("Entry = %+v, %v", x, err)
	}
	if l, err := e.runner.Lane(context.Background(), biz); err != nil || l.Accepted == nil || l.Accepted.RequestID != next.id() {
		t.Errorf("Lane = %+v, %v", l, err)
	}
	if s, err := e.runner.Stats(context.Background()); err != nil || s.Queued != 0 {
		t.Errorf("Stats = %+v, %v", s, err)
	}
	if r := e.svc.Lookup(context.Background(), head.id()); r.Status != http.StatusOK || !strings.Contains(string(r.Body), store.DroppedByOperator) {
		t.Errorf("lookup of a dropped entry: %s", r)
	}
}
