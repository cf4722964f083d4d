package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
)

func testReply(body string) store.Reply {
	return store.Reply{
		Status: 200,
		Header: map[string][]string{
			"Content-Type":  {"application/json; charset=UTF-8"},
			"Response-Time": {"2025-03-26T08:25:06.708+08:00"},
			"Signature":     {"algorithm=RSA256,keyVersion=1,signature=a%2Bb%3D"},
		},
		Body: []byte(body),
	}
}

// TestTwoInstancesLockedTransition: two Clients (two Caddy instances) each
// run many requests that all want the same transition of one order,
// following the handler's sequence: claim, lock, read, check, commit. The
// transition must happen exactly once.
func TestTwoInstancesLockedTransition(t *testing.T) {
	addr, prefix := sharedAddr(t), uniquePrefix()
	a := store.New(newBackendPrefix(t, addr, prefix), store.Options{})
	b := store.New(newBackendPrefix(t, addr, prefix), store.Options{})
	defer a.Wait()
	defer b.Wait()
	okey := store.OrderKey{ClientID: "client:1", MerchantBizNo: "biz{1}"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const perInstance = 25
	var wins, refused, failures sync.Map
	var wg sync.WaitGroup
	for i, s := range []*store.Store{a, b, a, b} {
		for j := range perInstance / 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rid := fmt.Sprintf("req-%d-%d", i, j)
				rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: rid}
				cl, err := s.Claim(ctx, rkey, store.HashBody([]byte(rid)), time.Minute)
				if err != nil || cl.Status != store.Claimed {
					failures.Store(rid, fmt.Sprint(cl, err))
					return
				}
				defer cl.Release()
				if err := cl.LockOrder(ctx, okey, 10*time.Second); err != nil {
					failures.Store(rid, err)
					return
				}
				prev, err := s.GetOrder(ctx, okey)
				if err != nil {
					failures.Store(rid, err)
					return
				}
				if prev != nil {
					// The transition already happened: the handler answers
					// F and stores that reply.
					refused.Store(rid, true)
					if err := cl.Finish(ctx, testReply("F"), time.Minute); err != nil {
						failures.Store(rid, err)
					}
					return
				}
				next := store.Order{Scenario: "gift_card", Status: "TICKETED", ModifyTime: 1, RequestID: rid, UpdatedAt: time.Now()}
				if err := cl.Commit(ctx, store.OrderChange{Key: okey, Prev: prev, Next: next}, testReply("S"), time.Minute); err != nil {
					failures.Store(rid, err)
					return
				}
				wins.Store(rid, true)
			}()
		}
	}
	wg.Wait()
	failures.Range(func(k, v any) bool { t.Errorf("%v: %v", k, v); return true })
	var nWins, nRefused int
	var winner string
	wins.Range(func(k, _ any) bool { nWins++; winner = k.(string); return true })
	refused.Range(func(_, _ any) bool { nRefused++; return true })
	if nWins != 1 {
		t.Fatalf("transition committed %d times, want exactly 1", nWins)
	}
	if nWins+nRefused != 4*(perInstance/2) {
		t.Errorf("wins %d + refused %d != %d requests", nWins, nRefused, 4*(perInstance/2))
	}
	got, err := b.GetOrder(ctx, okey)
	if err != nil || got == nil || got.RequestID != winner {
		t.Fatalf("stored order = %+v, %v; want the winner %s", got, err, winner)
	}
}

