package caddytest

// Helpers of the egress (alipay_order_push) end-to-end tests: the config of
// an egress Caddy, the legacy system's calls, the entry it gets back. The
// AlipayHK stand-in is in push_alipay_test.go, the callback receiver and
// the relay in push_relay_test.go. Names carry a "push" prefix so that they
// do not collide with the helpers of the ingress tests in this package.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pushLegacyPath is the route the legacy system posts to (the egress Caddyfile's
// example). It differs from the AlipayHK path on purpose: the stand-in only
// accepts syncPath, which proves that the module sets the path of each attempt
// and that reverse_proxy needs no rewrite.
const pushLegacyPath = "/orders/sync"

// pushContentType is the Content-Type of every answer to the legacy system.
const pushContentType = "application/json; charset=UTF-8"

// Entry states ("What the legacy system sends and gets").
const (
	pushQueued    = "queued"
	pushSucceeded = "succeeded"
	pushFailed    = "failed"
	pushExpired   = "expired"
)

// pushKeyFile is a file of the repository's demo keys. The merchant's key
// pair signs the requests; the "gateway" pair plays AlipayHK's.
func pushKeyFile(name string) string {
	return filepath.Join(repoRoot(), "examples", "demo-keys", name)
}

// pushConfig describes an egress Caddy: one site on loopback whose route
// pushLegacyPath holds alipay_order_push followed by reverse_proxy.
type pushConfig struct {
	upstream       string // host:port reverse_proxy sends the attempts to
	store          string // the store line; default a bbolt file in the data dir
	keyVersion     string // default 1
	wait           string // default 5s
	attemptTimeout string // default 2s
	retryInitial   string // default 50ms
	retryMax       string // default 200ms
	maxAge         string // default 2m
	callback       string // callback URL; "" for none
	secret         string // the callback's secret as written in the Caddyfile
	options        string // more sub-directives of alipay_order_push
	proxy          string // the reverse_proxy block's content
}

func pushOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// caddyfile renders the config for an instance (startCaddy's render).
func (p pushConfig) caddyfile(in *instance) string {
	store := pushOr(p.store, "store bbolt "+filepath.Join(in.dataDir, "push.db"))
	callback := ""
	if p.callback != "" {
		callback = fmt.Sprintf("callback %s {\n\t\t\t\tsecret %s\n\t\t\t}", p.callback, p.secret)
	}
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_push {
			client_id %s
			private_key_file %s
			key_version %s
			alipay_public_key_file %s
			%s
			wait %s
			attempt_timeout %s
			retry_initial %s
			retry_max %s
			max_age %s
			%s
			%s
			%s
		}
		reverse_proxy %s {
			%s
		}
	}
}
`, in.adminPort, in.port, pushLegacyPath,
		testClient, pushKeyFile("merchant-private.pem"), pushOr(p.keyVersion, "1"), pushKeyFile("gateway-public.pem"),
		store, pushOr(p.wait, "5s"), pushOr(p.attemptTimeout, "2s"), pushOr(p.retryInitial, "50ms"),
		pushOr(p.retryMax, "200ms"), pushOr(p.maxAge, "2m"), callback, allScenarios, p.options,
		p.upstream, p.proxy)
}

// start runs an egress Caddy on this config until the test ends.
func (p pushConfig) start(t testing.TB, opts caddyOptions) *instance {
	t.Helper()
	return startCaddy(t, p.caddyfile, opts)
}

// pushURL is where the legacy system posts (and looks entries up).
func pushURL(in *instance) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", in.port, pushLegacyPath)
}

// pushCall is one request of the legacy system: plain, unsigned JSON.
type pushCall struct {
	method      string // default POST
	contentType string // default application/json, as a PHP client sends it
	body        []byte
	async       bool // Prefer: respond-async
	header      map[string]string
}

// pushReply is what the legacy system got.
type pushReply struct {
	status int
	header http.Header
	body   []byte
}

// pushClient waits longer than any `wait` of these tests.
var pushClient = &http.Client{Timeout: 90 * time.Second}

func pushTry(in *instance, c pushCall) (pushReply, error) {
	return pushTryURL(pushURL(in), c)
}

func pushTryURL(u string, c pushCall) (pushReply, error) {
	method := pushOr(c.method, http.MethodPost)
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return pushReply{}, err
	}
	if c.body != nil {
		req.Header.Set("Content-Type", pushOr(c.contentType, "application/json"))
	}
	if c.async {
		req.Header.Set("Prefer", "respond-async")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := pushClient.Do(req)
	if err != nil {
		return pushReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return pushReply{}, fmt.Errorf("reading the answer: %v", err)
	}
	return pushReply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func pushSend(t testing.TB, in *instance, c pushCall) pushReply {
	t.Helper()
	r, err := pushTry(in, c)
	if err != nil {
		t.Fatalf("legacy %s: %v", pushOr(c.method, "POST"), err)
	}
	return r
}

// pushPost posts an order and waits up to `wait` for its outcome.
func pushPost(t testing.TB, in *instance, body []byte) pushReply {
	t.Helper()
	return pushSend(t, in, pushCall{body: body})
}

// pushPostAsync posts an order with Prefer: respond-async.
func pushPostAsync(t testing.TB, in *instance, body []byte) pushReply {
	t.Helper()
	return pushSend(t, in, pushCall{body: body, async: true})
}

// pushLookup is GET <path>?requestId=<id>.
func pushLookup(t testing.TB, in *instance, requestID string) pushReply {
	t.Helper()
	r, err := pushTryURL(pushURL(in)+"?"+url.Values{"requestId": {requestID}}.Encode(), pushCall{method: http.MethodGet})
	if err != nil {
		t.Fatalf("lookup %s: %v", requestID, err)
	}
	return r
}

func (r pushReply) String() string {
	return fmt.Sprintf("HTTP %d, Order-Push-Decided-By %q, Order-Push-Request-Id %q, body %s",
		r.status, r.header.Get("Order-Push-Decided-By"), r.header.Get("Order-Push-Request-Id"), r.body)
}

// expectHeaders asserts what every answer has: JSON, the Content-Type of
// the egress answers, Order-Push-Decided-By, and Order-Push-Request-Id equal to
// requestID when the test knows it (requestID "" skips that check).
func (r pushReply) expectHeaders(t testing.TB, decidedBy, requestID string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != pushContentType {
		t.Errorf("Content-Type = %q, want %q (%s)", ct, pushContentType, r)
	}
	if !json.Valid(r.body) {
		t.Errorf("the answer is not JSON: %s", r)
	}
	if got := r.header.Get("Order-Push-Decided-By"); got != decidedBy {
		t.Errorf("Order-Push-Decided-By = %q, want %q (%s)", got, decidedBy, r)
	}
	if requestID != "" {
		if got := r.header.Get("Order-Push-Request-Id"); got != requestID {
			t.Errorf("Order-Push-Request-Id = %q, want %q (%s)", got, requestID, r)
		}
	}
}

// expectAlipay asserts a 200 whose body is AlipayHK's envelope, byte for
// byte.
func (r pushReply) expectAlipay(t testing.TB, want []byte, requestID string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("want 200 with AlipayHK's envelope, got %s", r)
	}
	r.expectHeaders(t, "alipayhk", requestID)
	if !bytes.Equal(r.body, want) {
		t.Errorf("the body is not AlipayHK's envelope byte for byte:\n got %q\nwant %q", r.body, want)
	}
}

// expectGateway asserts a 200 with the gateway's own envelope (the caller's
// envelope of "What the caller gets") (never
// signed) and returns the envelope.
func (r pushReply) expectGateway(t testing.TB, code, letter, requestID string) envelope {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("want 200 with the gateway's %s envelope, got %s", code, r)
	}
	return r.gatewayEnvelope(t, code, letter, requestID)
}

func (r pushReply) gatewayEnvelope(t testing.TB, code, letter, requestID string) envelope {
	t.Helper()
	r.expectHeaders(t, "gateway", requestID)
	var env envelope
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("not an envelope: %v: %s", err, r)
	}
	if env.Result.ResultCode != code || env.Result.ResultStatus != letter {
		t.Fatalf("got %s/%s (%q), want %s/%s: %s", env.Result.ResultCode, env.Result.ResultStatus, env.Result.ResultMessage, code, letter, r)
	}
	if len(env.Result.ResultMessage) > 256 {
		t.Errorf("resultMessage longer than 256 bytes: %d", len(env.Result.ResultMessage))
	}
	if s := r.header.Get("Signature"); s != "" {
		t.Errorf("the gateway's own envelope is signed (Signature %q); the egress contract says never", s)
	}
	return env
}

// pushEntry is the entry of "What the legacy system sends and gets" (202 body,
// GET lookup, callback).
type pushEntry struct {
	RequestID     string          `json:"requestId"`
	MerchantBizNo string          `json:"merchantBizNo"`
	OrderStatus   string          `json:"orderStatus"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	CreatedAt     *string         `json:"createdAt"`
	UpdatedAt     *string         `json:"updatedAt"`
	NextAttemptAt *string         `json:"nextAttemptAt"`
	LastError     *string         `json:"lastError"`
	Reply         json.RawMessage `json:"reply"`
	raw           map[string]json.RawMessage
}

