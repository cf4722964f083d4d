package bboltstore

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/storetest"
)

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Backend {
		return counted{openTemp(b, Options{})}
	})
}

// counted reports what a Backend did to its file (storetest.Counters).
type counted struct{ *Backend }

// BenchCounters counts committed write transactions, the fdatasyncs they
// cost (bbolt syncs twice per commit: the dirty pages, then the meta page
// that makes them current) and the pages they wrote (the dirty pages and
// the meta page).
func (c counted) BenchCounters() map[string]float64 {
	var txid int
	_ = c.bolt.View(func(tx *bolt.Tx) error { txid = tx.ID(); return nil })
	st := c.bolt.Stats()
	pageSize := c.bolt.Info().PageSize
	return map[string]float64{
		"commits": float64(txid),
		"fsyncs":  2 * float64(txid),
		"pages":   float64(st.TxStats.GetPageAlloc())/float64(pageSize) + float64(txid),
	}
}

const agedRecords = 30000

// makeAgedFile makes a file as a gateway leaves it after a while:
// agedRecords orders and replay records under random ids, a third of the
// replay records swept, so that thousands of its pages are free.
func makeAgedFile(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "orders.db")
	db, err := Open(Options{Path: path, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	reply := store.EncodeReply(store.Reply{Status: 200, Body: make([]byte, 500)})
	order := store.EncodeOrder(store.Order{Scenario: "gift_card", Status: "TICKETED", OrderID: "o", RequestID: "r"})
	for i := 0; i < agedRecords; i += 5000 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for range 5000 {
				k, _ := joinKey("client", rand.Text())
				if err := tx.Bucket(bucketOrders).Put(k, order); err != nil {
					return err
				}
				if err := tx.Bucket(bucketRequests).Put(k, encodeRecord(store.BodyHash{}, time.Now().Add(time.Hour), reply)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRequests).Cursor()
		i := 0
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if i++; i%3 == 0 {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkAgedFile runs the first-time path of the store benchmarks
// (storetest.Bench) on copies of an aged file (makeAgedFile): what a
// commit costs once the file has grown and has free pages, which a fresh
// file does not show.
func BenchmarkAgedFile(b *testing.B) {
	src := makeAgedFile(b)
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("FirstTime/%dwriters", storetest.BenchWriters), func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "orders.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		storetest.BenchFirstTime(b, counted{openPath(b, Options{Path: path, SweepInterval: -1})}, storetest.BenchWriters)
	})
}
