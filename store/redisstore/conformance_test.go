package redisstore

import (
	"testing"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return newBackend(t) })
}

// TestConformanceModule runs the suite through the Caddy module, which is
// what the handler holds.
func TestConformanceModule(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite already ran on Backend")
	}
	storetest.Run(t, func(t *testing.T) store.Backend { return &Store{Handle: store.Handle{Backend: newBackend(t)}} })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Backend { return newBackend(b) })
}
