package bboltstore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
)

// lastTxID is the id of the last committed write transaction: the number
// of commits since the file was made.
func lastTxID(t *testing.T, db *Backend) int {
	t.Helper()
	var id int
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitCommitting waits until the claim of key is being committed: its
// owner's Finish has reached the write.
func waitCommitting(t *testing.T, db *Backend, key store.RequestKey) {
	t.Helper()
	k, _ := joinKey(key.ClientID, key.RequestID)
	for deadline := time.Now().Add(5 * time.Second); ; {
		db.claims.mu.Lock()
		c := db.claims.get(string(k))
		begun := c != nil && c.committing
		db.claims.mu.Unlock()
		if begun {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write of %s never began", key.RequestID)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestGroupCommitSharesWaitingWrites: writes that arrive while a commit is
// under way, however far apart, share the next commit (one fsync pair for
// all), rather than each closing a batch of its own after a timer.
func TestGroupCommitSharesWaitingWrites(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	// The disk is busy: a write transaction holds bbolt's write lock
	// until released.
	release := make(chan struct{})
	holding := make(chan struct{})
	go func() {
		_ = db.bolt.Update(func(*bolt.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	before := lastTxID(t, db)

	const writes = 6
	var wg sync.WaitGroup
	for i := range writes {
		key := store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("r", i)}
		tok := claim(t, db, key, time.Minute)
		wg.Go(func() {
			if err := db.Finish(ctx, key, tok, store.Reply{Status: 200}, time.Hour); err != nil {
				t.Errorf("Finish %d: %v", i, err)
			}
		})
		waitCommitting(t, db, key)
		// Far apart: more than any batching timer would wait.
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()

	// The first write leads a commit alone (it was waiting for the lock
	// when the others came); the others share the next one. A stalled
	// machine may split them once more, never per write.
	if n := lastTxID(t, db) - before - 1; n > 2 {
		t.Errorf("%d writes took %d commits, want at most 2", writes, n)
	}
	for i := range writes {
		key := store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("r", i)}
		if rec, err := db.GetRequest(ctx, key); err != nil || rec == nil || !rec.Done {
			t.Errorf("request %d after its Finish = %+v, %v; want done", i, rec, err)
		}
	}
}

// TestGroupCommitFailures: in a shared transaction, a write whose function
// fails or panics gets its own error and writes nothing; the others are
// committed, each exactly once.
func TestGroupCommitFailures(t *testing.T) {
	// A delay puts every write below into one transaction.
	db := openTemp(t, Options{SweepInterval: -1, BatchDelay: 50 * time.Millisecond})
	errRefused := errors.New("refused")
	var wg sync.WaitGroup
	start := make(chan struct{})
	put := func(name string) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("test"))
			if err != nil {
				return err
			}
			// Counts the runs that were committed: a rerun of a rolled
			// back batch reads the count from before it.
			n := 0
			if v := b.Get([]byte(name)); v != nil {
				n = len(v)
			}
			return b.Put([]byte(name), []byte(strings.Repeat("x", n+1)))
		}
	}
	wg.Go(func() {
		<-start
		err := db.group.write(func(tx *bolt.Tx) error {
			_ = put("failing")(tx)
			return errRefused
		})
		if !errors.Is(err, errRefused) {
			t.Errorf("failing write: %v, want its own error", err)
		}
	})
	wg.Go(func() {
		<-start
		err := db.group.write(func(tx *bolt.Tx) error {
			_ = put("panicking")(tx)
			panic("boom")
		})
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("panicking write: %v, want an error naming the panic", err)
		}
	})
	for i := range 5 {
		wg.Go(func() {
			<-start
			if err := db.group.write(put(fmt.Sprint("good-", i))); err != nil {
				t.Errorf("good write %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()

	if err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("test"))
		for _, name := range []string{"failing", "panicking"} {
			if v := b.Get([]byte(name)); v != nil {
				t.Errorf("%s write left %q", name, v)
			}
		}
		for i := range 5 {
			if v := b.Get(fmt.Appendf(nil, "good-%d", i)); string(v) != "x" {
				t.Errorf("good write %d: %q, want committed once", i, v)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
