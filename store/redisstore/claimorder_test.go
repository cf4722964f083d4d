package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// TestCombinedScriptsSurviveRetry: ClaimOrder, FinishUnlock and
// CommitSuccessUnlock give the same answer when run twice with the same
// tokens (go-redis resends a command whose connection broke), and leave
// the order unlocked once the write is done.
func TestCombinedScriptsSurviveRetry(t *testing.T) {
	c := newBackend(t)
	ctx := context.Background()
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	rkey := store.RequestKey{ClientID: "c", RequestID: "r1"}
	hash := store.HashBody([]byte("a"))
	for i := range 2 {
		res, locked, order, err := c.ClaimOrder(ctx, rkey, hash, "tok", okey, "lock", time.Minute)
		if err != nil || res.Status != store.Claimed || !locked || order != nil {
			t.Fatalf("ClaimOrder run %d = %+v, %v, %+v, %v; want Claimed and locked, no order", i, res, locked, order, err)
		}
	}
	first := store.Order{Scenario: "s", Status: "PAID", ModifyTime: 5, RequestID: "r1"}
	for i := range 2 {
		if err := c.CommitSuccessUnlock(ctx, okey, nil, first, rkey, "tok", testReply("S"), time.Minute, "lock"); err != nil {
			t.Fatalf("CommitSuccessUnlock run %d: %v", i, err)
		}
	}
	if n := c.rdb.Exists(ctx, c.lockKey(okey)).Val(); n != 0 {
		t.Fatal("the order stayed locked after CommitSuccessUnlock")
	}

	rkey2 := store.RequestKey{ClientID: "c", RequestID: "r2"}
	for i := range 2 {
		res, locked, order, err := c.ClaimOrder(ctx, rkey2, hash, "tok2", okey, "lock2", time.Minute)
		if err != nil || res.Status != store.Claimed || !locked || order == nil || !store.SameVersion(order, &first) {
			t.Fatalf("ClaimOrder run %d = %+v, %v, %+v, %v; want Claimed and locked, with the order", i, res, locked, order, err)
		}
	}
	// Another request of the order is claimed but does not get the lock.
	rkey3 := store.RequestKey{ClientID: "c", RequestID: "r3"}
	if res, locked, order, err := c.ClaimOrder(ctx, rkey3, hash, "tok3", okey, "lock3", time.Minute); err != nil || res.Status != store.Claimed || locked || order != nil {
		t.Fatalf("ClaimOrder of a locked order = %+v, %v, %+v, %v; want Claimed, not locked", res, locked, order, err)
	}
	for i := range 2 {
		if err := c.FinishUnlock(ctx, rkey2, "tok2", testReply("F"), time.Minute, okey, "lock2"); err != nil {
			t.Fatalf("FinishUnlock run %d: %v", i, err)
		}
	}
	if n := c.rdb.Exists(ctx, c.lockKey(okey)).Val(); n != 0 {
		t.Fatal("the order stayed locked after FinishUnlock")
	}
	// A write that is refused unlocks nothing.
	if err := c.rdb.Set(ctx, c.lockKey(okey), "lock3", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishUnlock(ctx, rkey3, "not-the-token", testReply("F"), time.Minute, okey, "lock3"); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("FinishUnlock by a stranger: %v, want ErrNotOwner", err)
	}
	if err := c.CommitSuccessUnlock(ctx, okey, nil, first, rkey3, "tok3", testReply("S"), time.Minute, "lock3"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CommitSuccessUnlock over a stale state: %v, want ErrConflict", err)
	}
	if n := c.rdb.Exists(ctx, c.lockKey(okey)).Val(); n != 1 {
		t.Fatal("a refused write unlocked the order")
	}
}

// TestClaimOrderRoundTrips: the first-time path through Store.ClaimOrder
// and Commit costs two round trips on Redis (claim + lock + read, commit +
// unlock), both through the Backend and through the Caddy module's
// Handle; the separate primitives cost five.
func TestClaimOrderRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    func(t *testing.T) (store.Backend, *atomic.Int64)
	}{
		{"Backend", func(t *testing.T) (store.Backend, *atomic.Int64) {
			c := counted{Backend: newBackend(t), trips: new(atomic.Int64)}
			c.rdb.AddHook(c)
			return c.Backend, c.trips
		}},
		{"Handle", func(t *testing.T) (store.Backend, *atomic.Int64) {
			c := counted{Backend: newBackend(t), trips: new(atomic.Int64)}
			c.rdb.AddHook(c)
			h := store.NewHandle(func() (store.Backend, error) { return c.Backend, nil }, func() error { return nil })
			return h, c.trips
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, trips := tc.b(t)
			st := store.New(b, store.Options{})
			ctx := context.Background()
			run := func(i int) {
				okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m" + string(rune('a'+i))}
				rkey := store.RequestKey{ClientID: "c", RequestID: okey.MerchantBizNo}
				claim, err := st.ClaimOrder(ctx, rkey, store.HashBody(nil), okey, time.Minute)
				if err != nil || claim.Status != store.Claimed {
					t.Fatalf("ClaimOrder = %+v, %v", claim, err)
				}
				defer claim.Release()
				next := store.Order{Status: "PAID", RequestID: rkey.RequestID}
				if err := claim.Commit(ctx, store.OrderChange{Key: okey, Prev: claim.Order, Next: next}, testReply("S"), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			run(0) // loads the scripts into the server's cache
			st.Wait()
			before := trips.Load()
			run(1)
			st.Wait()
			if n := trips.Load() - before; n != 2 {
				t.Errorf("first-time path took %d round trips, want 2", n)
			}
		})
	}
}