func (e pushEntry) lastError() string { return pushStr(e.LastError) }

// pushStr is the value of an optional string field ("" when null or absent).
func pushStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// pushDecodeEntry decodes an entry and checks the fields every entry has.
func pushDecodeEntry(t testing.TB, body []byte) pushEntry {
	t.Helper()
	var e pushEntry
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an entry: %v: %s", err, body)
	}
	if err := json.Unmarshal(body, &e.raw); err != nil {
		t.Fatalf("not an entry: %v: %s", err, body)
	}
	switch e.State {
	case pushQueued, pushSucceeded, pushFailed, pushExpired:
	default:
		t.Errorf("state %q is none of queued|succeeded|failed|expired: %s", e.State, body)
	}
	if e.Attempts < 0 {
		t.Errorf("attempts %d: %s", e.Attempts, body)
	}
	return e
}

// requireKeys asserts that every key is present (a value may be null or
// "" where the contract has nothing to say yet, e.g. lastError before the
// first attempt).
func (e pushEntry) requireKeys(t testing.TB, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := e.raw[k]; !ok {
			t.Errorf("entry lacks %q: %s", k, pushRaw(e.raw))
		}
	}
}

func pushRaw(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// pushTime parses a time field of an entry (RFC 3339).
func pushTime(t testing.TB, field string, v *string) time.Time {
	t.Helper()
	if v == nil {
		t.Fatalf("%s is null", field)
		return time.Time{}
	}
	ts, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		t.Fatalf("%s %q is not RFC 3339: %v", field, *v, err)
	}
	return ts
}

// pushQueuedKeys are the keys of a 202 body (the answers table).
var pushQueuedKeys = []string{"requestId", "merchantBizNo", "orderStatus", "state", "attempts", "nextAttemptAt", "lastError"}

// pushLookupKeys are the keys of a GET lookup.
var pushLookupKeys = []string{"requestId", "merchantBizNo", "orderStatus", "state", "attempts", "createdAt", "updatedAt", "lastError"}

// expectQueued asserts a 202 with a queued entry and returns the entry.
func (r pushReply) expectQueued(t testing.TB, requestID string) pushEntry {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("want 202 with the queued entry, got %s", r)
	}
	r.expectHeaders(t, "gateway", requestID)
	e := pushDecodeEntry(t, r.body)
	e.requireKeys(t, pushQueuedKeys...)
	if e.State != pushQueued {
		t.Errorf("202 with state %q, want queued: %s", e.State, r.body)
	}
	if requestID != "" && e.RequestID != requestID {
		t.Errorf("202 entry requestId %q, want %q", e.RequestID, requestID)
	}
	pushTime(t, "nextAttemptAt", e.NextAttemptAt)
	return e
}

