package bboltstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/storetest"
)

func openTemp(tb testing.TB, opts Options) *Backend {
	tb.Helper()
	opts.Path = filepath.Join(tb.TempDir(), "orders.db")
	return openPath(tb, opts)
}

// openPath opens opts.Path, closed when tb ends.
func openPath(tb testing.TB, opts Options) *Backend {
	tb.Helper()
	db, err := Open(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Backend {
		// A short sweep interval makes the sweeper run against the
		// suite's traffic, so its re-check under the write lock is
		// exercised too.
		db := openTemp(t, Options{SweepInterval: 50 * time.Millisecond})
		t.Cleanup(func() {
			// Whatever a subtest did, no lock entry may outlive it.
			if n := db.locks.size(); n != 0 {
				t.Errorf("%d order lock entries left after the subtest", n)
			}
		})
		return db
	})
}

// TestConformanceModule runs the suite through the Caddy module, provisioned
// and not started, so every subtest's first operation opens the file.
func TestConformanceModule(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran on Backend")
	}
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, unload := loadStore(t, filepath.Join(t.TempDir(), "orders.db"))
		t.Cleanup(unload)
		return s
	})
}

var (
	hashA = store.HashBody([]byte("a"))
	ctx   = context.Background()
)

func claim(t *testing.T, db *Backend, key store.RequestKey, lease time.Duration) string {
	t.Helper()
	tok := rand.Text()
	res, err := db.Claim(ctx, key, hashA, tok, lease)
	if err != nil || res.Status != store.Claimed {
		t.Fatalf("Claim(%v) = %v, %v; want Claimed", key, res.Status, err)
	}
	return tok
}

// TestReopen is a restart at the store level: what was acknowledged is
// there after Close and Open, and a claim left in flight by the previous
// DB no longer blocks its requestId.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "orders.db")
	db, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	done := store.RequestKey{ClientID: "c", RequestID: "done"}
	pending := store.RequestKey{ClientID: "c", RequestID: "pending"}
	order := store.Order{Scenario: "s", Status: "A", ModifyTime: 7, OrderID: "o", RequestID: "done", UpdatedAt: time.Now().UTC()}
	reply := store.Reply{Status: 200, Header: map[string][]string{"Signature": {"x", "y"}}, Body: []byte("{}")}
	if err := db.CommitSuccess(ctx, okey, nil, order, done, claim(t, db, done, time.Minute), reply, time.Hour); err != nil {
		t.Fatal(err)
	}
	oldToken := claim(t, db, pending, time.Hour)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("parent directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	if _, err := db.GetOrder(ctx, okey); err == nil {
		t.Error("GetOrder on a closed DB succeeded")
	}

	db, err = Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.GetOrder(ctx, okey)
	if err != nil || got == nil || got.Status != "A" || got.RequestID != "done" || !got.UpdatedAt.Equal(order.UpdatedAt) {
		t.Fatalf("GetOrder after reopening = %+v, %v; want %+v", got, err, order)
	}
	res, err := db.Claim(ctx, done, hashA, "t", time.Minute)
	if err != nil || res.Status != store.Done || !reflect.DeepEqual(*res.Reply, reply) {
		t.Fatalf("Claim of a finished request after reopening = %+v, %v; want Done with %+v", res, err, reply)
	}
	if rec, err := db.GetRequest(ctx, pending); err != nil || rec != nil {
		t.Errorf("GetRequest of the dead DB's claim = %+v, %v; want nil", rec, err)
	}
	newToken := claim(t, db, pending, time.Minute)
	if err := db.Finish(ctx, pending, oldToken, reply, time.Hour); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("Finish with the dead DB's token: %v, want ErrNotOwner", err)
	}
	if err := db.Finish(ctx, pending, newToken, reply, time.Hour); err != nil {
		t.Errorf("Finish by the new owner: %v", err)
	}
}

