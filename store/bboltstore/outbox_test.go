package bboltstore

import (
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/outboxtest"
)

// outboxHarness opens a file per subtest. Peer is the Backend itself (one
// process per file); Restart closes the file and opens it again, which
// loses exactly what a killed process loses: the in-memory leases and
// callback claims (every acknowledged write was fsynced).
func outboxHarness(opts Options) outboxtest.Harness {
	return outboxtest.Harness{
		Open: func(t *testing.T) store.OutboxBackend {
			return openTemp(t, opts)
		},
		Peer: func(t *testing.T, b store.OutboxBackend) store.OutboxBackend { return b },
		Restart: func(t *testing.T, b store.OutboxBackend) store.OutboxBackend {
			db := b.(*Backend)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			reopen := opts
			reopen.Path = db.path
			reopened, err := Open(reopen)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reopened.Close() })
			return reopened
		},
	}
}

func TestOutboxConformance(t *testing.T) {
	t.Parallel()
	// A short sweep interval makes the sweeper run against the suite's
	// traffic.
	outboxtest.Run(t, outboxHarness(Options{SweepInterval: 50 * time.Millisecond}))
}

func BenchmarkOutbox(b *testing.B) {
	outboxtest.Bench(b, func(b *testing.B) store.OutboxBackend { return openTemp(b, Options{}) })
}
