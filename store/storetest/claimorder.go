package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// orderRequest returns a fresh order and a request of it, under one fresh
// client.
func (ids *idSource) orderRequest() (store.OrderKey, store.RequestKey) {
	client := ids.client()
	return store.OrderKey{ClientID: client, MerchantBizNo: "order-1"}, store.RequestKey{ClientID: client, RequestID: "req-1"}
}

func mustClaimOrder(t *testing.T, st *store.Store, key store.RequestKey, hash store.BodyHash, okey store.OrderKey) *store.Claim {
	t.Helper()
	c, err := st.ClaimOrder(ctxFor(t), key, hash, okey, longLease)
	if err != nil {
		t.Fatalf("ClaimOrder(%v): %v", key, err)
	}
	if c.Status != store.Claimed {
		t.Fatalf("ClaimOrder(%v) = %s, want Claimed", key, c.Status)
	}
	return c
}

// testClaimOrderCommit: a new request of a new order is claimed with the
// order locked and no state; its Commit stores both and unlocks.
func testClaimOrderCommit(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	c := mustClaimOrder(t, st, key, bodyA, okey)
	if c.Order != nil {
		t.Errorf("Order of a new order = %+v, want nil", c.Order)
	}
	if !lockHeld(t, s, okey, 100*time.Millisecond) {
		t.Fatal("the order is not locked")
	}
	next := sampleOrder("A", 1, key.RequestID)
	want := sampleReply("commit")
	if err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Prev: c.Order, Next: next}, want, longTTL); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Commit")
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Error(d)
	}
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}
}

// testClaimOrderReadsOrder: the claim carries the order's state as
// stored, read under the lock.
func testClaimOrderReadsOrder(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	first := sampleOrder("A", 1, key.RequestID)
	c := mustClaimOrder(t, st, key, bodyA, okey)
	if err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Next: first}, sampleReply("a"), longTTL); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	st.Wait()
	key2 := store.RequestKey{ClientID: key.ClientID, RequestID: "req-2"}
	c2 := mustClaimOrder(t, st, key2, bodyB, okey)
	defer c2.Release()
	if d := orderDiff(c2.Order, first); d != "" {
		t.Errorf("Order: %s", d)
	}
	next := sampleOrder("B", 2, key2.RequestID)
	if err := c2.Commit(ctxFor(t), store.OrderChange{Key: okey, Prev: c2.Order, Next: next}, sampleReply("b"), longTTL); err != nil {
		t.Fatalf("Commit over the order read: %v", err)
	}
}

// testClaimOrderNotClaimed: a request that is not claimed (Done,
// InFlight, Mismatch) takes no lock and reads nothing.
func testClaimOrderNotClaimed(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	c := mustClaimOrder(t, st, key, bodyA, okey)
	for _, tc := range []struct {
		hash store.BodyHash
		want store.ClaimStatus
	}{{bodyA, store.InFlight}, {bodyB, store.InFlight}} {
		got, err := st.ClaimOrder(ctxFor(t), key, tc.hash, okey, longLease)
		if err != nil || got.Status != tc.want || got.Order != nil {
			t.Fatalf("ClaimOrder of a claimed request = %+v, %v; want %s", got, err, tc.want)
		}
	}
	if err := c.Finish(ctxFor(t), sampleReply("f"), longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Finish")
	}
	for _, tc := range []struct {
		hash store.BodyHash
		want store.ClaimStatus
	}{{bodyA, store.Done}, {bodyB, store.Mismatch}} {
		got, err := st.ClaimOrder(ctxFor(t), key, tc.hash, okey, longLease)
		if err != nil || got.Status != tc.want {
			t.Fatalf("ClaimOrder of a finished request = %+v, %v; want %s", got, err, tc.want)
		}
		got.Release() // holds nothing
		st.Wait()
		if lockHeld(t, s, okey, 100*time.Millisecond) {
			t.Fatalf("ClaimOrder answering %s locked the order", tc.want)
		}
	}
}

// testClaimOrderWaitsForLock: a request whose order is locked by another
// is claimed, waits for the lock, and reads the state its holder left.
func testClaimOrderWaitsForLock(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	unlock := holdLock(t, st, okey)
	type result struct {
		c   *store.Claim
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := st.ClaimOrder(ctxFor(t), key, bodyA, okey, longLease)
		got <- result{c, err}
	}()
	// The holder changes the order, then unlocks.
	other := store.RequestKey{ClientID: key.ClientID, RequestID: "other"}
	first := sampleOrder("A", 1, other.RequestID)
	oc := mustClaimValue(t, st, other, bodyB)
	if err := oc.Commit(ctxFor(t), store.OrderChange{Key: okey, Next: first}, sampleReply("o"), longTTL); err != nil {
		t.Fatal(err)
	}
	// Claimed while it waits for the lock.
	for deadline := time.Now().Add(patience); mustGetRequest(t, s, key) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("ClaimOrder did not claim the request while waiting for the lock")
		}
		time.Sleep(time.Millisecond)
	}
	unlock()
	r := <-got
	if r.err != nil || r.c.Status != store.Claimed {
		t.Fatalf("ClaimOrder behind a held lock = %+v, %v; want Claimed", r.c, r.err)
	}
	defer r.c.Release()
	if d := orderDiff(r.c.Order, first); d != "" {
		t.Errorf("Order read once the lock was free: %s", d)
	}
	if !lockHeld(t, s, okey, 100*time.Millisecond) {
		t.Fatal("the order is not locked by the claim")
	}
}