// TestFinishAfterLease pins a bbolt leniency: a claim whose lease ended
// but that nobody took over is still its owner's to finish.
func TestFinishAfterLease(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	key := store.RequestKey{ClientID: "c", RequestID: "r"}
	tok := claim(t, db, key, 20*time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	if err := db.Finish(ctx, key, tok, store.Reply{Status: 200}, time.Hour); err != nil {
		t.Fatalf("Finish after the lease, not taken over: %v", err)
	}
}

func TestOpenTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	first, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	began := time.Now()
	second, err := Open(Options{Path: path, Timeout: 200 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a held file succeeded")
	}
	if waited := time.Since(began); waited > 3*time.Second {
		t.Errorf("Open gave up after %v, want about 200ms", waited)
	}
	for _, want := range []string{path, "locked by another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestOpenRejectsUnknownFormat: a file of another format (a later one, or
// format 1 of development builds, which kept orders as JSON) is refused
// with a message naming the file, not misread.
func TestOpenRejectsUnknownFormat(t *testing.T) {
	for _, format := range []string{"1", "99"} {
		path := filepath.Join(t.TempDir(), "orders.db")
		bdb, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = bdb.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			return b.Put(keyFormat, []byte(format))
		})
		bdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		db, err := Open(Options{Path: path})
		if err == nil {
			db.Close()
			t.Fatalf("Open of a file with format %s succeeded", format)
		}
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "format") {
			t.Errorf("error %q does not name the file and its format", err)
		}
	}
}

func TestClientIDWithNUL(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	if _, err := db.Claim(ctx, store.RequestKey{ClientID: "a\x00b", RequestID: "r"}, hashA, "t", time.Minute); err == nil {
		t.Fatal("Claim with a NUL in the client id succeeded; its key could collide")
	}
}

func countRequests(t *testing.T, db *Backend) int {
	t.Helper()
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRequests).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweeper(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: 30 * time.Millisecond})
	short, long := 50*time.Millisecond, time.Hour
	keep := []store.RequestKey{{ClientID: "c", RequestID: "keep-claim"}, {ClientID: "c", RequestID: "keep-done"}}
	gone := []store.RequestKey{{ClientID: "c", RequestID: "gone-claim"}, {ClientID: "c", RequestID: "gone-done"}, {ClientID: "c", RequestID: "gone-commit"}}
	claim(t, db, keep[0], long)
	if err := db.Finish(ctx, keep[1], claim(t, db, keep[1], long), store.Reply{Status: 200}, long); err != nil {
		t.Fatal(err)
	}
	claim(t, db, gone[0], short)
	if err := db.Finish(ctx, gone[1], claim(t, db, gone[1], long), store.Reply{Status: 200}, short); err != nil {
		t.Fatal(err)
	}
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	if err := db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, gone[2], claim(t, db, gone[2], long), store.Reply{}, short); err != nil {
		t.Fatal(err)
	}
	// A lock whose holder never unlocks, and nobody waits for.
	if err := db.LockOrder(ctx, store.OrderKey{ClientID: "c", MerchantBizNo: "stranded"}, "t", short); err != nil {
		t.Fatal(err)
	}
	// Claims are in memory: on disk only keep-done stays, in memory only
	// keep-claim.
	deadline := time.Now().Add(5 * time.Second)
	for countRequests(t, db) != 1 || db.claims.size() != 1 || db.locks.size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the sweeps: %d request records (want 1), %d claims (want 1), %d lock entries (want 0)",
				countRequests(t, db), db.claims.size(), db.locks.size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, k := range keep {
		if rec, err := db.GetRequest(ctx, k); err != nil || rec == nil {
			t.Errorf("the sweeper removed the live record %v: %v, %v", k, rec, err)
		}
	}
	if o, err := db.GetOrder(ctx, okey); err != nil || o == nil {
		t.Errorf("the sweeper touched an order: %v, %v", o, err)
	}
}

