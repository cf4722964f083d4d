package ordersync

import (
	"bytes"
	"context"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/bboltstore"
)

// stallingBackend is a real bbolt store whose final writes (CommitSuccess,
// Finish) hang, ignoring their context, until gate is closed: a disk that
// stops answering under an fsync. The write then lands.
type stallingBackend struct {
	store.Backend
	gate    chan struct{}
	stalled atomic.Int32
}

func (b *stallingBackend) wait() {
	b.stalled.Add(1)
	<-b.gate
}

func (b *stallingBackend) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	b.wait()
	return b.Backend.CommitSuccess(context.WithoutCancel(ctx), okey, prev, next, rkey, token, reply, ttl)
}

func (b *stallingBackend) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	b.wait()
	return b.Backend.Finish(context.WithoutCancel(ctx), key, token, reply, ttl)
}

// TestTimeBoundWhenAWriteIgnoresItsDeadline (issue 9 item 8): the time
// bound holds even for a store write that does not honour its context.
// The caller gets U by upstream_timeout + 1s; the write goes on in the
// background and, once it lands, a retry is a replay of the final answer;
// meanwhile the order stays locked, so no other change overtakes it.
func TestTimeBoundWhenAWriteIgnoresItsDeadline(t *testing.T) {
	h := provisionTestHandler(t, map[string]any{"upstream_timeout": "1s"})
	db, err := bboltstore.Open(bboltstore.Options{Path: filepath.Join(t.TempDir(), "stalling.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	b := &stallingBackend{Backend: db, gate: make(chan struct{})}
	h.useStore(t, store.New(b, store.Options{}))
	key := loadFuzzKey(t)
	const bound = time.Second + orderflow.TimeBoundGrace

	var status atomic.Int32
	status.Store(http.StatusOK)
	var calls atomic.Int32
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		calls.Add(1)
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"orderId":"O-1","distributeResult":[]}`))
		return nil
	})
	send := func(body []byte) (orderflow.Code, time.Duration, []byte) {
		t.Helper()
		start := time.Now()
		w := serveInProcess(t, h, signedRequest(t, key, body), next)
		return orderflow.CodeOf(w.Body.Bytes()), time.Since(start), w.Body.Bytes()
	}
	order := func(id, status string, modify int64) []byte {
		return []byte(fmt.Sprintf(`{"requestId":%q,"merchantBizNo":"B-stall","orderStatus":%q,"orderModifyTime":%d,"userId":"U","merchantBizType":"COUPON","extInfo":{}}`, id, status, modify))
	}
	// The gate opens by itself after a while: before the fix the answer
	// waited for it.
	opened := time.AfterFunc(6*time.Second, func() { close(b.gate) })
	defer opened.Stop()

	// The commit of an S stalls.
	ticket := order("R-1", "TICKETED", 1)
	code, took, _ := send(ticket)
	if code != orderflow.UnknownException || took > bound+500*time.Millisecond {
		t.Fatalf("stalled commit: %s after %s, want U within %s", code, took, bound)
	}
	if b.stalled.Load() != 1 {
		t.Fatalf("%d writes stalled, want the commit", b.stalled.Load())
	}
	t.Logf("stalled commit: U after %s", took.Round(10*time.Millisecond))
	// While the commit is pending the order is still locked: a later
	// change waits for it and gives up with U, it does not overtake.
	code, _, body := send(order("R-2", "USED", 2))
	if code != orderflow.UnknownException || calls.Load() != 1 {
		t.Errorf("a change while the commit is pending: %s (%s), upstream calls %d; want U without calling it", code, body, calls.Load())
	}

	// The write lands: the first request's retry is its stored S.
	opened.Stop()
	close(b.gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body = send(ticket)
		if code == orderflow.Success {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry after the write landed: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if calls.Load() != 1 {
		t.Errorf("the upstream was called %d times; the retry must replay the S that landed", calls.Load())
	}
}

// useStore makes h answer with st instead of the store it was provisioned
// with.
func (h *Handler) useStore(tb testing.TB, st *store.Store) {
	tb.Helper()
	h.store, h.flowConfig.Store = st, st
	f, err := orderflow.New(h.flowConfig)
	if err != nil {
		tb.Fatal(err)
	}
	h.flow = f
}

// signedRequest is a POST of body signed as the provisioned test client.
func signedRequest(t testing.TB, key *rsa.PrivateKey, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://gw.test"+syncPathForTests, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	signTestRequest(t, r, key, body)
	return r
}

// TestNextHandlerThatNeverReturns: a next handler stuck past the time
// bound keeps the goroutine it runs on, and nothing else: the answer is
// given up on at GiveUpAt, and later calls run on other goroutines.
func TestNextHandlerThatNeverReturns(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		<-release
		return nil
	})
	answers := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		_, err := w.Write([]byte(`{"orderId":"O"}`))
		return err
	})
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		began := time.Now()
		up := serveCaptured(ctx, stuck, r, time.Now().Add(50*time.Millisecond))
		cancel()
		if !up.NeverDone || time.Since(began) > 5*time.Second {
			t.Fatalf("stuck call %d: %+v after %s, want NeverDone by GiveUpAt", i, up, time.Since(began))
		}
		up = serveCaptured(context.Background(), answers, r, time.Time{})
		if up.Status != http.StatusOK || string(up.Body) != `{"orderId":"O"}` {
			t.Fatalf("call after %d stuck ones: %+v", i+1, up)
		}
	}
}
