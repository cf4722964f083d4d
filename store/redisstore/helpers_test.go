package redisstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// One server serves the whole package; tests are kept apart by key prefix,
// which also exercises the prefix. Tests that need to stop or reconfigure a
// server start a private one.
var shared struct {
	once sync.Once
	addr string
	stop func()
	err  error
}

var prefixSeq atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

func sharedAddr(tb testing.TB) string {
	tb.Helper()
	shared.once.Do(func() {
		shared.addr, shared.stop, shared.err = redistest.StartServer()
	})
	if errors.Is(shared.err, redistest.ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			tb.Fatal(redistest.NotInstalled)
		}
		tb.Skip(redistest.NotInstalled)
	}
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.addr
}

// uniquePrefix gives each store its own key space on the shared server.
func uniquePrefix() string {
	return fmt.Sprintf("test%d:", prefixSeq.Add(1))
}

// newBackend returns a Backend on the shared server with a fresh prefix,
// closed when tb ends.
func newBackend(tb testing.TB) *Backend {
	tb.Helper()
	return newBackendPrefix(tb, sharedAddr(tb), uniquePrefix())
}

func newBackendPrefix(tb testing.TB, addr, prefix string) *Backend {
	tb.Helper()
	c, err := Open(Options{Addr: addr, KeyPrefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
