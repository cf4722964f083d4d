package redisstore

import (
	"testing"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/outboxtest"
)

// outboxHarness gives each subtest a client with a fresh prefix on the
// shared server. Peer is a second client on the same prefix: another Caddy
// instance. Restart abandons the client — its leases and claims live on in
// Redis until their ttl, as a killed instance's do — and returns a new one.
func outboxHarness() outboxtest.Harness {
	again := func(t *testing.T, b store.OutboxBackend) store.OutboxBackend {
		return newBackendPrefix(t, sharedAddr(t), b.(*Backend).prefix)
	}
	return outboxtest.Harness{
		Open:    func(t *testing.T) store.OutboxBackend { return newBackend(t) },
		Peer:    again,
		Restart: again,
	}
}

func TestOutboxConformance(t *testing.T) {
	outboxtest.Run(t, outboxHarness())
}

func BenchmarkOutbox(b *testing.B) {
	outboxtest.Bench(b, func(b *testing.B) store.OutboxBackend { return newBackend(b) })
}
