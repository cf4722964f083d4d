package redisstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/internal/outboxplan"
	"github.com/caddy-alipay/ordersync/store/outboxtest"
)

// TestOutboxConformanceModule runs the outbox suite through the Caddy
// module, whose Handle forwards the outbox to the Backend.
func TestOutboxConformanceModule(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran on Backend")
	}
	// The module over a Backend opened by the test, as if the module had
	// opened it.
	type opened struct {
		*Store
		b *Backend
	}
	wrap := func(b store.OutboxBackend) store.OutboxBackend {
		h := store.NewHandle(func() (store.Backend, error) { return b.(*Backend), nil }, func() error { return nil })
		return &opened{Store: &Store{Handle: h}, b: b.(*Backend)}
	}
	unwrap := func(b store.OutboxBackend) store.OutboxBackend { return b.(*opened).b }
	h := outboxHarness()
	open, peer, restart := h.Open, h.Peer, h.Restart
	h.Open = func(t *testing.T) store.OutboxBackend { return wrap(open(t)) }
	h.Peer = func(t *testing.T, b store.OutboxBackend) store.OutboxBackend { return wrap(peer(t, unwrap(b))) }
	h.Restart = func(t *testing.T, b store.OutboxBackend) store.OutboxBackend { return wrap(restart(t, unwrap(b))) }
	outboxtest.Run(t, h)
}

func queuedEntry(lane store.LaneKey, id string, at time.Time) store.Entry {
	return store.Entry{ClientID: lane.ClientID, RequestID: id, MerchantBizNo: lane.MerchantBizNo, OrderStatus: "PAID",
		Body: []byte(`{"requestId":"` + id + `"}`), State: store.EntryQueued, CreatedAt: at, NextAttemptAt: at}
}