// TestSweepChunks runs one sweep over more records than a chunk, with
// live and dead records interleaved.
func TestSweepChunks(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	const n = 2*sweepChunk + 17
	now := time.Now()
	reply := store.EncodeReply(store.Reply{Status: 200})
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRequests)
		for i := range n {
			k, _ := joinKey("c", strings.Repeat("x", i%7)+time.Duration(i).String())
			v := encodeRecord(hashA, now.Add(time.Hour), reply) // live
			if i%3 != 0 {
				v = encodeRecord(hashA, now.Add(-time.Millisecond), reply) // expired
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := db.sweep()
	if err != nil {
		t.Fatal(err)
	}
	wantLive := (n + 2) / 3
	if removed != n-wantLive || countRequests(t, db) != wantLive {
		t.Fatalf("sweep removed %d, left %d; want %d removed, %d left", removed, countRequests(t, db), n-wantLive, wantLive)
	}
}

// TestClaimsInMemory checks that claims cost no disk write, that only done
// records reach the file, and that every way a claim ends removes it from
// memory.
func TestClaimsInMemory(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	key := func(id string) store.RequestKey { return store.RequestKey{ClientID: "c", RequestID: id} }
	check := func(what string, records, claims int) {
		t.Helper()
		if got := countRequests(t, db); got != records {
			t.Errorf("%s: %d request records on disk, want %d", what, got, records)
		}
		if got := db.claims.size(); got != claims {
			t.Errorf("%s: %d claims in memory, want %d", what, got, claims)
		}
	}

	tok := claim(t, db, key("released"), time.Minute)
	check("after Claim", 0, 1)
	if rec, err := db.GetRequest(ctx, key("released")); err != nil || rec == nil || rec.Done || rec.BodyHash != hashA {
		t.Errorf("GetRequest of a claim = %+v, %v; want in flight", rec, err)
	}
	if err := db.Release(ctx, key("released"), "not the token"); err != nil {
		t.Fatal(err)
	}
	check("after a Release by a stranger", 0, 1)
	if err := db.Release(ctx, key("released"), tok); err != nil {
		t.Fatal(err)
	}
	check("after Release", 0, 0)

	if err := db.Finish(ctx, key("finished"), claim(t, db, key("finished"), time.Minute), store.Reply{Status: 200}, time.Hour); err != nil {
		t.Fatal(err)
	}
	check("after Finish", 1, 0)

	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	tok = claim(t, db, key("committed"), time.Minute)
	if err := db.CommitSuccess(ctx, okey, &store.Order{Status: "X"}, store.Order{Status: "A"}, key("committed"), tok, store.Reply{}, time.Hour); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CommitSuccess with a wrong prev: %v, want ErrConflict", err)
	}
	check("after a conflict", 1, 1)
	if err := db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, key("committed"), tok, store.Reply{}, time.Hour); err != nil {
		t.Fatalf("CommitSuccess by the owner after a conflict: %v", err)
	}
	check("after CommitSuccess", 2, 0)

	claim(t, db, key("expired"), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if _, err := db.sweep(); err != nil {
		t.Fatal(err)
	}
	check("after the lease and a sweep", 2, 0)

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Claim(ctx, key("closed"), hashA, "t", time.Minute); err == nil {
		t.Error("Claim on a closed DB succeeded")
	}
	if err := db.Release(ctx, key("closed"), "t"); err == nil {
		t.Error("Release on a closed DB succeeded")
	}
}

