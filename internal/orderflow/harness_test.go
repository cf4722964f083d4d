package orderflow

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/bboltstore"
)

// The tests of this package run the whole pipeline in-process: a real
// bbolt file in a temp dir behind a fault-injecting wrapper (faulty), a
// fake upstream (fakeUpstream), real RSA keys (the demo keys of
// examples/). A request takes milliseconds.

const (
	testClient = "TEST-CLIENT-1"
	syncPath   = "/api/open/alipay/v1/merchant/order/sync"
)

// The backend operations a fault can be injected into.
const (
	opClaim   = "Claim"
	opRelease = "Release"
	opFinish  = "Finish"
	opLock    = "LockOrder"
	opUnlock  = "UnlockOrder"
	opGet     = "GetOrder"
	opCommit  = "CommitSuccess"
	opStored  = "StoredReply"
)

// errInjected is the failure a fault returns unless it says otherwise: a
// store that is down.
var errInjected = &store.Error{Backend: "test", Op: "injected", Err: errors.New("connection refused")}

// fault makes the nth call (1-based; 0 = every call) of one operation
// fail with err, or, with hang, wait for the context to end first. With
// after, the operation is done by the real store before err is returned:
// a reply lost after the write. With gate, the call first waits for gate
// to close, ignoring its context (a disk hung under an fsync); with pass
// it is then done by the real store and returns what that returns.
type fault struct {
	op    string
	nth   int
	err   error
	hang  bool
	after bool
	gate  chan struct{}
	pass  bool
}

// faulty is a store.Backend that passes every call to a real one, except
// those a fault picks; it counts the calls of each operation.
type faulty struct {
	store.Backend
	mu     sync.Mutex
	calls  map[string]int
	faults []fault
}

func (f *faulty) inject(flt fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if flt.err == nil && !flt.pass {
		flt.err = errInjected
	}
	f.faults = append(f.faults, flt)
}

// gate returns a channel for fault.gate and the func that opens it; it is
// opened at the end of the test at the latest, before the store is
// closed, so that no stalled write outlives the test.
func (h *harness) gate() (chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	h.t.Cleanup(open)
	return ch, open
}

// heal drops every fault.
func (f *faulty) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

func (f *faulty) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// do runs one call of op: real, or as the matching fault says.
func (f *faulty) do(ctx context.Context, op string, real func(context.Context) error) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	n := f.calls[op]
	var hit *fault
	for i := range f.faults {
		if flt := f.faults[i]; flt.op == op && (flt.nth == 0 || flt.nth == n) {
			hit = &flt
			break
		}
	}
	f.mu.Unlock()
	if hit != nil && hit.gate != nil {
		<-hit.gate
		// The write was under way when it stalled: its deadline no
		// longer stops it.
		ctx = context.WithoutCancel(ctx)
	}
	switch {
	case hit == nil, hit.pass:
		return real(ctx)
	case hit.hang:
		<-ctx.Done()
		return hit.err
	case hit.after:
		if err := real(ctx); err != nil {
			return err
		}
	}
	return hit.err
}

func (f *faulty) Claim(ctx context.Context, key store.RequestKey, hash store.BodyHash, token string, lease time.Duration) (res store.ClaimResult, err error) {
	err = f.do(ctx, opClaim, func(ctx context.Context) (err error) {
		res, err = f.Backend.Claim(ctx, key, hash, token, lease)
		return err
	})
	return res, err
}

func (f *faulty) Release(ctx context.Context, key store.RequestKey, token string) error {
	return f.do(ctx, opRelease, func(ctx context.Context) error { return f.Backend.Release(ctx, key, token) })
}

func (f *faulty) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	return f.do(ctx, opFinish, func(ctx context.Context) error { return f.Backend.Finish(ctx, key, token, reply, ttl) })
}

func (f *faulty) LockOrder(ctx context.Context, key store.OrderKey, token string, lease time.Duration) error {
	return f.do(ctx, opLock, func(ctx context.Context) error { return f.Backend.LockOrder(ctx, key, token, lease) })
}

func (f *faulty) UnlockOrder(ctx context.Context, key store.OrderKey, token string) error {
	return f.do(ctx, opUnlock, func(ctx context.Context) error { return f.Backend.UnlockOrder(ctx, key, token) })
}

func (f *faulty) GetOrder(ctx context.Context, key store.OrderKey) (o *store.Order, err error) {
	err = f.do(ctx, opGet, func(ctx context.Context) (err error) {
		o, err = f.Backend.GetOrder(ctx, key)
		return err
	})
	return o, err
}

