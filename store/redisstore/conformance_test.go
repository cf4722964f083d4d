package redisstore

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"

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
	addr := sharedAddr(t)
	storetest.Run(t, func(t *testing.T) store.Backend {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		s := &Store{Address: addr, KeyPrefix: uniquePrefix()}
		if err := s.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = s.Cleanup() })
		return s
	})
}