// TestOutboxScriptsSurviveRetry: go-redis resends a command whose
// connection broke before the reply arrived, so a script can run twice.
// The second run must answer what the first did and change nothing more.
func TestOutboxScriptsSurviveRetry(t *testing.T) {
	c := newBackend(t)
	ctx := context.Background()
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	at := time.Now()

	// A write: an Enqueue's script, run twice.
	r := c.newReader(ctx, "c")
	ch, existing, err := outboxplan.Enqueue(r, queuedEntry(lane, "r1", at), 0, at)
	if err != nil || existing != nil {
		t.Fatal(existing, err)
	}
	args := applyArgs(r, ch, "wid-1", "", "", at)
	for i, want := range []int{applyDone, applyAlready} {
		if got, err := applyScript.Run(ctx, c.rdb, nil, args...).Int(); err != nil || got != want {
			t.Fatalf("enqueue run %d = %d, %v; want %d", i+1, got, err, want)
		}
	}
	l, err := c.GetLane(ctx, lane)
	if err != nil || l.Version != 1 || len(l.Queued) != 1 {
		t.Fatalf("lane after a retried enqueue = %+v, %v; want version 1 and one entry", l, err)
	}
	// But the same write planned from what is now stale is a conflict.
	if got, err := applyScript.Run(ctx, c.rdb, nil, applyArgs(r, ch, "wid-2", "", "", at)...).Int(); err != nil || got != applyConflict {
		t.Fatalf("a second enqueue from the same reads = %d, %v; want a conflict", got, err)
	}

	// A lease, taken twice with one token.
	lk := c.outboxBase("c") + leaseSuffix("m")
	for i := range 2 {
		if got, err := leaseScript.Run(ctx, c.rdb, []string{lk}, "tok", 60000).Int(); err != nil || got != 1 {
			t.Fatalf("lease run %d = %d, %v", i+1, got, err)
		}
	}
	// A write under the lease: a Complete's script, run twice.
	r = c.newReader(ctx, "c")
	ch, err = outboxplan.Complete(r, lane, "r1", store.Completion{State: store.EntrySucceeded, At: at, Attempted: true,
		Reply: &store.Reply{Status: 200, Body: []byte("S")}, Callback: true, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	args = applyArgs(r, ch, "wid-3", leaseSuffix("m"), "tok", at)
	for i, want := range []int{applyDone, applyAlready} {
		if got, err := applyScript.Run(ctx, c.rdb, nil, args...).Int(); err != nil || got != want {
			t.Fatalf("complete run %d = %d, %v; want %d", i+1, got, err, want)
		}
	}
	e, err := c.GetEntry(ctx, store.RequestKey{ClientID: "c", RequestID: "r1"})
	if err != nil || e.State != store.EntrySucceeded || e.Attempts != 1 {
		t.Fatalf("entry after a retried complete = %+v, %v", e, err)
	}

	// Callback claims, taken twice with one token.
	base := c.outboxBase("c")
	var first []string
	for i := range 2 {
		ids, err := claimCallbacksScript.Run(ctx, c.rdb, []string{base + "cb"}, base, outboxplan.Floor(at.Add(time.Second)),
			10, 100, "claim-1", 60000).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = ids
		} else if !slices.Equal(ids, first) || len(ids) != 1 {
			t.Fatalf("claim runs = %v then %v; want [r1] twice", first, ids)
		}
	}
	if ids, err := claimCallbacksScript.Run(ctx, c.rdb, []string{base + "cb"}, base, outboxplan.Floor(at.Add(time.Second)),
		10, 100, "claim-2", 60000).StringSlice(); err != nil || len(ids) != 0 {
		t.Fatalf("another claim = %v, %v; want nothing", ids, err)
	}
}

// TestOutboxKeyLayout: every key of a client's outbox carries one hash tag,
// the escaped Client-Id, and is one of the kinds the package documents.
func TestOutboxKeyLayout(t *testing.T) {
	c := newBackend(t)
	ctx := context.Background()
	ob := store.NewOutbox(c)
	client := "cl:{x}%"
	at := time.Now()
	for _, mbn := range []string{"m:1", "m}2"} {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: mbn}
		if _, err := ob.Enqueue(ctx, queuedEntry(lane, "r-"+mbn, at), 0); err != nil {
			t.Fatal(err)
		}
	}
	lane := store.LaneKey{ClientID: client, MerchantBizNo: "m:1"}
	lease, err := ob.LeaseLane(ctx, lane, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Complete(ctx, "r-m:1", store.Completion{State: store.EntrySucceeded, At: at, Callback: true,
		Accepted: &store.Order{Status: "PAID"}, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.ClaimCallbacks(ctx, client, at.Add(time.Second), 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	keys, err := c.rdb.Keys(ctx, c.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	tag := c.prefix + "ob:{cl%3A%7Bx%7D%25}:"
	var kinds []string
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, tag)
		if !ok || strings.Count(k[:len(tag)], "{") != 1 {
			t.Errorf("key %q is not under the client's hash tag %q", k, tag)
			continue
		}
		kinds = append(kinds, rest)
	}
	slices.Sort(kinds)
	want := []string{"cb", "cbc:r-m:1", "due", "e:r-m:1", "e:r-m}2", "l:m:1", "l:m}2", "lease:m:1", "st:queued", "st:succeeded"}
	if !slices.Equal(kinds, want) {
		t.Errorf("keys = %q\nwant %q", kinds, want)
	}
}

// TestOutboxServerExpiry: a final entry's key expires at the end of its
// retention on the server's clock, is kept while its callback is pending,
// and leaves no member in the state sets once a later write trims them.
func TestOutboxServerExpiry(t *testing.T) {
	c := newBackend(t)
	ctx := context.Background()
	ob := store.NewOutbox(c)
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	at := time.Now()
	for i, id := range []string{"quiet", "loud"} {
		if _, err := ob.Enqueue(ctx, queuedEntry(lane, id, at), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := ob.LeaseLane(ctx, lane, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"quiet", "loud"} {
		if err := lease.Complete(ctx, id, store.Completion{State: store.EntryFailed, At: time.Now(), Callback: id == "loud",
			Retention: 400 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	base := c.outboxBase("c")
	// The expiry is the end of retention on the writer's clock, rounded up
	// to the millisecond: the server may count a little more.
	if ttl := c.rdb.PTTL(ctx, base+entrySuffix("quiet")).Val(); ttl <= 0 || ttl > 450*time.Millisecond {
		t.Errorf("final entry's ttl = %v, want its retention (400ms)", ttl)
	}
	if ttl := c.rdb.PTTL(ctx, base+entrySuffix("loud")).Val(); ttl != -1 {
		t.Errorf("ttl of an entry with a pending callback = %v, want none (-1)", ttl)
	}
	time.Sleep(600 * time.Millisecond)
	if n := c.rdb.Exists(ctx, base+entrySuffix("quiet")).Val(); n != 0 {
		t.Error("the server kept an entry past its retention")
	}
	loud, err := ob.Entry(ctx, store.RequestKey{ClientID: "c", RequestID: "loud"})
	if err != nil || loud == nil {
		t.Fatalf("entry with a pending callback = %v, %v", loud, err)
	}
	if err := ob.CallbackDone(ctx, store.RequestKey{ClientID: "c", RequestID: "loud"}, loud.Callback.WebhookID); err != nil {
		t.Fatal(err)
	}
	if n := c.rdb.Exists(ctx, base+entrySuffix("loud")).Val(); n != 0 {
		t.Error("an entry past its retention was kept once its callback was done")
	}
	if n := c.rdb.ZCard(ctx, base+stateSuffix(store.EntryFailed)).Val(); n != 0 {
		t.Errorf("%d members left in the failed set", n)
	}
}

// TestOutboxFrozenServer: a server that hangs must not hold any outbox
// operation past its deadline; once it continues, the outbox works.
func TestOutboxFrozenServer(t *testing.T) {
	srv := redistest.Launch(t)
	c := newBackendPrefix(t, srv.Addr, "frozen:")
	bg := context.Background()
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	at := time.Now()
	if _, err := c.Enqueue(bg, queuedEntry(lane, "r1", at), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.LeaseLane(bg, lane, "tok", time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Freeze(t)
	thawed := false
	defer func() {
		if !thawed {
			srv.Thaw(t)
		}
	}()
	const deadline, slack = 500 * time.Millisecond, time.Second
	key := store.RequestKey{ClientID: "c", RequestID: "r1"}
	ops := map[string]func(ctx context.Context) error{
		"Enqueue": func(ctx context.Context) error {
			_, err := c.Enqueue(ctx, queuedEntry(lane, "r2", at), 1)
			return err
		},
		"GetEntry":    func(ctx context.Context) error { _, err := c.GetEntry(ctx, key); return err },
		"GetLane":     func(ctx context.Context) error { _, err := c.GetLane(ctx, lane); return err },
		"DueLanes":    func(ctx context.Context) error { _, err := c.DueLanes(ctx, "c", at, 10); return err },
		"LeaseLane":   func(ctx context.Context) error { return c.LeaseLane(ctx, lane, "other", time.Minute) },
		"RenewLane":   func(ctx context.Context) error { return c.RenewLane(ctx, lane, "tok", time.Minute) },
		"ReleaseLane": func(ctx context.Context) error { return c.ReleaseLane(ctx, lane, "tok") },
		"RecordAttempt": func(ctx context.Context) error {
			return c.RecordAttempt(ctx, lane, "tok", "r1", store.Attempt{At: at, NextAttemptAt: at})
		},
		"Complete": func(ctx context.Context) error {
			return c.Complete(ctx, lane, "tok", "r1", store.Completion{State: store.EntryFailed, At: at, Retention: time.Hour})
		},
		"ClaimCallbacks": func(ctx context.Context) error {
			_, err := c.ClaimCallbacks(ctx, "c", at, 10, time.Minute)
			return err
		},
		"CallbackDone":  func(ctx context.Context) error { return c.CallbackDone(ctx, key, "msg_x") },
		"CallbackRetry": func(ctx context.Context) error { return c.CallbackRetry(ctx, key, "msg_x", at, "x") },
		"ListEntries":   func(ctx context.Context) error { _, err := c.ListEntries(ctx, "c", "", 10); return err },
		"RetryEntry":    func(ctx context.Context) error { _, err := c.RetryEntry(ctx, key, at); return err },
		"RequeueEntry":  func(ctx context.Context) error { _, err := c.RequeueEntry(ctx, key, 1, at); return err },
		"DropEntry": func(ctx context.Context) error {
			_, err := c.DropEntry(ctx, key, store.Drop{At: at, Retention: time.Hour})
			return err
		},
		"OutboxStats": func(ctx context.Context) error { _, err := c.OutboxStats(ctx, "c"); return err },
	}
	var wg sync.WaitGroup
	for name, op := range ops {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(bg, deadline)
			defer cancel()
			began := time.Now()
			err := op(ctx)
			if took := time.Since(began); took > deadline+slack {
				t.Errorf("%s returned %v after its %v deadline", name, took-deadline, deadline)
			}
			if err == nil {
				t.Errorf("%s succeeded against a frozen server", name)
			}
		})
	}
	wg.Wait()
	srv.Thaw(t)
	thawed = true
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if l, err := c.GetLane(ctx, lane); err != nil || len(l.Queued) == 0 {
		t.Fatalf("GetLane after the server continued = %+v, %v", l, err)
	}
}