func (f *faulty) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	return f.do(ctx, opCommit, func(ctx context.Context) error {
		return f.Backend.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
	})
}

// StoredReply passes store.ReplyReader on, as the store modules do: the
// flow's lookup before decoding runs in every test.
func (f *faulty) StoredReply(ctx context.Context, key store.RequestKey, hash store.BodyHash) (rep *store.Reply, err error) {
	err = f.do(ctx, opStored, func(ctx context.Context) (err error) {
		rep, err = f.Backend.(store.ReplyReader).StoredReply(ctx, key, hash)
		return err
	})
	return rep, err
}

// fakeUpstream is a Forwarder that answers what its reply func says and
// keeps what it was sent.
type fakeUpstream struct {
	mu    sync.Mutex
	reply func(Upstream) UpstreamReply
	sent  []Upstream
}

func (u *fakeUpstream) Forward(ctx context.Context, up Upstream) UpstreamReply {
	u.mu.Lock()
	u.sent = append(u.sent, up)
	reply := u.reply
	u.mu.Unlock()
	if reply == nil {
		return issued(up)
	}
	return reply(up)
}

func (u *fakeUpstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.sent)
}

func (u *fakeUpstream) answer(reply func(Upstream) UpstreamReply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reply = reply
}

// issued is a SUCCESS from the upstream, with an orderId made of the
// forwarded requestId.
func issued(up Upstream) UpstreamReply {
	var sent struct {
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal(up.Body, &sent)
	return UpstreamReply{Status: http.StatusOK, Body: []byte(`{"orderId":"ORD-` + sent.RequestID + `","distributeResult":[{"sceneCode":"PASS","extInfo":{"detailLink":"https://x.test/?a=1&b=2"}}]}`)}
}

// replyWith is an upstream that answers status and body.
func replyWith(status int, body string) func(Upstream) UpstreamReply {
	return func(Upstream) UpstreamReply { return UpstreamReply{Status: status, Body: []byte(body)} }
}

// harness is one Flow over a real bbolt file with faults, a fake
// upstream and the demo keys.
type harness struct {
	t        testing.TB
	flow     *Flow
	st       *store.Store
	backend  *faulty
	up       *fakeUpstream
	merchant *rsa.PrivateKey
	gateway  *rsa.PublicKey
}

// option changes the Config of a harness before its Flow is made.
type option func(*Config)

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	b, err := bboltstore.Open(bboltstore.Options{Path: filepath.Join(t.TempDir(), "orders.db"), BatchDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fb := &faulty{Backend: b}
	st := store.New(fb, store.Options{CleanupTimeout: 500 * time.Millisecond})
	t.Cleanup(func() {
		fb.heal()
		st.Wait()
		_ = b.Close()
	})
	catalog, err := scenario.New([]scenario.Config{{Name: "coupon_with_code", MerchantBizType: "COUPON"}})
	if err != nil {
		t.Fatal(err)
	}
	keys := demoKeys(t)
	pub, err := signature.NewPublicKey(&keys.merchant.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(keys.gateway)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Clients:         map[string]*Client{testClient: {Keys: map[string]*signature.PublicKey{"1": pub}}},
		TimeWindow:      5 * time.Minute,
		Signer:          &Signer{Key: signer, KeyVersion: "1"},
		Scenarios:       catalog,
		Store:           st,
		MaxBodySize:     64 << 10,
		UpstreamTimeout: 2 * time.Second,
		ClaimLease:      10 * time.Second,
		IdempotencyTTL:  time.Hour,
	}
	for _, o := range opts {
		o(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, flow: f, st: st, backend: fb, up: &fakeUpstream{}, merchant: keys.merchant, gateway: &keys.gateway.PublicKey}
}

type keyPair struct{ merchant, gateway *rsa.PrivateKey }

var (
	demoOnce sync.Once
	demo     keyPair
	demoErr  error
)

// demoKeys are the repository's demo keys (examples/demo-keys).
func demoKeys(t testing.TB) keyPair {
	t.Helper()
	demoOnce.Do(func() {
		load := func(name string) *rsa.PrivateKey {
			b, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo-keys", name))
			if err == nil {
				var k *rsa.PrivateKey
				if k, err = signature.ParsePrivateKey(b); err == nil {
					return k
				}
			}
			demoErr = errors.Join(demoErr, err)
			return nil
		}
		demo = keyPair{merchant: load("merchant-private.pem"), gateway: load("gateway-private.pem")}
	})
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	return demo
}

// request is a POST of body, signed by the test client now.
func (h *harness) request(body []byte) *Request {
	h.t.Helper()
	rt := signature.FormatEpochMillis(time.Now())
	sig, err := signature.Sign(h.merchant, http.MethodPost, syncPath, testClient, rt, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return &Request{
		Method: http.MethodPost,
		Path:   syncPath,
		Header: http.Header{
			"Content-Type": {"application/json; charset=UTF-8"},
			"Client-Id":    {testClient},
			"Request-Time": {rt},
			"Signature":    {signature.FormatHeader("1", sig)},
		},
		Body: body,
	}
}

// send serves a signed POST of body, checks what every answer must be
// (HTTP 200, a signed envelope of a known code with its letter, the reply
// headers) and returns the answer.
func (h *harness) send(body []byte) Answer {
	h.t.Helper()
	return h.serve(h.request(body))
}

func (h *harness) serve(req *Request) Answer {
	h.t.Helper()
	a := h.flow.Serve(context.Background(), req, h.up)
	h.checkEnvelope(req, a)
	return a
}

func (h *harness) checkEnvelope(req *Request, a Answer) {
	h.t.Helper()
	rep := a.Reply
	if rep.Status != http.StatusOK {
		h.t.Fatalf("HTTP %d", rep.Status)
	}
	var env Envelope
	if err := json.Unmarshal(rep.Body, &env); err != nil {
		h.t.Fatalf("not an envelope: %q", rep.Body)
	}
	if env.Result.ResultCode != string(a.Code) || env.Result.ResultStatus != string(a.Code.Status()) || a.Code.Status() == "" {
		h.t.Fatalf("answer %s, envelope %+v", a.Code, env.Result)
	}
	if got := rep.Header[HeaderContentType]; len(got) != 1 || got[0] != ContentTypeJSON {
		h.t.Errorf("Content-Type %v", got)
	}
	rt, sig := rep.Header[HeaderResponseTime], rep.Header[HeaderSignature]
	if len(rt) != 1 || len(sig) != 1 {
		h.t.Fatalf("reply headers %v: want one response-time and one signature", rep.Header)
	}
	parsed, err := signature.ParseHeader(sig[0])
	if err != nil {
		h.t.Fatal(err)
	}
	if err := signature.Verify(h.gateway, req.Method, req.Path, a.ClientID, rt[0], rep.Body, parsed.Signature); err != nil {
		h.t.Errorf("the reply's signature does not verify: %v", err)
	}
}

// order is a request body builder: a coupon_with_code order (statuses
// TICKETED, REFUNDED, USED) with its own ids.
type order struct {
	requestID, bizNo, status string
	modify                   int64
}

var orderSeq struct {
	sync.Mutex
	n int
}

func newOrder(status string) order {
	orderSeq.Lock()
	orderSeq.n++
	n := orderSeq.n
	orderSeq.Unlock()
	return order{requestID: fmt.Sprintf("R-%d-%d", time.Now().UnixNano(), n), bizNo: fmt.Sprintf("B-%d", n), status: status, modify: 1742977506708}
}

// next is the order's next sync: a new requestId, this status, a later
// time.
func (o order) next(status string) order {
	n := newOrder(status)
	n.bizNo, n.modify = o.bizNo, o.modify+1000
	return n
}

func (o order) body() []byte {
	return []byte(`{"requestId":"` + o.requestID + `","merchantId":"2160120041113167","merchantBizNo":"` + o.bizNo +
		`","orderStatus":"` + o.status + `","userId":"2160220041431868","merchantBizType":"COUPON","orderCreateTime":1740385506708,` +
		`"orderModifyTime":` + fmt.Sprint(o.modify) + `,"tradeNo":"T","extInfo":{"product_id":"P-1"}}`)
}

// expect fails unless a is code, with reason when reason is not "".
func expect(t testing.TB, a Answer, code Code, reason string) {
	t.Helper()
	if a.Code != code || (reason != "" && a.Reason != reason) {
		t.Fatalf("answer %s (%s), want %s (%s): %s", a.Code, a.Reason, code, reason, a.Reply.Body)
	}
}

// storedOrder is the order's state in the real store, bypassing faults.
func (h *harness) storedOrder(o order) *store.Order {
	h.t.Helper()
	got, err := h.backend.Backend.GetOrder(context.Background(), store.OrderKey{ClientID: testClient, MerchantBizNo: o.bizNo})
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

// storedReply is the replay record of o's requestId in the real store, or
// nil.
func (h *harness) storedReply(o order) *store.RequestRecord {
	h.t.Helper()
	rec, err := h.backend.Backend.GetRequest(context.Background(), store.RequestKey{ClientID: testClient, RequestID: o.requestID})
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
