package bboltstore

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
)

// readTxs is the number of read transactions begun on db so far.
func readTxs(db *Backend) int {
	st := db.bolt.Stats()
	return st.TxN
}

// TestClaimNewReadsOnce: claiming a new requestId reads the file once when
// no write ended meanwhile (the second read under the claim table's lock
// is only needed when one did).
func TestClaimNewReadsOnce(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	before := readTxs(db)
	key := store.RequestKey{ClientID: "c", RequestID: "new"}
	if res, err := db.Claim(ctx, key, hashA, "t", time.Minute); err != nil || res.Status != store.Claimed {
		t.Fatalf("Claim = %v, %v", res.Status, err)
	}
	if n := readTxs(db) - before; n != 1 {
		t.Errorf("Claim of a new requestId began %d read transactions, want 1", n)
	}
	before = readTxs(db)
	if rec, err := db.GetRequest(ctx, store.RequestKey{ClientID: "c", RequestID: "unknown"}); err != nil || rec != nil {
		t.Fatalf("GetRequest = %+v, %v", rec, err)
	}
	if n := readTxs(db) - before; n != 1 {
		t.Errorf("GetRequest of an unknown requestId began %d read transactions, want 1", n)
	}
}

// TestClaimSeesCommitEndedAfterItsRead: a commit of the same requestId
// that ends between Claim's read of the file and its look at the claim
// table is found (Done), not claimed over: the read is repeated because a
// write ended in between.
func TestClaimSeesCommitEndedAfterItsRead(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	key := store.RequestKey{ClientID: "c", RequestID: "r"}
	tok := claim(t, db, key, time.Minute)

	// The owner's Finish waits for bbolt's write lock, held here.
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
	finished := make(chan error, 1)
	go func() { finished <- db.Finish(ctx, key, tok, store.Reply{Status: 200}, time.Hour) }()
	waitCommitting(t, db, key)

	// Once Claim has read the file (no record yet), the Finish ends.
	testHookClaimRead = func() {
		close(release)
		if err := <-finished; err != nil {
			t.Errorf("Finish: %v", err)
		}
	}
	defer func() { testHookClaimRead = nil }()
	res, err := db.Claim(ctx, key, hashA, "other", time.Minute)
	if err != nil || res.Status != store.Done {
		t.Fatalf("Claim while the owner's Finish ended = %v, %v; want Done", res.Status, err)
	}
}
