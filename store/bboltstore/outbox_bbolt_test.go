package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/outboxtest"
)

// TestOutboxConformanceModule runs the outbox suite through the Caddy
// module, whose Handle forwards the outbox to the file's Backend.
func TestOutboxConformanceModule(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran on Backend")
	}
	h := outboxHarness(Options{SweepInterval: -1})
	open, restart := h.Open, h.Restart
	h.Open = func(t *testing.T) store.OutboxBackend {
		return moduleOver(open(t).(*Backend))
	}
	h.Restart = func(t *testing.T, b store.OutboxBackend) store.OutboxBackend {
		return moduleOver(restart(t, b.(*opened).b).(*Backend))
	}
	outboxtest.Run(t, h)
}

// opened is the Caddy module over a Backend opened by the test, as if the
// module had opened it.
type opened struct {
	*Store
	b *Backend
}

func moduleOver(b *Backend) *opened {
	h := store.NewHandle(func() (store.Backend, error) { return b, nil }, func() error { return nil })
	return &opened{Store: &Store{Handle: h}, b: b}
}

// killChildEnv names the file a child process of TestOutboxKilledProcess
// writes to.
const killChildEnv = "ORDERSYNC_OUTBOX_KILL_CHILD"

// TestOutboxKilledProcess kills a process (SIGKILL) in the middle of
// queueing, attempting and completing, and opens its file: every write the
// process was told had succeeded is there, whole; its lanes are free at
// once (leases were in its memory) and in acceptance order.
func TestOutboxKilledProcess(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		killChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	// Kill it once it has acknowledged a good number of writes, in the
	// middle of whatever it does next.
	acked := map[string]string{} // requestId → "queued" or "completed"
	path := killedChild(t, "TestOutboxKilledProcess", killChildEnv, func(line string) bool {
		what, id, _ := strings.Cut(line, " ")
		acked[id] = what
		return len(acked) >= 60
	})

	db, err := Open(Options{Path: path, SweepInterval: -1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	completed := 0
	for id, what := range acked {
		e, err := db.GetEntry(ctx, store.RequestKey{ClientID: "c", RequestID: id})
		if err != nil || e == nil {
			t.Fatalf("acknowledged entry %s is gone: %v", id, err)
		}
		if what == "completed" {
			completed++
			if e.State != store.EntrySucceeded || e.Reply == nil || string(e.Reply.Body) != "S "+id {
				t.Errorf("acknowledged completion of %s reads back as %+v", id, e)
			}
		}
	}
	if completed == 0 {
		t.Error("the child completed nothing before it was killed")
	}
	due, err := db.DueLanes(ctx, "c", time.Now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, lane := range due.Lanes {
		if err := db.LeaseLane(ctx, lane, "after", time.Minute); err != nil {
			t.Errorf("lane %s after the kill: %v", lane.MerchantBizNo, err)
		}
	}
	for l := range 4 {
		lane := store.LaneKey{ClientID: "c", MerchantBizNo: fmt.Sprint("m", l)}
		got, err := db.GetLane(ctx, lane)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int
		for _, e := range got.Queued {
			var seq int
			fmt.Sscanf(e.RequestID, "r%d", &seq)
			seqs = append(seqs, seq)
			if e.State != store.EntryQueued {
				t.Errorf("lane %d lists %s, which is %s", l, e.RequestID, e.State)
			}
		}
		if !slices.IsSorted(seqs) {
			t.Errorf("lane %d out of acceptance order: %v", l, seqs)
		}
		if len(got.Queued) > 0 && !slices.Contains(due.Lanes, lane) {
			t.Errorf("lane %d holds entries but is not due", l)
		}
	}
}

// killChild is the child of TestOutboxKilledProcess: it queues entries
// into four lanes and completes heads, printing each write once it
// returned, until it is killed.
func killChild(path string) {
	db, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	ob := store.NewOutbox(db)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		lane := store.LaneKey{ClientID: "c", MerchantBizNo: fmt.Sprint("m", i%4)}
		id := fmt.Sprint("r", i)
		l, err := ob.Lane(ctx, lane)
		if err == nil {
			now := time.Now()
			_, err = ob.Enqueue(ctx, store.Entry{ClientID: "c", RequestID: id, MerchantBizNo: lane.MerchantBizNo,
				OrderStatus: "PAID", Body: []byte(id), State: store.EntryQueued, CreatedAt: now, NextAttemptAt: now}, l.Version)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("queued", id)
		// Lease the lane and keep the lease (the kill leaves it held);
		// complete its head every other time.
		lease, err := ob.LeaseLane(ctx, lane, time.Hour)
		if errors.Is(err, store.ErrLaneLeased) {
			continue
		}
		if err != nil {
			os.Exit(2)
		}
		if l, err = ob.Lane(ctx, lane); err != nil || len(l.Queued) == 0 {
			os.Exit(2)
		}
		head := l.Queued[0].RequestID
		now := time.Now()
		if err := lease.RecordAttempt(ctx, head, store.Attempt{At: now, NextAttemptAt: now, LastError: "U"}); err != nil {
			os.Exit(2)
		}
		if i%2 == 0 {
			if err := lease.Complete(ctx, head, store.Completion{State: store.EntrySucceeded, At: now, Attempted: true,
				Reply: &store.Reply{Status: 200, Body: []byte("S " + head)}, Callback: true, Retention: time.Hour}); err != nil {
				os.Exit(2)
			}
			fmt.Println("completed", head)
		}
		// Leases of lanes 0 and 1 stay held: the kill must free them.
		if i%4 >= 2 {
			_ = lease.Release(ctx)
		}
	}
	os.Exit(3) // never killed
}

// countKeys returns the number of keys in each outbox bucket.
func countKeys(t *testing.T, db *Backend) map[string]int {
	t.Helper()
	n := map[string]int{}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, b := range outboxBuckets {
			n[string(b)] = tx.Bucket(b).Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboxSweeper: the sweeper deletes a final entry once its retention
// ended, with every index key of it, and keeps one whose callback is
// pending until the callback is done.
func TestOutboxSweeper(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	ctx := context.Background()
	at := time.Now()
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	ob := store.NewOutbox(db)
	empty := countKeys(t, db)
	for i, id := range []string{"quiet", "loud"} {
		if _, err := ob.Enqueue(ctx, store.Entry{ClientID: "c", RequestID: id, MerchantBizNo: "m", State: store.EntryQueued,
			CreatedAt: at, NextAttemptAt: at}, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := ob.LeaseLane(ctx, lane, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"quiet", "loud"} {
		if err := lease.Complete(ctx, id, store.Completion{State: store.EntryFailed, At: at, Callback: id == "loud",
			Retention: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	before := countKeys(t, db)
	if n, err := db.sweepOutbox(at.Add(59 * time.Second)); err != nil || n != 0 {
		t.Fatalf("sweep within retention removed %d, %v", n, err)
	}
	if n, err := db.sweepOutbox(at.Add(2 * time.Minute)); err != nil || n != 1 {
		t.Fatalf("sweep after retention removed %d, %v; want 1", n, err)
	}
	after := countKeys(t, db)
	if after["outbox_entries"] != before["outbox_entries"]-1 || after["outbox_index"] != before["outbox_index"]-1 ||
		after["outbox_expiry"] != 0 {
		t.Errorf("keys before %v, after %v: want quiet's entry, state and expiry keys gone", before, after)
	}
	e, err := ob.Entry(ctx, store.RequestKey{ClientID: "c", RequestID: "loud"})
	if err != nil || e == nil {
		t.Fatalf("the entry with a pending callback was swept: %v", err)
	}
	if err := ob.CallbackDone(ctx, store.RequestKey{ClientID: "c", RequestID: "loud"}, e.Callback.WebhookID); err != nil {
		t.Fatal(err)
	}
	if n, err := db.sweepOutbox(time.Now().Add(2 * time.Minute)); err != nil || n != 1 {
		t.Fatalf("sweep after the callback removed %d, %v; want 1", n, err)
	}
	final := countKeys(t, db)
	final["outbox_lanes"] = empty["outbox_lanes"] // the lane (emptied, with no accepted state) is gone too
	if !sameCounts(final, empty) {
		t.Errorf("keys after everything ended = %v, want %v", final, empty)
	}
}

func sameCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// TestOutboxSharedBatch: writes that share a Batch transaction do not fail
// together: a refused one (a stale lane version) and one that cannot read
// its lane (a corrupt record) write nothing, and the others are committed.
func TestOutboxSharedBatch(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1, BatchDelay: 50 * time.Millisecond})
	ctx := context.Background()
	badKey, _ := joinKey("c", "bad")
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutboxLanes).Put(badKey, []byte("not a lane"))
	}); err != nil {
		t.Fatal(err)
	}
	entry := func(mbn, id string) store.Entry {
		return store.Entry{ClientID: "c", RequestID: id, MerchantBizNo: mbn, State: store.EntryQueued, CreatedAt: time.Now()}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		if _, err := db.Enqueue(ctx, entry("bad", "bad"), 0); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("Enqueue into a corrupt lane: %v, want a storage error", err)
		}
	})
	wg.Go(func() {
		<-start
		if _, err := db.Enqueue(ctx, entry("stale", "stale"), 5); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Enqueue at a stale version: %v, want ErrConflict", err)
		}
	})
	for i := range 5 {
		wg.Go(func() {
			<-start
			if ex, err := db.Enqueue(ctx, entry(fmt.Sprint("good-", i), fmt.Sprint("good-", i)), 0); err != nil || ex != nil {
				t.Errorf("Enqueue %d: %v, %v", i, ex, err)
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range 5 {
		if e, err := db.GetEntry(ctx, store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("good-", i)}); err != nil || e == nil {
			t.Errorf("good entry %d = %v, %v", i, e, err)
		}
	}
	for _, id := range []string{"bad", "stale"} {
		if e, err := db.GetEntry(ctx, store.RequestKey{ClientID: "c", RequestID: id}); err != nil || e != nil {
			t.Errorf("refused entry %s = %v, %v; want none", id, e, err)
		}
	}
}

// TestOutboxInFileWithoutIt: a file written before the outbox existed
// (the same format, without the outbox buckets) opens and gets them.
func TestOutboxInFileWithoutIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	old, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketOrders); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketRequests); err != nil {
			return err
		}
		return meta.Put(keyFormat, []byte(formatVersion))
	}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Enqueue(context.Background(), store.Entry{ClientID: "c", RequestID: "r", MerchantBizNo: "m",
		State: store.EntryQueued, CreatedAt: time.Now()}, 0); err != nil {
		t.Fatalf("Enqueue into an older file: %v", err)
	}
}

// TestOutboxLeaseHeldThroughWrite: a lease whose ttl ends while its
// holder's write is on its way to disk is not taken over before the write
// is done, so the next holder never reads the lane from before it.
func TestOutboxLeaseHeldThroughWrite(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	if err := db.LeaseLane(context.Background(), lane, "first", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	l := db.outbox.begin(lane, "first")
	if l == nil {
		t.Fatal("begin refused a live lease")
	}
	time.Sleep(5 * time.Millisecond)
	if err := db.LeaseLane(context.Background(), lane, "second", time.Minute); !errors.Is(err, store.ErrLaneLeased) {
		t.Errorf("LeaseLane while the holder writes: %v, want ErrLaneLeased", err)
	}
	db.outbox.end(l)
	if err := db.LeaseLane(context.Background(), lane, "second", time.Minute); err != nil {
		t.Errorf("LeaseLane once the write is done and the ttl over: %v", err)
	}
}
