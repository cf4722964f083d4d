package bboltstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
)

// freePages gives the file about n free pages: records written, then
// deleted, as the sweeper deletes expired ones.
func freePages(t *testing.T, db *Backend, n int) {
	t.Helper()
	big := make([]byte, 10*4096) // ten pages a record
	for _, del := range []bool{false, true} {
		if err := db.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketRequests)
			for i := range n / 10 {
				k := fmt.Appendf(nil, "filler-%d", i)
				var err error
				if del {
					err = b.Delete(k)
				} else {
					err = b.Put(k, big)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitWritesNoFreelist: a commit writes its own pages and the meta
// page, not the list of the file's free pages, however long it is (bbolt
// writes the whole list with every commit unless told not to).
func TestCommitWritesNoFreelist(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	freePages(t, db, 5000) // a freelist of ten pages
	pages := func() int64 { st := db.bolt.Stats(); return st.TxStats.GetPageCount() }
	before := pages()
	key := store.RequestKey{ClientID: "c", RequestID: "r"}
	if err := db.Finish(ctx, key, claim(t, db, key, time.Minute), store.Reply{Status: 200}, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The requests bucket's leaf, its branch, the root bucket's page.
	if n := pages() - before; n > 4 {
		t.Errorf("one Finish allocated %d pages to write, want at most 4", n)
	}
}

// TestFreePagesKnownAfterReopen: the free pages, which are not written to
// the file, are found again when it is opened, and reused: the file does
// not grow for what fits in them.
func TestFreePagesKnownAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	db := openPath(t, Options{Path: path, SweepInterval: -1})
	freePages(t, db, 2000)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db = openPath(t, Options{Path: path, SweepInterval: -1})
	if n := db.bolt.Stats().FreePageN; n < 1900 {
		t.Fatalf("%d free pages after reopening, want about 2000", n)
	}
	for i := range 300 {
		key := store.RequestKey{ClientID: "c", RequestID: fmt.Sprint("r", i)}
		okey := store.OrderKey{ClientID: "c", MerchantBizNo: fmt.Sprint("m", i)}
		reply := store.Reply{Status: 200, Body: make([]byte, 1000)}
		if err := db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, key, claim(t, db, key, time.Minute), reply, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if after, err := os.Stat(path); err != nil || after.Size() != fi.Size() {
		t.Errorf("file size %d after writes that fit in its free pages, was %d (%v)", after.Size(), fi.Size(), err)
	}
}

// TestPagesFilledForGrowingIds: requests whose ids grow (inserted at the
// right edge of the tree) fill the pages they split, rather than leave
// them half empty.
func TestPagesFilledForGrowingIds(t *testing.T) {
	db := openTemp(t, Options{SweepInterval: -1})
	for i := range 400 {
		id := fmt.Sprintf("%08d", i)
		key := store.RequestKey{ClientID: "c", RequestID: id}
		okey := store.OrderKey{ClientID: "c", MerchantBizNo: id}
		reply := store.Reply{Status: 200, Body: make([]byte, 300)}
		if err := db.CommitSuccess(ctx, okey, nil, store.Order{Status: "A"}, key, claim(t, db, key, time.Minute), reply, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOrders, bucketRequests} {
			st := tx.Bucket(name).Stats()
			fill := float64(st.LeafInuse) / float64(st.LeafPageN*db.bolt.Info().PageSize)
			if st.LeafPageN < 2 || fill < 0.65 {
				t.Errorf("%s: %d leaf pages %.0f%% full, want them at least 65%% full", name, st.LeafPageN, 100*fill)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
