package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// raceWorkers is how many goroutines the race tests run at once, half of
// them on a second instance.
const raceWorkers = 16

// instances returns b and its peer, alternately.
func instances(t *testing.T, h Harness, b store.OutboxBackend) func(i int) store.OutboxBackend {
	peer := h.Peer(t, b)
	return func(i int) store.OutboxBackend {
		if i%2 == 1 {
			return peer
		}
		return b
	}
}

// enqueueChecked is what the egress side does: read the lane, check, and
// enqueue against the version read, again while the lane moves. It returns
// the version the successful Enqueue was made against.
func enqueueChecked(ctx context.Context, b store.OutboxBackend, e store.Entry) (uint64, *store.Entry, error) {
	for {
		l, err := b.GetLane(ctx, store.LaneKey{ClientID: e.ClientID, MerchantBizNo: e.MerchantBizNo})
		if err != nil {
			return 0, nil, err
		}
		existing, err := b.Enqueue(ctx, e, l.Version)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return l.Version, existing, err
	}
}

// testRaceEnqueueOrder: concurrent enqueues into one lane, from two
// instances, each checked against the version it read: every entry is
// queued once, no two against the same version, and the lane's order is
// the order of those versions — acceptance order.
func testRaceEnqueueOrder(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	inst := instances(t, h, b)
	lane := ids.lane()
	const perWorker = 4
	var mu sync.Mutex
	byVersion := map[uint64]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range raceWorkers {
		wg.Go(func() {
			<-start
			for i := range perWorker {
				id := fmt.Sprintf("w%d-%d", w, i)
				v, existing, err := enqueueChecked(ctxFor(t), inst(w), newEntry(lane, id, "PAID", now()))
				if err != nil || existing != nil {
					t.Errorf("Enqueue(%s) = %v, %v", id, existing, err)
					return
				}
				mu.Lock()
				if prev, dup := byVersion[v]; dup {
					t.Errorf("%s and %s were both queued against version %d", prev, id, v)
				}
				byVersion[v] = id
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	versions := slices.Sorted(func(yield func(uint64) bool) {
		for v := range byVersion {
			if !yield(v) {
				return
			}
		}
	})
	want := make([]string, len(versions))
	for i, v := range versions {
		want[i] = byVersion[v]
	}
	got := queueOf(mustLane(t, b, lane))
	if len(got) != raceWorkers*perWorker || !slices.Equal(got, want) {
		t.Errorf("lane order = %v\nwant (by version read) %v", got, want)
	}
	// Each worker's own entries are in its order.
	for w := range raceWorkers {
		last := -1
		for i, id := range got {
			var gw, gi int
			fmt.Sscanf(id, "w%d-%d", &gw, &gi)
			if gw == w {
				if gi <= last {
					t.Errorf("worker %d's entries out of order at %d: %v", w, i, got)
				}
				last = gi
			}
		}
	}
}

// testRaceDedupe: concurrent enqueues of one requestId with different
// bodies, from two instances: one is queued, everybody else gets exactly
// that entry back.
func testRaceDedupe(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	inst := instances(t, h, b)
	for range 5 {
		lane := ids.lane()
		var wins atomic.Int32
		var winner atomic.Pointer[store.BodyHash]
		seen := make(chan store.BodyHash, raceWorkers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range raceWorkers {
			wg.Go(func() {
				e := newEntry(lane, "same", fmt.Sprint("S", w), now())
				<-start
				_, existing, err := enqueueChecked(ctxFor(t), inst(w), e)
				switch {
				case err != nil:
					t.Errorf("Enqueue: %v", err)
				case existing == nil:
					wins.Add(1)
					h := store.HashBody(e.Body)
					winner.Store(&h)
				default:
					seen <- existing.BodyHash
				}
			})
		}
		close(start)
		wg.Wait()
		close(seen)
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d of %d enqueues of one requestId queued it, want 1", n, raceWorkers)
		}
		for h := range seen {
			if h != *winner.Load() {
				t.Error("a duplicate got an entry other than the one queued")
			}
		}
		if got := queueOf(mustLane(t, b, lane)); !slices.Equal(got, []string{"same"}) {
			t.Errorf("lane = %v, want [same]", got)
		}
	}
}

// testRaceDelivery runs delivery as the egress runners will, on two
// instances at once: poll due lanes, lease one, complete its head, release.
// Meanwhile more entries are queued. Every entry ends exactly once, and
// each lane's entries end in the order they were queued.
func testRaceDelivery(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	inst := instances(t, h, b)
	client := ids.client()
	const lanes, perLane = 6, 5
	var mu sync.Mutex
	ended := map[string][]string{} // lane → requestIds in the order they ended
	queuedOrder := map[string][]string{}
	var completions atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 4*patience)
	defer cancel()

	var producers sync.WaitGroup
	for l := range lanes {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: fmt.Sprint("lane-", l)}
		producers.Go(func() {
			for i := range perLane {
				id := fmt.Sprintf("%s-%d", lane.MerchantBizNo, i)
				if _, existing, err := enqueueChecked(ctx, inst(l+i), newEntry(lane, id, "PAID", now())); err != nil || existing != nil {
					t.Errorf("Enqueue(%s) = %v, %v", id, existing, err)
					return
				}
				mu.Lock()
				queuedOrder[lane.MerchantBizNo] = append(queuedOrder[lane.MerchantBizNo], id)
				mu.Unlock()
			}
		})
	}
	var runners sync.WaitGroup
	for w := range 8 {
		ob := store.NewOutbox(inst(w))
		runners.Go(func() {
			for ctx.Err() == nil && completions.Load() < lanes*perLane {
				due, err := ob.Due(ctx, client, now().Add(time.Millisecond), 4)
				if err != nil {
					t.Errorf("Due: %v", err)
					return
				}
				if len(due.Lanes) == 0 {
					time.Sleep(time.Millisecond)
				}
				for _, lk := range due.Lanes {
					deliverHead(t, ctx, ob, lk, &mu, ended, &completions)
				}
			}
		})
	}
	producers.Wait()
	runners.Wait()
	if n := completions.Load(); n != lanes*perLane {
		t.Fatalf("%d completions, want %d", n, lanes*perLane)
	}
	for lane, want := range queuedOrder {
		// Entries of one lane are queued by one producer, so the queued
		// order is the producer's order.
		if got := ended[lane]; !slices.Equal(got, want) {
			t.Errorf("lane %s ended in the order %v, want %v", lane, got, want)
		}
	}
}

// deliverHead leases lk and completes its head, if it can.
func deliverHead(t *testing.T, ctx context.Context, ob *store.Outbox, lk store.LaneKey, mu *sync.Mutex, ended map[string][]string, completions *atomic.Int32) {
	lease, err := ob.LeaseLane(ctx, lk, longTTL)
	if errors.Is(err, store.ErrLaneLeased) {
		return
	}
	if err != nil {
		t.Errorf("LeaseLane: %v", err)
		return
	}
	defer func() {
		if err := lease.Release(context.Background()); err != nil {
			t.Errorf("Release: %v", err)
		}
	}()
	l, err := ob.Lane(ctx, lk)
	if err != nil {
		t.Errorf("Lane: %v", err)
		return
	}
	if len(l.Queued) == 0 {
		return // delivered by another runner since Due
	}
	head := l.Queued[0].RequestID
	c := succeeded(head, now())
	c.Callback = false
	if err := lease.Complete(ctx, head, c); err != nil {
		t.Errorf("Complete(%s) under the lease: %v", head, err)
		return
	}
	mu.Lock()
	ended[lk.MerchantBizNo] = append(ended[lk.MerchantBizNo], head)
	mu.Unlock()
	completions.Add(1)
}
