package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
)

// TestFrozenServer: a server that hangs (SIGSTOP: connections are accepted,
// nothing is answered) must not hold anyone past their deadline. Every
// operation returns an error by its context's deadline, a claim's Release
// and an order's unlock return at once and finish in the background within
// their own bound, and once the server continues the store works again.
func TestFrozenServer(t *testing.T) {
	srv := redistest.Launch(t)
	// go-redis's own socket timeouts are set far past every bound checked
	// below (their defaults, 2s, equal the clean-up's bound), so that only
	// the contexts' deadlines and the clean-up's bound can end a wait.
	c, err := Open(Options{Addr: srv.Addr, KeyPrefix: "frozen:", DialTimeout: time.Minute, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	var cleanupErrs []string
	st := store.New(c, store.Options{CleanupFailed: func(op string, err error) {
		mu.Lock()
		cleanupErrs = append(cleanupErrs, op+": "+err.Error())
		mu.Unlock()
	}})
	bg := context.Background()
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	rkey := store.RequestKey{ClientID: "c", RequestID: "r"}
	claim, err := st.Claim(bg, rkey, store.HashBody(nil), time.Minute)
	if err != nil || claim.Status != store.Claimed {
		t.Fatalf("Claim = %v, %v", claim, err)
	}
	// A Claim is for one goroutine: Commit gets a claim of its own.
	committing, err := st.Claim(bg, store.RequestKey{ClientID: "c", RequestID: "r2"}, store.HashBody(nil), time.Minute)
	if err != nil || committing.Status != store.Claimed {
		t.Fatalf("Claim = %v, %v", committing, err)
	}
	// And one holds the order's lock, one is about to ask for another's.
	locking, err := st.Claim(bg, store.RequestKey{ClientID: "c", RequestID: "r3"}, store.HashBody(nil), time.Minute)
	if err != nil || locking.Status != store.Claimed {
		t.Fatalf("Claim = %v, %v", locking, err)
	}
	if err := locking.LockOrder(bg, okey, time.Minute); err != nil {
		t.Fatal(err)
	}
	lockingOther, err := st.Claim(bg, store.RequestKey{ClientID: "c", RequestID: "r4"}, store.HashBody(nil), time.Minute)
	if err != nil || lockingOther.Status != store.Claimed {
		t.Fatalf("Claim = %v, %v", lockingOther, err)
	}

	srv.Freeze(t)
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw(t)
		}
	}()

	const deadline = 500 * time.Millisecond
	// One second past the deadline is slack for a loaded machine; before
	// clean-up steps moved to the background, Claim and LockOrder took
	// 2.3s here and unlock 2s (the clean-up's own timeout).
	const slack = time.Second
	other := store.RequestKey{ClientID: "c", RequestID: "other"}
	otherOrder := store.OrderKey{ClientID: "c", MerchantBizNo: "other"}
	ops := map[string]func(ctx context.Context) error{
		"Backend.Claim": func(ctx context.Context) error {
			_, err := c.Claim(ctx, other, store.HashBody(nil), "t", time.Minute)
			return err
		},
		"Backend.Release": func(ctx context.Context) error { return c.Release(ctx, other, "t") },
		"Backend.Finish": func(ctx context.Context) error {
			return c.Finish(ctx, other, "t", testReply("f"), time.Minute)
		},
		"Backend.LockOrder":   func(ctx context.Context) error { return c.LockOrder(ctx, otherOrder, "t", time.Minute) },
		"Backend.UnlockOrder": func(ctx context.Context) error { return c.UnlockOrder(ctx, otherOrder, "t") },
		"Backend.GetOrder": func(ctx context.Context) error {
			_, err := c.GetOrder(ctx, okey)
			return err
		},
		"Backend.CommitSuccess": func(ctx context.Context) error {
			return c.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, other, "t", testReply("s"), time.Minute)
		},
		"Backend.GetRequest": func(ctx context.Context) error {
			_, err := c.GetRequest(ctx, rkey)
			return err
		},
		"Store.Claim": func(ctx context.Context) error {
			_, err := st.Claim(ctx, other, store.HashBody(nil), time.Minute)
			return err
		},
		"Claim.LockOrder": func(ctx context.Context) error { return lockingOther.LockOrder(ctx, otherOrder, time.Minute) },
		"Claim.Finish":    func(ctx context.Context) error { return claim.Finish(ctx, testReply("f"), time.Minute) },
		"Claim.Commit": func(ctx context.Context) error {
			return committing.Commit(ctx, store.OrderChange{Key: okey, Next: store.Order{Status: "A"}}, testReply("s"), time.Minute)
		},
	}
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(bg, deadline)
			defer cancel()
			began := time.Now()
			err := op(ctx)
			took := time.Since(began)
			if err == nil {
				t.Errorf("%s succeeded against a frozen server", name)
			}
			if took > deadline+slack {
				t.Errorf("%s returned %v after its %v deadline", name, took-deadline, deadline)
			}
		})
	}
	wg.Wait()

	began := time.Now()
	for _, cl := range []*store.Claim{claim, committing, locking, lockingOther} {
		cl.Release() // locking's also unlocks the order
	}
	if took := time.Since(began); took > 4*store.DefaultReleaseWait+slack {
		t.Errorf("Release took %v with the server frozen", took)
	}
	began = time.Now()
	st.Wait()
	// The clean-up steps started with the releases above and each runs
	// for its whole bound against a frozen server: what is measured is
	// the bound plus how late a loaded machine wakes them (seen up to
	// 0.4s with the CPU taken by eight busy loops, past 1s once in a full
	// run), so the slack here is wider.
	if took := time.Since(began); took > store.DefaultCleanupTimeout+3*slack {
		t.Errorf("the background clean-up ran %v, past its %v bound", took, store.DefaultCleanupTimeout)
	}
	mu.Lock()
	if len(cleanupErrs) == 0 {
		t.Error("no background clean-up step reported its failure")
	}
	mu.Unlock()

	srv.Thaw(t)
	thawed = true
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	fresh := store.RequestKey{ClientID: "c", RequestID: "after"}
	after, err := st.Claim(ctx, fresh, store.HashBody(nil), time.Minute)
	if err != nil || after.Status != store.Claimed {
		t.Fatalf("Claim after the server continued = %v, %v", after, err)
	}
	if err := after.Finish(ctx, testReply("ok"), time.Minute); err != nil {
		t.Fatalf("Finish after the server continued: %v", err)
	}
}