// TestTwoInstancesStaleCommit: without the lock, every contender read the
// same (absent) state before any of them committed. CommitSuccess's own
// check must let exactly one through and refuse the rest with ErrConflict,
// whichever instance they run on.
func TestTwoInstancesStaleCommit(t *testing.T) {
	addr, prefix := sharedAddr(t), uniquePrefix()
	clients := []*Backend{newBackendPrefix(t, addr, prefix), newBackendPrefix(t, addr, prefix)}
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A first accepted state, so prev is non-nil and all three compared
	// fields matter.
	base := store.Order{Status: "CREATED", ModifyTime: 100, RequestID: "r0"}
	if _, err := clients[0].Claim(ctx, store.RequestKey{ClientID: "c", RequestID: "r0"}, store.HashBody(nil), "t0", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := clients[0].CommitSuccess(ctx, okey, nil, base, store.RequestKey{ClientID: "c", RequestID: "r0"}, "t0", testReply("0"), time.Minute); err != nil {
		t.Fatal(err)
	}
	prev, err := clients[1].GetOrder(ctx, okey)
	if err != nil || prev == nil {
		t.Fatalf("GetOrder = %v, %v", prev, err)
	}

	const n = 40
	type contender struct {
		rkey  store.RequestKey
		token string
	}
	cs := make([]contender, n)
	for i := range cs {
		rkey := store.RequestKey{ClientID: "c", RequestID: fmt.Sprintf("r%d", i+1)}
		tok := fmt.Sprint("t", i+1)
		cl, err := clients[i%2].Claim(ctx, rkey, store.HashBody(nil), tok, time.Minute)
		if err != nil || cl.Status != store.Claimed {
			t.Fatalf("claim %d: %v %v", i, cl.Status, err)
		}
		cs[i] = contender{rkey, tok}
	}
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			next := store.Order{Status: "PAID", ModifyTime: 200, RequestID: cs[i].rkey.RequestID}
			errs[i] = clients[i%2].CommitSuccess(ctx, okey, prev, next, cs[i].rkey, cs[i].token, testReply("S"), time.Minute)
		}()
	}
	start.Done()
	wg.Wait()
	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrConflict):
			// A loser must have written nothing: its request is still in
			// flight, not done.
			rec, gerr := clients[0].GetRequest(ctx, cs[i].rkey)
			if gerr != nil || rec == nil || rec.Done {
				t.Errorf("loser %d: request record %+v, %v; want still in flight", i, rec, gerr)
			}
		default:
			t.Errorf("contender %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d commits succeeded, want exactly 1", ok)
	}
}

// TestScriptsSurviveRetry: go-redis resends a command when the connection
// breaks before the reply arrives, so a script can run twice with the same
// token. The second run must not turn the caller's own claim, lock or
// commit against it.
func TestScriptsSurviveRetry(t *testing.T) {
	c := newBackend(t)
	ctx := context.Background()
	rkey := store.RequestKey{ClientID: "c", RequestID: "r"}
	rk := c.requestKey(rkey)
	hash := "00"
	for range 2 {
		res, err := claimScript.Run(ctx, c.rdb, []string{rk}, hash, "tok", 60000).Slice()
		if err != nil || res[0].(int64) != claimNew {
			t.Fatalf("claim run: %v %v", res, err)
		}
	}
	for range 2 {
		if n, err := finishScript.Run(ctx, c.rdb, []string{rk}, "tok", store.EncodeReply(testReply("x")), 60000).Int(); err != nil || n != 1 {
			t.Fatalf("finish run: %v %v", n, err)
		}
	}
	lk := c.lockKey(store.OrderKey{ClientID: "c", MerchantBizNo: "m"})
	for range 2 {
		if n, err := lockScript.Run(ctx, c.rdb, []string{lk}, "tok", 60000).Int(); err != nil || n != 1 {
			t.Fatalf("lock run: %v %v", n, err)
		}
	}

	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m2"}
	rkey2 := store.RequestKey{ClientID: "c", RequestID: "r2"}
	if _, err := c.Claim(ctx, rkey2, store.HashBody(nil), "tok2", time.Minute); err != nil {
		t.Fatal(err)
	}
	next := store.Order{Status: "PAID", ModifyTime: 5, RequestID: "r2"}
	for i := range 2 {
		if err := c.CommitSuccess(ctx, okey, nil, next, rkey2, "tok2", testReply("S"), time.Minute); err != nil {
			t.Fatalf("commit run %d: %v", i, err)
		}
	}
	// But a different commit by the same finished claim is refused.
	other := store.Order{Status: "REFUNDED", ModifyTime: 6, RequestID: "r2"}
	if err := c.CommitSuccess(ctx, okey, &next, other, rkey2, "tok2", testReply("S"), time.Minute); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("second commit by a finished claim: %v, want ErrNotOwner", err)
	}
}

