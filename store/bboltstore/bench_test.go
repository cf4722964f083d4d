package bboltstore

import (
	"testing"

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
