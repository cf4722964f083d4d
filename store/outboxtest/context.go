package outboxtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// endedContext returns a context that has already ended.
func endedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// testEndedContext: every operation called with a context that has ended
// fails at once and does nothing.
func testEndedContext(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	before := mustLane(t, b, lane)
	ops := map[string]func(ctx context.Context) error{
		"Enqueue": func(ctx context.Context) error {
			_, err := b.Enqueue(ctx, newEntry(lane, "r3", "SHIPPED", at), before.Version)
			return err
		},
		"GetEntry": func(ctx context.Context) error { _, err := b.GetEntry(ctx, rkey(lane, "r1")); return err },
		"GetLane":  func(ctx context.Context) error { _, err := b.GetLane(ctx, lane); return err },
		"DueLanes": func(ctx context.Context) error { _, err := b.DueLanes(ctx, lane.ClientID, at, 10); return err },
		"LeaseLane": func(ctx context.Context) error {
			return b.LeaseLane(ctx, ids.lane(), token(), longTTL)
		},
		"RenewLane":   func(ctx context.Context) error { return b.RenewLane(ctx, lane, tok, time.Millisecond) },
		"ReleaseLane": func(ctx context.Context) error { return b.ReleaseLane(ctx, lane, tok) },
		"RecordAttempt": func(ctx context.Context) error {
			return b.RecordAttempt(ctx, lane, tok, "r1", store.Attempt{At: at, NextAttemptAt: at, LastError: "late"})
		},
		"Complete": func(ctx context.Context) error { return b.Complete(ctx, lane, tok, "r1", succeeded("r1", at)) },
		"ClaimCallbacks": func(ctx context.Context) error {
			_, err := b.ClaimCallbacks(ctx, lane.ClientID, at, 10, longTTL)
			return err
		},
		"CallbackDone":  func(ctx context.Context) error { return b.CallbackDone(ctx, rkey(lane, "r1"), "msg_x") },
		"CallbackRetry": func(ctx context.Context) error { return b.CallbackRetry(ctx, rkey(lane, "r1"), "msg_x", at, "x") },
		"ListEntries": func(ctx context.Context) error {
			_, err := b.ListEntries(ctx, lane.ClientID, "", 10)
			return err
		},
		"RetryEntry": func(ctx context.Context) error { _, err := b.RetryEntry(ctx, rkey(lane, "r2"), at); return err },
		"RequeueEntry": func(ctx context.Context) error {
			_, err := b.RequeueEntry(ctx, rkey(lane, "r2"), before.Version, at)
			return err
		},
		"DropEntry": func(ctx context.Context) error {
			_, err := b.DropEntry(ctx, rkey(lane, "r2"), store.Drop{At: at, Retention: retention})
			return err
		},
		"OutboxStats": func(ctx context.Context) error { _, err := b.OutboxStats(ctx, lane.ClientID); return err },
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range ops {
			if !yield(k) {
				return
			}
		}
	}) {
		began := time.Now()
		if err := ops[name](endedContext()); err == nil {
			t.Errorf("%s with an ended context succeeded, want an error", name)
		}
		if took := time.Since(began); took > patience/2 {
			t.Errorf("%s with an ended context took %v", name, took)
		}
	}
	// Nothing happened: the lease is still held, with its long ttl, and
	// the lane and its entries are as they were.
	if !leaseRefused(t, b, lane) {
		t.Error("an operation with an ended context released the lease")
	}
	time.Sleep(10 * time.Millisecond)
	if err := b.RenewLane(ctxFor(t), lane, tok, longTTL); err != nil {
		t.Errorf("the lease is no longer its holder's: %v", err)
	}
	after := mustLane(t, b, lane)
	if after.Version != before.Version || !slices.Equal(queueOf(after), queueOf(before)) {
		t.Errorf("lane changed: %+v", after)
	}
	for i, e := range after.Queued {
		if d := entryDiff(e, *before.Queued[i]); d != "" {
			t.Errorf("entry %s changed: %s", e.RequestID, d)
		}
	}
}

// testNonPositiveDurations: a lease, a claim or a retention that is not
// positive is refused with a *store.Error naming the operation, and
// nothing is written.
func testNonPositiveDurations(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	before := mustLane(t, b, lane)
	for name, err := range map[string]error{
		"LeaseLane": b.LeaseLane(ctx, ids.lane(), token(), 0),
		"RenewLane": b.RenewLane(ctx, lane, tok, -time.Second),
		"ClaimCallbacks": func() error {
			_, err := b.ClaimCallbacks(ctx, lane.ClientID, at, 10, 0)
			return err
		}(),
		"Complete": b.Complete(ctx, lane, tok, "r1", store.Completion{State: store.EntryFailed, At: at}),
		"DropEntry": func() error {
			_, err := b.DropEntry(ctx, rkey(lane, "r2"), store.Drop{At: at, Retention: -1})
			return err
		}(),
	} {
		var se *store.Error
		if !errors.As(err, &se) || se.Op == "" || se.Backend == "" {
			t.Errorf("%s with a non-positive duration: %v, want a *store.Error naming the operation", name, err)
		}
	}
	if l := mustLane(t, b, lane); l.Version != before.Version || len(l.Queued) != 2 {
		t.Errorf("refused operations changed the lane: %+v", l)
	}
	if err := b.RenewLane(ctx, lane, tok, longTTL); err != nil {
		t.Errorf("the lease was lost: %v", err)
	}
}