// TestCommitBlocksTakeover races Claims against a CommitSuccess whose
// claim's lease has already ended. Once the commit has begun it holds the
// claim until the done record is on disk: no Claim may win while the record
// is being written, nor after.
func TestCommitBlocksTakeover(t *testing.T) {
	// A long batch delay keeps the write, and the race, open a while.
	// Sweeps are run by hand: one before the commit began would drop the
	// expired claim.
	db := openTemp(t, Options{SweepInterval: -1, BatchDelay: 20 * time.Millisecond})
	for i := range 10 {
		rkey := store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("r", i)}
		okey := store.OrderKey{ClientID: "c", MerchantBizNo: fmt.Sprint("m", i)}
		k, _ := joinKey(rkey.ClientID, rkey.RequestID)
		tok := claim(t, db, rkey, time.Nanosecond) // expired at once
		// Only the claim's owner touches it until the commit begins: a
		// Claim now would take it over.
		committed := make(chan error, 1)
		go func() {
			committed <- db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, rkey, tok, store.Reply{Status: 200}, time.Hour)
		}()
		for deadline := time.Now().Add(5 * time.Second); ; {
			db.claims.mu.Lock()
			c := db.claims.get(string(k))
			begun := c != nil && c.committing
			db.claims.mu.Unlock()
			if begun {
				break
			}
			select {
			case err := <-committed:
				t.Fatalf("round %d: the commit ended (%v) before it was seen to begin", i, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the commit never began")
			}
			time.Sleep(50 * time.Microsecond)
		}
		var wg sync.WaitGroup
		var claims atomic.Int32
		deadline := time.Now().Add(5 * time.Second)
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					res, err := db.Claim(ctx, rkey, hashA, rand.Text(), time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Status == store.Claimed {
						claims.Add(1)
					}
					if res.Status != store.InFlight {
						return
					}
				}
			})
		}
		// Neither a sweep nor a concurrent Release by the owner may free
		// it either.
		if _, err := db.sweep(); err != nil {
			t.Fatal(err)
		}
		if err := db.Release(ctx, rkey, tok); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if err := <-committed; err != nil {
			t.Fatalf("round %d: CommitSuccess: %v", i, err)
		}
		if n := claims.Load(); n != 0 {
			t.Fatalf("round %d: %d Claims won during or after the commit", i, n)
		}
		if res, err := db.Claim(ctx, rkey, hashA, "t", time.Minute); err != nil || res.Status != store.Done {
			t.Fatalf("round %d: Claim after the commit = %v, %v; want Done", i, res.Status, err)
		}
	}
	if n := db.claims.size(); n != 0 {
		t.Errorf("%d claims left in memory", n)
	}
}

// TestLockTableDoesNotLeak drives the lock table through timeouts,
// lease takeovers and hand-offs and checks that it ends empty.
func TestLockTableDoesNotLeak(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			key := store.OrderKey{ClientID: "c", MerchantBizNo: string(rune('a' + i%5))}
			lctx, cancel := context.WithTimeout(ctx, time.Duration(i%4)*time.Millisecond)
			defer cancel()
			tok := rand.Text()
			unlock := func() { _ = db.UnlockOrder(ctx, key, tok) }
			err := db.LockOrder(lctx, key, tok, 5*time.Millisecond)
			if errors.Is(err, store.ErrLockTimeout) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if i%7 == 0 {
				time.Sleep(10 * time.Millisecond) // outlive the lease
			}
			unlock()
			unlock()
		})
	}
	wg.Wait()
	if n := db.locks.size(); n != 0 {
		t.Fatalf("%d lock entries left with no holder or waiter", n)
	}
}

// TestLockFIFO checks that a released lock goes to the longest waiter.
func TestLockFIFO(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	key := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	if err := db.LockOrder(ctx, key, "first", time.Minute); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			tok := fmt.Sprint("waiter-", i)
			if err := db.LockOrder(ctx, key, tok, time.Minute); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			_ = db.UnlockOrder(ctx, key, tok)
		})
		// Let waiter i queue before waiter i+1.
		for deadline := time.Now().Add(time.Second); queueLen(db, key) != i+1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	_ = db.UnlockOrder(ctx, key, "first")
	wg.Wait()
	if !reflect.DeepEqual(order, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("waiters got the lock in order %v, want arrival order", order)
	}
}

func queueLen(db *Backend, key store.OrderKey) int {
	db.locks.mu.Lock()
	defer db.locks.mu.Unlock()
	if l := db.locks.locks[key]; l != nil {
		return len(l.queue)
	}
	return 0
}

