package outbox

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/bboltstore"
)

// The in-process harness: a real bbolt file in a temp dir, real RSA keys
// (ours and AlipayHK's), a fake AlipayHK behind the Sender that verifies
// every attempt's signature and answers as a test scripts it, and an
// Observer that records what the runner reports.

const testClientID = "2024TESTCLIENT01"

// patience bounds waits for things that should happen promptly; generous,
// because the CI machine is small and -race slows everything.
const patience = 15 * time.Second

type testKeys struct {
	merchant *rsa.PrivateKey // ours: signs attempts
	alipay   *rsa.PrivateKey // AlipayHK's: signs replies
	stranger *rsa.PrivateKey // nobody's: a reply signed with the wrong key
}

var keys = sync.OnceValue(func() testKeys {
	gen := func() *rsa.PrivateKey {
		k, err := signature.GenerateKey()
		if err != nil {
			panic(err)
		}
		return k
	}
	return testKeys{merchant: gen(), alipay: gen(), stranger: gen()}
})

// testCatalog enables gift_card (by default) and two scenarios with more
// statuses: coupon_with_code (TICKETED, REFUNDED, USED; the last two end
// statuses) and queue_up (CALL_NUM repeatable ... FINISHED).
func testCatalog(t testing.TB) *scenario.Catalog {
	t.Helper()
	c, err := scenario.New([]scenario.Config{
		{Name: "coupon_with_code", MerchantBizType: "COUPON"},
		{Name: "queue_up", MerchantBizType: "QUEUE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testConfig is a Config with short times, for fast tests.
func testConfig(t testing.TB) Config {
	t.Helper()
	signer, err := signature.NewSigner(keys().merchant)
	if err != nil {
		t.Fatal(err)
	}
	alipay, err := signature.NewPublicKey(&keys().alipay.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		ClientID:       testClientID,
		KeyVersion:     "2",
		Signer:         signer,
		AlipayKey:      alipay,
		Wait:           5 * time.Second,
		AttemptTimeout: 2 * time.Second,
		RetryInitial:   20 * time.Millisecond,
		RetryMax:       80 * time.Millisecond,
		MaxAge:         time.Hour,
		Scenarios:      testCatalog(t),
	}
}

// openDB opens a bbolt file; closed by t.Cleanup unless closed before.
func openDB(t testing.TB, path string) *bboltstore.Backend {
	t.Helper()
	db, err := bboltstore.Open(bboltstore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// env is one egress handler over one store: runner, service, fake
// AlipayHK, observer.
type env struct {
	t      testing.TB
	path   string
	db     *bboltstore.Backend
	ob     *store.Outbox
	cfg    Config
	alipay *fakeAlipay
	obs    *recorder
	runner *Runner
	svc    *Service
	// wrap, when set, wraps the bbolt backend (fault injection).
	wrap func(store.OutboxBackend) store.OutboxBackend
	// jitter, when set, replaces the runner's random source.
	jitter func() float64
	ro     RunnerOptions
}

type envOption func(*env)

// newEnv starts a runner over a new bbolt file; the runner stops at
// cleanup.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "outbox.db"), cfg: testConfig(t), obs: newRecorder()}
	e.ro = RunnerOptions{PollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second, Observer: e.obs}
	for _, o := range opts {
		o(e)
	}
	e.alipay = newFakeAlipay(t, &e.cfg)
	e.open()
	e.start()
	return e
}

// open opens the bbolt file (again).
func (e *env) open() {
	e.t.Helper()
	e.db = openDB(e.t, e.path)
	var b store.OutboxBackend = e.db
	if e.wrap != nil {
		b = e.wrap(b)
	}
	e.ob = store.NewOutbox(b)
}

// start makes the runner and service over e.ob and starts the runner.
func (e *env) start() {
	e.t.Helper()
	r, err := NewRunner(e.ob, e.cfg, e.alipay, e.ro)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.jitter != nil {
		r.jitter = e.jitter
	}
	svc, err := NewService(e.cfg, r)
	if err != nil {
		e.t.Fatal(err)
	}
	e.runner, e.svc = r, svc
	r.Start()
	e.t.Cleanup(r.Stop)
}

// restart is a crash and a restart, as far as the outbox can tell: the
// runner stops (attempts in flight cut off), the file is closed (leases,
// which bbolt keeps in memory, are gone) and opened again, and a new
// runner starts over it.
func (e *env) restart() {
	e.t.Helper()
	e.runner.Stop()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
	e.start()
}

func withConfig(f func(*Config)) envOption { return func(e *env) { f(&e.cfg) } }

func withRunner(f func(*RunnerOptions)) envOption { return func(e *env) { f(&e.ro) } }

// post submits an order body (with the JSON Content-Type).
func (e *env) post(body []byte, header ...string) Response {
	e.t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return e.svc.Submit(context.Background(), SubmitRequest{Method: http.MethodPost, Header: h, Body: body})
}

// postAsync submits with Prefer: respond-async and expects 202.
func (e *env) postAsync(body []byte) Response {
	e.t.Helper()
	r := e.post(body, "Prefer", "respond-async")
	if r.Status != http.StatusAccepted {
		e.t.Fatalf("respond-async: %s", r)
	}
	return r
}

// entry reads an entry from the store (nil if none).
func (e *env) entry(requestID string) *store.Entry {
	e.t.Helper()
	x, err := e.ob.Entry(context.Background(), store.RequestKey{ClientID: testClientID, RequestID: requestID})
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// await waits until the entry is in one of states.
func (e *env) await(requestID string, states ...store.EntryState) *store.Entry {
	e.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		x := e.entry(requestID)
		if x != nil && slices.Contains(states, x.State) {
			return x
		}
		if time.Now().After(deadline) {
			if x == nil {
				e.t.Fatalf("no entry %s after %v, want %v", requestID, patience, states)
			}
			e.t.Fatalf("entry %s is %s (attempts %d, lastError %q) after %v, want %v", requestID, x.State, x.Attempts, x.LastError, patience, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) lane(merchantBizNo string) *store.Lane {
	e.t.Helper()
	l, err := e.ob.Lane(context.Background(), store.LaneKey{ClientID: testClientID, MerchantBizNo: merchantBizNo})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) list(state store.EntryState) []*store.Entry {
	e.t.Helper()
	l, err := e.ob.List(context.Background(), testClientID, state, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (r Response) String() string {
	return fmt.Sprintf("HTTP %d %s=%q %s=%q reason %s: %s", r.Status, HeaderDecidedBy, r.Header.Get(HeaderDecidedBy),
		HeaderRequestID, r.Header.Get(HeaderRequestID), r.Reason, r.Body)
}

// envelope reads an answer's envelope.
func envelope(t testing.TB, r Response) orderflow.Envelope {
	t.Helper()
	var env orderflow.Envelope
	if err := json.Unmarshal(r.Body, &env); err != nil {
		t.Fatalf("not an envelope: %s", r)
	}
	return env
}

// expectGateway asserts a 200 envelope made by the gateway.
func expectGateway(t testing.TB, r Response, code orderflow.Code, requestID string) orderflow.Envelope {
	t.Helper()
	if r.Status != http.StatusOK || r.Header.Get(HeaderDecidedBy) != DecidedByGateway {
		t.Fatalf("want 200 decided by the gateway, got %s", r)
	}
	env := envelope(t, r)
	if env.Result.ResultCode != string(code) || env.Result.ResultStatus != string(code.Status()) || r.Code != code {
		t.Fatalf("want %s, got %s", code, r)
	}
	if got := r.Header.Get(HeaderRequestID); got != requestID {
		t.Errorf("%s = %q, want %q (%s)", HeaderRequestID, got, requestID, r)
	}
	if r.Header.Get("Signature") != "" {
		t.Errorf("the gateway's envelope is signed: %s", r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return env
}

// expectAlipay asserts a 200 with AlipayHK's reply body byte for byte.
func expectAlipay(t testing.TB, r Response, want []byte, requestID string) {
	t.Helper()
	if r.Status != http.StatusOK || r.Header.Get(HeaderDecidedBy) != DecidedByAlipayHK || string(r.Body) != string(want) {
		t.Fatalf("want 200 decided by AlipayHK with\n%s\ngot %s", want, r)
	}
	if got := r.Header.Get(HeaderRequestID); got != requestID {
		t.Errorf("%s = %q, want %q", HeaderRequestID, got, requestID)
	}
}

// expectQueued asserts a 202 with the entry and returns it.
func expectQueued(t testing.TB, r Response, requestID string) map[string]any {
	t.Helper()
	if r.Status != http.StatusAccepted || r.Header.Get(HeaderDecidedBy) != DecidedByGateway || r.Header.Get(HeaderRequestID) != requestID {
		t.Fatalf("want 202 for %s decided by the gateway, got %s", requestID, r)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("202 body: %v: %s", err, r.Body)
	}
	for _, k := range []string{"requestId", "merchantBizNo", "orderStatus", "state", "attempts", "nextAttemptAt", "lastError", "createdAt", "updatedAt", "reply"} {
		if _, ok := m[k]; !ok {
			t.Errorf("202 body lacks %q: %s", k, r.Body)
		}
	}
	if m["requestId"] != requestID {
		t.Errorf("202 body is the entry of %v, want %s", m["requestId"], requestID)
	}
	return m
}

// order is an order body under construction: a valid gift card sync.
type order map[string]any

var orderSeq struct {
	sync.Mutex
	n int
}

// newOrder returns a valid gift_card order with fresh ids.
func newOrder() order {
	orderSeq.Lock()
	orderSeq.n++
	n := orderSeq.n
	orderSeq.Unlock()
	return order{
		"requestId":       fmt.Sprintf("req-%d-%d", time.Now().UnixNano()%1e9, n),
		"merchantBizNo":   fmt.Sprintf("biz-%d-%d", time.Now().UnixNano()%1e9, n),
		"merchantBizType": "ALIPAY_COUPON",
		"orderStatus":     "TICKETED",
		"userId":          "2088000000000001",
		"orderCreateTime": int64(1742977506708),
		"orderModifyTime": int64(1742977506708),
		"amount":          map[string]any{"value": "10000", "currency": "HKD"},
		"extInfo":         map[string]any{"benefit_issue_mode": "SALE", "product_id": "p-1"},
	}
}

// coupon returns a coupon_with_code order of lane bizNo.
func coupon(bizNo, status string, modified int64) order {
	o := newOrder()
	o["merchantBizNo"] = bizNo
	o["merchantBizType"] = "COUPON"
	o["orderStatus"] = status
	o["orderModifyTime"] = modified
	o["extInfo"] = map[string]any{}
	return o
}

// queueUp returns a queue_up order of lane bizNo.
func queueUp(bizNo, status string) order {
	o := coupon(bizNo, status, 1742977506708)
	o["merchantBizType"] = "QUEUE"
	return o
}

func (o order) with(k string, v any) order {
	c := maps.Clone(o)
	if v == nil {
		c[k] = nil
	} else {
		c[k] = v
	}
	return c
}

func (o order) without(k string) order {
	c := maps.Clone(o)
	delete(c, k)
	return c
}

func (o order) id() string  { s, _ := o["requestId"].(string); return s }
func (o order) biz() string { s, _ := o["merchantBizNo"].(string); return s }

func (o order) bytes() []byte {
	b, err := json.Marshal(map[string]any(o))
	if err != nil {
		panic(err)
	}
	return b
}

// ---- the fake AlipayHK ----

// action is how the fake answers one attempt.
type action func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error)

// sent is one attempt as the fake received it.
type sent struct {
	At            time.Time
	RequestID     string
	MerchantBizNo string
	Number        int
	Header        http.Header
	Body          []byte
	// Problem is what was wrong with the request ("" when it was signed
	// and formed as an SDK's).
	Problem string
}

type fakeAlipay struct {
	t   testing.TB
	cfg *Config
	// noCheck skips verifying attempts (benchmarks measure the gateway,
	// not the fake).
	noCheck bool
	mu      sync.Mutex
	// script answers; nil answers S.
	script func(a Attempt, nth int) action
	sent   []sent
	perID  map[string]int // attempts per requestId
	// inFlight counts attempts in progress per lane; maxInFlight is the
	// most ever at once per lane and overall.
	inFlight         map[string]int
	total, maxTotal  int
	overlappedInLane []string
}

func newFakeAlipay(t testing.TB, cfg *Config) *fakeAlipay {
	return &fakeAlipay{t: t, cfg: cfg, perID: map[string]int{}, inFlight: map[string]int{}}
}

// answer sets the script: nth counts the attempts of the requestId, from 1.
func (f *fakeAlipay) answer(script func(a Attempt, nth int) action) {
	f.mu.Lock()
	f.script = script
	f.mu.Unlock()
}

// always answers every attempt with act.
func (f *fakeAlipay) always(act action) { f.answer(func(Attempt, int) action { return act }) }

func (f *fakeAlipay) Send(ctx context.Context, a Attempt) (Reply, error) {
	rec := sent{At: time.Now(), RequestID: a.RequestID, MerchantBizNo: a.MerchantBizNo, Number: a.Number,
		Header: a.Header.Clone(), Body: slices.Clone(a.Body)}
	if !f.noCheck {
		rec.Problem = f.check(a)
	}
	f.mu.Lock()
	f.sent = append(f.sent, rec)
	f.perID[a.RequestID]++
	nth := f.perID[a.RequestID]
	script := f.script
	f.inFlight[a.MerchantBizNo]++
	if f.inFlight[a.MerchantBizNo] > 1 {
		f.overlappedInLane = append(f.overlappedInLane, a.MerchantBizNo)
	}
	f.total++
	f.maxTotal = max(f.maxTotal, f.total)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight[a.MerchantBizNo]--
		f.total--
		f.mu.Unlock()
	}()
	act := replyS
	if script != nil {
		if s := script(a, nth); s != nil {
			act = s
		}
	}
	return act(ctx, f, a)
}

// check verifies an attempt as AlipayHK would: the SDK's headers, a
// Request-Time in epoch milliseconds, and our signature over it.
func (f *fakeAlipay) check(a Attempt) string {
	h := a.Header
	if a.Path != DefaultPath {
		return "path " + a.Path
	}
	if ct := h.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json; charset=UTF-8" {
		return fmt.Sprintf("Content-Type %q", ct)
	}
	if h.Get("Client-Id") != testClientID || h.Get("Key-Version") != f.cfg.KeyVersion {
		return "Client-Id or Key-Version"
	}
	rt := h.Get("Request-Time")
	ms, err := strconv.ParseInt(rt, 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		return "Request-Time " + rt
	}
	sh, err := signature.ParseHeader(h.Get("Signature"))
	if err != nil || sh.KeyVersion != f.cfg.KeyVersion {
		return "Signature header"
	}
	if err := signature.Verify(&keys().merchant.PublicKey, "POST", a.Path, testClientID, rt, a.Body, sh.Signature); err != nil {
		return "signature does not verify"
	}
	var body struct {
		RequestID string `json:"requestId"`
	}
	if json.Unmarshal(a.Body, &body) != nil || body.RequestID != a.RequestID {
		return "body's requestId"
	}
	return ""
}

// attempts returns the attempts received, for requestID ("" for all).
func (f *fakeAlipay) attempts(requestID string) []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sent
	for _, s := range f.sent {
		if requestID == "" || s.RequestID == requestID {
			out = append(out, s)
		}
	}
	return out
}

// problems fails the test for every attempt that was not formed and
// signed as it must be.
func (f *fakeAlipay) problems(t testing.TB) {
	t.Helper()
	for _, s := range f.attempts("") {
		if s.Problem != "" {
			t.Errorf("attempt %d of %s: %s", s.Number, s.RequestID, s.Problem)
		}
	}
}

// signed is a reply signed with key over the attempt's path and our
// Client-Id, as AlipayHK signs.
func signed(key *rsa.PrivateKey, status int, body []byte, extra ...string) Reply {
	rt := signature.FormatTime(time.Now())
	sig, err := signature.Sign(key, "POST", DefaultPath, testClientID, rt, body)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h["content-type"] = []string{"application/json; charset=UTF-8"}
	h["response-time"] = []string{rt}
	h["client-id"] = []string{testClientID}
	h["signature"] = []string{signature.FormatHeader("1", sig)}
	h["tracer-id"] = []string{"tr-1"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = []string{extra[i+1]}
	}
	return Reply{Status: status, Header: h, Body: body}
}

// envelopeOf is an AlipayHK envelope for a, with a distinctive layout
// (spaces) so that byte-for-byte checks mean something.
func envelopeOf(a Attempt, code orderflow.Code) []byte {
	if code == orderflow.Success {
		return fmt.Appendf(nil, `{"result": {"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"}, "orderId":"ali-%s","orderStatus":"TICKETED","distributeResult":[{"sceneCode":"x"}]}`, a.RequestID)
	}
	return fmt.Appendf(nil, `{"result": {"resultCode":%q,"resultStatus":%q,"resultMessage":"from AlipayHK"}}`, code, code.Status())
}

var (
	replyS = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, 200, envelopeOf(a, orderflow.Success)), nil
	}
	replyF   = replyCode(orderflow.OrderStatusInvalid)
	replyU   = replyCode(orderflow.UnknownException)
	reply429 = replyStatus(http.StatusTooManyRequests)
	reply503 = replyStatus(http.StatusServiceUnavailable)
	// replyHang never answers: the attempt times out.
	replyHang = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		<-ctx.Done()
		return Reply{}, ctx.Err()
	}
	replyUnsigned = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		r := signed(keys().alipay, 200, envelopeOf(a, orderflow.Success))
		delete(r.Header, "signature")
		return r, nil
	}
	replyWrongKey = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().stranger, 200, envelopeOf(a, orderflow.Success)), nil
	}
	// replyTampered is signed, then changed on the way.
	replyTampered = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		r := signed(keys().alipay, 200, envelopeOf(a, orderflow.Success))
		r.Body = append(r.Body, ' ')
		return r, nil
	}
	// replyCutShort is a reply whose body ended early: the sender reports
	// the read error.
	replyCutShort = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return Reply{}, fmt.Errorf("reading the reply: %w", io.ErrUnexpectedEOF)
	}
	replyRefused = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return Reply{}, errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	}
	// replyGarbage is signed by AlipayHK but not an envelope.
	replyGarbage = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, 200, []byte("<html>oops</html>")), nil
	}
	replyOtherClient = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, 200, envelopeOf(a, orderflow.Success), "client-id", "SOMEONE-ELSE"), nil
	}
	replyBadLetter = func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, 200, []byte(`{"result":{"resultCode":"SUCCESS","resultStatus":"X"}}`)), nil
	}
)