// TestKeysDoNotCollide: ids may contain ':' and braces; distinct ids must
// give distinct keys, each with exactly one, well-formed hash tag.
func TestKeysDoNotCollide(t *testing.T) {
	c := &Backend{prefix: DefaultKeyPrefix}
	keys := map[string]store.OrderKey{}
	for _, k := range [][2]string{
		{"a:b", "c"}, {"a", "b:c"}, {"a{", "}b"}, {"a", "{}b"}, {"a%3Ab", "c"}, {"a", ""}, {"", "a"},
	} {
		k := store.OrderKey{ClientID: k[0], MerchantBizNo: k[1]}
		ok := c.orderKey(k)
		if prev, dup := keys[ok]; dup {
			t.Errorf("%+v and %+v share key %s", prev, k, ok)
		}
		keys[ok] = k
		tag := ok[strings.Index(ok, "{")+1:]
		if strings.Count(ok, "{") != 1 || strings.Count(ok, "}") != 1 || !strings.HasSuffix(tag, "}") {
			t.Errorf("key %s has a broken hash tag", ok)
		}
		lk := c.lockKey(k)
		if lk[strings.Index(lk, "{"):] != ok[strings.Index(ok, "{"):] {
			t.Errorf("lock key %s and order key %s have different hash tags", lk, ok)
		}
	}
}

// TestRedisDown: a server that went away surfaces as an error within the
// caller's deadline, naming the store and the operation.
func TestRedisDown(t *testing.T) {
	addr, stop, err := redistest.StartServer()
	if errors.Is(err, redistest.ErrNotInstalled) {
		sharedAddr(t) // skips or fails like the other tests
	}
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := newBackendPrefix(t, addr, "down:")
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	rkey := store.RequestKey{ClientID: "c", RequestID: "r"}
	if _, err := c.GetOrder(context.Background(), okey); err != nil {
		t.Fatalf("before stop: %v", err)
	}
	stop()

	ops := map[string]func(context.Context) error{
		"claim": func(ctx context.Context) error {
			_, err := c.Claim(ctx, rkey, store.HashBody(nil), "t", time.Minute)
			return err
		},
		"release": func(ctx context.Context) error { return c.Release(ctx, rkey, "t") },
		"finish": func(ctx context.Context) error {
			return c.Finish(ctx, rkey, "t", testReply(""), time.Minute)
		},
		"lock order": func(ctx context.Context) error {
			return c.LockOrder(ctx, okey, "t", time.Minute)
		},
		"unlock order": func(ctx context.Context) error {
			return c.UnlockOrder(ctx, okey, "t")
		},
		"get order": func(ctx context.Context) error {
			_, err := c.GetOrder(ctx, okey)
			return err
		},
		"commit success": func(ctx context.Context) error {
			return c.CommitSuccess(ctx, okey, nil, store.Order{}, rkey, "t", testReply(""), time.Minute)
		},
		"get request": func(ctx context.Context) error {
			_, err := c.GetRequest(ctx, rkey)
			return err
		},
	}
	for op, call := range ops {
		t.Run(op, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- call(ctx) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error with the server down")
				}
				if errors.Is(err, store.ErrLockTimeout) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotOwner) {
					t.Fatalf("outage reported as a contract outcome: %v", err)
				}
				if !strings.Contains(err.Error(), "redis store: "+op+":") {
					t.Errorf("error %q does not name the store and %q", err, op)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("call hung with the server down")
			}
		})
	}
}

// TestErrorsHideThePassword: an authentication failure must not echo the
// password into logs.
func TestErrorsHideThePassword(t *testing.T) {
	addr := redistest.Start(t)
	if err := redistest.Do(addr, "CONFIG", "SET", "requirepass", "right-one"); err != nil {
		t.Fatal(err)
	}
	const secret = "wrong-secret-xyzzy"
	c, err := Open(Options{Addr: addr, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.GetOrder(ctx, store.OrderKey{ClientID: "c", MerchantBizNo: "m"})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error reveals the password: %v", err)
	}
}

// TestMillisRoundsUp: a sub-millisecond lease must not become PX 0, which
// Redis refuses.
func TestMillisRoundsUp(t *testing.T) {
	if ms, _ := millis("op", "d", time.Microsecond); ms != 1 {
		t.Errorf("1µs rounds to %dms, want 1", ms)
	}
}