// testClaimOrderLockTimeout: a ClaimOrder whose wait for the lock ends
// with its context holds nothing: not the claim, not the lock.
func testClaimOrderLockTimeout(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	unlock := holdLock(t, st, okey)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if c, err := st.ClaimOrder(ctx, key, bodyA, okey, longLease); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("ClaimOrder behind a held lock, short deadline = %+v, %v; want ErrLockTimeout", c, err)
	}
	st.Wait()
	wantClaim(t, s, key, bodyA, store.Claimed) // the requestId is free again
	unlock()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the lock stayed held")
	}
}

// testClaimOrderReleaseUnlocks: Release gives up the claim and the lock;
// so does a Commit refused with ErrConflict followed by Release.
func testClaimOrderReleaseUnlocks(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	c := mustClaimOrder(t, st, key, bodyA, okey)
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Release")
	}
	c = mustClaimOrder(t, st, key, bodyA, okey)
	stale := sampleOrder("Z", 9, "someone")
	err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Prev: &stale, Next: sampleOrder("A", 1, key.RequestID)}, sampleReply("a"), longTTL)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit over a stale state: %v, want ErrConflict", err)
	}
	if !lockHeld(t, s, okey, 100*time.Millisecond) {
		t.Fatal("a refused Commit unlocked the order before Release")
	}
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Release")
	}
	if mustGetRequest(t, s, key) != nil {
		t.Fatal("the request kept a record after Release")
	}
}

// testClaimOrderSteps: ClaimOrderSteps tells each operation it made, in
// order: the claim, and the lock and read where they were separate steps
// (all three, or the claim alone on a backend that does them in one);
// a request that is not claimed, only the claim; a failed operation last,
// with its error.
func testClaimOrderSteps(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	type told struct {
		op  string
		err error
	}
	var steps []told
	step := func(op string, began time.Time, err error) {
		if began.IsZero() || time.Since(began) < 0 {
			t.Errorf("step %s: began %v", op, began)
		}
		steps = append(steps, told{op, err})
	}
	names := func() []string {
		var out []string
		for _, s := range steps {
			out = append(out, s.op)
		}
		return out
	}
	okey, key := ids.orderRequest()
	c, err := st.ClaimOrderSteps(ctxFor(t), key, bodyA, okey, longLease, step)
	if err != nil || c.Status != store.Claimed {
		t.Fatalf("ClaimOrderSteps = %+v, %v", c, err)
	}
	if got := names(); !slices.Equal(got, []string{"claim"}) && !slices.Equal(got, []string{"claim", "lock", "get_order"}) {
		t.Errorf("steps of a claimed request: %v, want claim, or claim lock get_order", got)
	}
	if err := c.Finish(ctxFor(t), sampleReply("steps"), longTTL); err != nil {
		t.Fatal(err)
	}
	st.Wait()
	steps = nil
	if c, err := st.ClaimOrderSteps(ctxFor(t), key, bodyA, okey, longLease, step); err != nil || c.Status != store.Done {
		t.Fatalf("ClaimOrderSteps of a finished request = %+v, %v", c, err)
	}
	if got := names(); !slices.Equal(got, []string{"claim"}) {
		t.Errorf("steps of a finished request: %v, want claim", got)
	}

	// Behind a lock held by another, until the deadline.
	okey, key = ids.orderRequest()
	unlock := holdLock(t, st, okey)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	steps = nil
	if _, err := st.ClaimOrderSteps(ctx, key, bodyA, okey, longLease, step); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("ClaimOrderSteps behind a held lock = %v, want ErrLockTimeout", err)
	}
	if got := names(); !slices.Equal(got, []string{"claim", "lock"}) || steps[0].err != nil || !errors.Is(steps[1].err, store.ErrLockTimeout) {
		t.Errorf("steps behind a held lock: %+v, want the claim, then the lock with ErrLockTimeout", steps)
	}
}

// holdLock locks okey as another request does (a claim of its own
// requestId, then Claim.LockOrder) and returns what gives both up.
func holdLock(t *testing.T, st *store.Store, okey store.OrderKey) (unlock func()) {
	t.Helper()
	c := mustClaimValue(t, st, store.RequestKey{ClientID: okey.ClientID, RequestID: "lock-holder"}, bodyA)
	if err := c.LockOrder(ctxFor(t), okey, longLease); err != nil {
		c.Release()
		t.Fatal(err)
	}
	return c.Release
}