func TestCloseTwice(t *testing.T) {
	db, err := Open(Options{Path: filepath.Join(t.TempDir(), "orders.db"), SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestReplyFormatCoversReply fails when store.RequestRecord gains a field,
// as a reminder that the request record (codec.go) must carry it too. (The
// same check for store.Reply and its binary encoding is in package store.)
func TestReplyFormatCoversReply(t *testing.T) {
	if n := reflect.TypeFor[store.RequestRecord]().NumField(); n != 4 {
		t.Errorf("store.RequestRecord has %d fields; the request record knows 4", n)
	}
}

// TestBatchRetry makes one call fail inside a shared Batch transaction.
// bbolt then rolls the whole batch back, runs the failing call alone and
// the others again together; what they report and what is stored must be
// what the committed run did, and the failed call must write nothing.
func TestBatchRetry(t *testing.T) {
	// A long delay puts every call below into one batch.
	db := openTemp(t, Options{SweepInterval: -1, BatchDelay: 50 * time.Millisecond})
	bad := store.OrderKey{ClientID: "c", MerchantBizNo: "bad"}
	badKey, _ := joinKey(bad.ClientID, bad.MerchantBizNo)
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOrders).Put(badKey, []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	rBad := store.RequestKey{ClientID: "c", RequestID: "bad"}
	tBad := claim(t, db, rBad, time.Minute)
	const goodCommits = 5
	goodTokens := make([]string, goodCommits)
	for i := range goodTokens {
		goodTokens[i] = claim(t, db, store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("good-", i)}, time.Minute)
	}

	contested := store.RequestKey{ClientID: "c", RequestID: "contested"}
	var claimed sync.Map // token → true
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		err := db.CommitSuccess(ctx, bad, &store.Order{Status: "X"}, store.Order{Status: "A"}, rBad, tBad, store.Reply{}, time.Hour)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotOwner) {
			t.Errorf("CommitSuccess over a corrupt order: %v, want a storage error", err)
		}
	})
	for range 10 {
		wg.Go(func() {
			<-start
			tok := rand.Text()
			res, err := db.Claim(ctx, contested, hashA, tok, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Status == store.Claimed {
				claimed.Store(tok, true)
			}
		})
	}
	for i, tok := range goodTokens {
		wg.Go(func() {
			<-start
			okey := store.OrderKey{ClientID: "c", MerchantBizNo: fmt.Sprint("good-", i)}
			rkey := store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("good-", i)}
			if err := db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A", RequestID: rkey.RequestID}, rkey, tok, store.Reply{Status: 200}, time.Hour); err != nil {
				t.Errorf("CommitSuccess %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()

	var winners []string
	claimed.Range(func(k, _ any) bool { winners = append(winners, k.(string)); return true })
	if len(winners) != 1 {
		t.Fatalf("%d Claims of one key won, want 1", len(winners))
	}
	// The winner's token is the one stored: its Finish works.
	if err := db.Finish(ctx, contested, winners[0], store.Reply{Status: 200}, time.Hour); err != nil {
		t.Errorf("Finish by the reported winner: %v", err)
	}
	for i := range goodCommits {
		o, err := db.GetOrder(ctx, store.OrderKey{ClientID: "c", MerchantBizNo: fmt.Sprint("good-", i)})
		if err != nil || o == nil || o.Status != "A" {
			t.Errorf("good order %d = %+v, %v", i, o, err)
		}
	}
	if rec, err := db.GetRequest(ctx, rBad); err != nil || rec == nil || rec.Done {
		t.Errorf("the failed commit's request = %+v, %v; want still in flight", rec, err)
	}
}

// TestFinalWritesUnlockInTheSameStep: the order lock a claim holds is
// released by the write that stores its answer, before Commit or Finish
// returns, not by a step the Store runs in the background afterwards.
func TestFinalWritesUnlockInTheSameStep(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	st := store.New(db, store.Options{})
	for i, final := range []func(*store.Claim, store.OrderKey) error{
		func(c *store.Claim, okey store.OrderKey) error {
			return c.Commit(ctx, store.OrderChange{Key: okey, Prev: c.Order, Next: store.Order{Status: "S"}}, store.Reply{Status: 200}, time.Hour)
		},
		func(c *store.Claim, _ store.OrderKey) error {
			return c.Finish(ctx, store.Reply{Status: 200}, time.Hour)
		},
	} {
		okey := store.OrderKey{ClientID: "c", MerchantBizNo: fmt.Sprint("order-", i)}
		c, err := st.ClaimOrder(ctx, store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("req-", i)}, store.HashBody(nil), okey, time.Minute)
		if err != nil || c.Status != store.Claimed {
			t.Fatalf("ClaimOrder = %+v, %v", c, err)
		}
		if n := db.locks.size(); n != 1 {
			t.Fatalf("%d locks held after ClaimOrder, want 1", n)
		}
		if err := final(c, okey); err != nil {
			t.Fatal(err)
		}
		if n := db.locks.size(); n != 0 {
			t.Errorf("final write %d: %d locks still held when it returned", i, n)
		}
	}
	st.Wait()
}