func replyCode(code orderflow.Code) action {
	return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, 200, envelopeOf(a, code)), nil
	}
}

// replyStatus is an HTTP error, signed (a gateway in front of AlipayHK
// may sign errors too: the status alone makes it retryable).
func replyStatus(status int) action {
	return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		return signed(keys().alipay, status, envelopeOf(a, orderflow.UnknownException)), nil
	}
}

// ---- the recording Observer ----

type recorder struct {
	mu        sync.Mutex
	attempts  []AttemptEvent
	heardAt   []time.Time // when each attempt event arrived
	finals    []FinalEvent
	callbacks []CallbackEvent
	operator  []OperatorEvent
	queue     []store.OutboxStats
	troubles  []string
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) Attempt(e AttemptEvent) {
	r.mu.Lock()
	r.attempts = append(r.attempts, e)
	r.heardAt = append(r.heardAt, time.Now())
	r.mu.Unlock()
}
func (r *recorder) Final(e FinalEvent) { r.mu.Lock(); r.finals = append(r.finals, e); r.mu.Unlock() }
func (r *recorder) Callback(e CallbackEvent) {
	r.mu.Lock()
	r.callbacks = append(r.callbacks, e)
	r.mu.Unlock()
}
func (r *recorder) Operator(e OperatorEvent) {
	r.mu.Lock()
	r.operator = append(r.operator, e)
	r.mu.Unlock()
}
func (r *recorder) Queue(_ string, s store.OutboxStats) {
	r.mu.Lock()
	r.queue = append(r.queue, s)
	r.mu.Unlock()
}
func (r *recorder) Trouble(op string, _ store.LaneKey, err error) {
	r.mu.Lock()
	r.troubles = append(r.troubles, op+": "+err.Error())
	r.mu.Unlock()
}

func (r *recorder) attemptsOf(requestID string) []AttemptEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []AttemptEvent
	for _, e := range r.attempts {
		if e.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) finalOf(requestID string) []FinalEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []FinalEvent
	for _, e := range r.finals {
		if e.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) troubleList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.troubles)
}

// eventually polls cond until it holds or patience runs out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