// expectEntry asserts a 200 GET lookup and returns the entry.
func (r pushReply) expectEntry(t testing.TB, requestID string) pushEntry {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("lookup of %s: want 200 with the entry, got %s", requestID, r)
	}
	r.expectHeaders(t, "gateway", requestID)
	e := pushDecodeEntry(t, r.body)
	e.requireKeys(t, pushLookupKeys...)
	if e.RequestID != requestID {
		t.Errorf("lookup of %s returned the entry of %s", requestID, e.RequestID)
	}
	created, updated := pushTime(t, "createdAt", e.CreatedAt), pushTime(t, "updatedAt", e.UpdatedAt)
	if updated.Before(created) {
		t.Errorf("updatedAt %s before createdAt %s", *e.UpdatedAt, *e.CreatedAt)
	}
	// An entry the operator dropped is failed without any reply from
	// AlipayHK (README, "Egress": outbox drop).
	if e.State == pushSucceeded || (e.State == pushFailed && e.lastError() != "dropped by operator") {
		if len(e.Reply) == 0 || string(e.Reply) == "null" {
			t.Errorf("a %s entry has no reply: %s", e.State, r.body)
		}
	}
	return e
}

// pushAwait polls the lookup until the entry is in one of states.
func pushAwait(t testing.TB, in *instance, requestID string, timeout time.Duration, states ...string) pushEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := pushTryURL(pushURL(in)+"?"+url.Values{"requestId": {requestID}}.Encode(), pushCall{method: http.MethodGet})
		if err == nil && r.status == http.StatusOK {
			e := pushDecodeEntry(t, r.body)
			for _, s := range states {
				if e.State == s {
					return r.expectEntry(t, requestID)
				}
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("entry %s not %v after %s: last lookup failed: %v", requestID, states, timeout, err)
			}
			t.Fatalf("entry %s not %v after %s: last lookup %s", requestID, states, timeout, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushSameJSON compares two JSON documents by value, number literals as
// written (so 1e3 and 1000 differ, and so do a big integer and its
// float64 rounding).
func pushSameJSON(a, b []byte) bool {
	x, okA := pushDecodeValue(a)
	y, okB := pushDecodeValue(b)
	return okA && okB && reflect.DeepEqual(x, y)
}

func pushDecodeValue(b []byte) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// pushRequestIDPattern is the derived requestId: 32 lowercase hex.
var pushRequestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// pickOrder is a self_pick order (PENDING, ORDER_TAKEN, TO_PICK_UP, then
// one of the ends FINISHED, CLOSED, REFUNDED; after TO_PICK_UP only
// FINISHED): the scenario with the longest forward path, for lanes.
func pickOrder() order {
	return newOrder().with("merchantBizType", "PICK").with("extInfo", map[string]any{"pickup_code": "P-1"}).
		with("merchantBizNo", "PK-"+uid(16))
}

// couponOrder is a coupon_with_code order (TICKETED, then USED or REFUNDED).
func couponOrder() order {
	return newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{}).
		with("merchantBizNo", "CP-"+uid(16))
}

// str is a string field of an order.
func (o order) str(key string) string {
	s, _ := o[key].(string)
	return s
}

// pushLane is a lane's statuses as the tests post them: in order, each
// after the previous one was acknowledged.
var pushLane = []string{"PENDING", "ORDER_TAKEN", "TO_PICK_UP", "FINISHED"}

// pushRank is a self_pick status's place in pushLane.
func pushRank(status string) int {
	for i, s := range pushLane {
		if s == status {
			return i
		}
	}
	return -1
}

// pushIsTransportOrCut reports whether a legacy call failed for a reason a
// legacy system retries (the connection was cut or refused).
func pushIsTransportOrCut(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection") || strings.Contains(err.Error(), "EOF") ||
		strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "refused"))
}
