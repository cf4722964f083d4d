package ordersync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/schema"
	"github.com/caddy-alipay/ordersync/signature"
)

const fuzzClient = "FUZZ-CLIENT"

// provisionTestHandler provisions a Handler as Caddy does, from its JSON
// config (the demo keys, a real bbolt file in a temp dir, coupon_with_code
// on merchantBizType COUPON) merged with extra fields, and cleans it up when
// tb ends.
func provisionTestHandler(tb testing.TB, extra map[string]any) *Handler {
	tb.Helper()
	cfg := map[string]any{
		"clients": []any{map[string]any{"id": fuzzClient,
			"public_key_files": map[string]string{"1": filepath.Join("examples", "demo-keys", "merchant-public.pem")}}},
		"sign_responses":   map[string]any{"private_key_file": filepath.Join("examples", "demo-keys", "gateway-private.pem")},
		"scenarios":        []any{map[string]any{"name": "coupon_with_code", "merchant_biz_type": "COUPON"}},
		"store":            map[string]any{"backend": "bbolt", "path": filepath.Join(tb.TempDir(), "orders.db")},
		"upstream_timeout": "2s",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h := new(Handler)
	if err := json.Unmarshal(raw, h); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(func() {
		_ = h.Cleanup()
		cancel()
	})
	if err := h.Provision(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		tb.Fatal(err)
	}
	h.logger = zap.NewNop() // one line per request would drown the fuzzer's output
	return h
}

// serveInProcess hands r to h as Caddy's server does (replacer, vars and
// original request in the context) and returns what the caller got.
func serveInProcess(tb testing.TB, h *Handler, r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	tb.Helper()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, r, next); err != nil {
		tb.Fatalf("ServeHTTP returned %v; every answer must be an envelope", err)
	}
	return w
}

// forwardedHeaders are the only headers the next handler may see (README,
// "The upstream contract"); reverse_proxy adds its own after it.
var forwardedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Idempotency-Key": true,
	"X-Order-Sync-Client-Id": true, "X-Order-Sync-Scenario": true,
	"User-Agent": true, "Traceparent": true, "Tracestate": true,
}

// Bits of FuzzHandler's flags: the low two say how the request is made,
// the rest (modulo fuzzModes) how the next handler answers.
const (
	fuzzSign      = 1 << 0 // sign the body as the registered client, Request-Time now
	fuzzJSON      = 1 << 1 // Content-Type: application/json
	fuzzModeShift = 2
)

const (
	fuzzModeAnswer  = iota // status and body
	fuzzModeAbort          // status and body, then abort (reverse_proxy on a cut body)
	fuzzModeBadGate        // reverse_proxy's 502 HandlerError, nothing written
	fuzzModeSilent         // nothing written, nil
	fuzzModeNoHead         // body without WriteHeader
	fuzzModeErr            // status and body, then an error
	fuzzModes
)

// FuzzHandler (issue 9 item 12) drives the whole handler in-process with an
// arbitrary method, header lines, body and upstream reply. Every answer is
// HTTP 200 with a UTF-8 JSON envelope of a known result code, ServeHTTP
// never fails or panics, and the next handler is only ever called for a
// request that is signed, a POST, and whose body passes the base schema;
// what it gets is only the allow-listed headers, no query string, and a
// JSON body.
func FuzzHandler(f *testing.F) {
	// The seed corpus is testdata/fuzz/FuzzHandler: one file per case,
	// each its own order (seeds share the store, and a seed that replayed
	// an earlier one would test nothing).
	h := provisionTestHandler(f, nil)
	key := loadFuzzKey(f)
	f.Fuzz(func(t *testing.T, method string, headerLines, body []byte, flags byte, status int, reply []byte) {
		fuzzOne(t, h, key, method, headerLines, body, flags, status, reply)
	})
}

// fuzzOne is one FuzzHandler input; it returns the answer's result code and
// how often the next handler was called.
func fuzzOne(t *testing.T, h *Handler, key *rsa.PrivateKey, method string, headerLines, body []byte, flags byte, status int, reply []byte) (orderflow.Code, int) {
	{
		r, err := http.NewRequest(method, "http://gw.test"+syncPathForTests+"?q=1", bytes.NewReader(body))
		if err != nil {
			return "", 0 // net/http never hands a handler such a method
		}
		if flags&fuzzJSON != 0 {
			r.Header.Set("Content-Type", "application/json; charset=UTF-8")
		}
		if flags&fuzzSign != 0 {
			signTestRequest(t, r, key, body)
		}
		addHeaderLines(r.Header, headerLines)

		var mu sync.Mutex
		var called int
		var violations []string
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, up *http.Request) error {
			got, _ := io.ReadAll(up.Body)
			mu.Lock()
			called++
			violations = append(violations, checkForwarded(h, r, up, got, flags, body)...)
			mu.Unlock()
			code := status % 1000
			if code < 100 {
				code = 200
			}
			switch (flags >> fuzzModeShift) % fuzzModes {
			case fuzzModeBadGate:
				return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp: connection refused"))
			case fuzzModeSilent:
				return nil
			case fuzzModeNoHead:
				_, _ = w.Write(reply)
				return nil
			}
			w.WriteHeader(code)
			_, _ = w.Write(reply)
			switch (flags >> fuzzModeShift) % fuzzModes {
			case fuzzModeAbort:
				panic(http.ErrAbortHandler)
			case fuzzModeErr:
				return errors.New("upstream went away")
			}
			return nil
		})

		w := serveInProcess(t, h, r, next)
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations {
			t.Error(v)
		}
		if called > 1 {
			t.Errorf("the next handler was called %d times for one request", called)
		}
		if w.Code != http.StatusOK {
			t.Fatalf("HTTP %d", w.Code)
		}
		out := w.Body.Bytes()
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("the answer is not UTF-8 JSON: %q", out)
		}
		var env struct {
			Result orderflow.EnvelopeResult `json:"result"`
		}
		if err := json.Unmarshal(out, &env); err != nil {
			t.Fatalf("the answer is not an envelope: %q", out)
		}
		rc, known := orderflow.LookupCode(env.Result.ResultCode)
		if !known || string(rc.Status()) != env.Result.ResultStatus {
			t.Fatalf("result %s/%s is not a known code with its letter: %q", env.Result.ResultCode, env.Result.ResultStatus, out)
		}
		if len(env.Result.ResultMessage) > message.MaxResultMessageLen {
			t.Errorf("resultMessage of %d bytes", len(env.Result.ResultMessage))
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=UTF-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if len(w.Header()[orderflow.HeaderResponseTime]) != 1 || len(w.Header()[orderflow.HeaderSignature]) != 1 {
			t.Errorf("reply headers %v: want one response-time and one signature", w.Header())
		}
		if rc == orderflow.Success && called == 0 && flags&fuzzSign == 0 {
			t.Errorf("SUCCESS for an unsigned request: %q", out)
		}
		// An answer from this call of the next handler: a reply that did
		// not end well, or is not UTF-8, is never a final answer.
		if called == 1 {
			mode := (flags >> fuzzModeShift) % fuzzModes
			broken := mode == fuzzModeAbort || mode == fuzzModeBadGate || mode == fuzzModeSilent || mode == fuzzModeErr || !utf8.Valid(reply)
			if broken && rc.Status() != orderflow.StatusUnknown {
				t.Errorf("a broken upstream reply (mode %d) answered %s: %q", mode, rc, out)
			}
		}
		return rc, called
	}
}

// TestFuzzHandlerReachesTheUpstream keeps FuzzHandler honest: its harness
// does get a valid request through to the next handler and back as
// SUCCESS, and the seeds cover refusals and broken replies.
func TestFuzzHandlerReachesTheUpstream(t *testing.T) {
	h := provisionTestHandler(t, nil)
	key := loadFuzzKey(t)
	body := []byte(`{"requestId":"R-reach","merchantBizNo":"B-reach","orderStatus":"TICKETED","userId":"U","merchantBizType":"ALIPAY_COUPON","extInfo":{"benefit_issue_mode":"SALE","product_id":"P"}}`)
	ok := []byte(`{"orderId":"O1","distributeResult":[]}`)
	if rc, called := fuzzOne(t, h, key, "POST", nil, body, fuzzSign|fuzzJSON, 200, ok); rc != orderflow.Success || called != 1 {
		t.Fatalf("a valid request: %v, next called %d times; want SUCCESS through the next handler", rc, called)
	}
	if rc, called := fuzzOne(t, h, key, "POST", nil, body, fuzzSign|fuzzJSON, 200, ok); rc != orderflow.Success || called != 0 {
		t.Errorf("its replay: %v, next called %d times; want the stored SUCCESS", rc, called)
	}
	aborted := []byte(`{"requestId":"R-abort","merchantBizNo":"B-abort","orderStatus":"TICKETED","userId":"U","merchantBizType":"ALIPAY_COUPON","extInfo":{"benefit_issue_mode":"SALE","product_id":"P"}}`)
	if rc, called := fuzzOne(t, h, key, "POST", nil, aborted, fuzzSign|fuzzJSON|fuzzModeAbort<<fuzzModeShift, 200, ok); rc != orderflow.UnknownException || called != 1 {
		t.Errorf("an aborted reply: %v, next called %d times; want U", rc, called)
	}
	if rc, called := fuzzOne(t, h, key, "POST", nil, body, fuzzJSON, 200, ok); rc != orderflow.InvalidClient || called != 0 {
		t.Errorf("unsigned: %v, next called %d times", rc, called)
	}
}

// syncPathForTests is the path requests are signed and sent on.
const syncPathForTests = "/api/open/alipay/v1/merchant/order/sync"

// checkForwarded lists what is wrong with a request that reached the next
// handler: the original must have been a signed POST whose body passes the
// base schema, and what goes on must be only signed, normalized data.
func checkForwarded(h *Handler, orig, up *http.Request, got []byte, flags byte, body []byte) []string {
	var bad []string
	if flags&fuzzSign == 0 || orig.Method != http.MethodPost {
		bad = append(bad, fmt.Sprintf("the next handler was called for an unsigned or %s request", orig.Method))
	}
	for _, name := range []string{"Signature", "Request-Time", "Client-Id"} {
		if n := len(orig.Header.Values(name)); n > 1 {
			bad = append(bad, fmt.Sprintf("the next handler was called for a request with %d %s headers", n, name))
		}
	}
	doc, err := message.Decode(body)
	if err == nil {
		var base *schema.Schema
		if base, err = schema.Base(); err == nil {
			err = base.Validate(doc.Tree())
		}
	}
	if err == nil {
		_, err = doc.Request()
	}
	if err != nil {
		bad = append(bad, fmt.Sprintf("the next handler was called for a body that fails validation (%v)", err))
	}
	if up.URL.RawQuery != "" || strings.Contains(up.RequestURI, "?") {
		bad = append(bad, fmt.Sprintf("the query string was forwarded: %q", up.URL.String()))
	}
	for name, values := range up.Header {
		if !forwardedHeaders[name] {
			bad = append(bad, fmt.Sprintf("header %s was forwarded", name))
		}
		for _, v := range values {
			// reverse_proxy could not send it: the request would fail
			// every time (U forever).
			if strings.ContainsFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }) {
				bad = append(bad, fmt.Sprintf("header %s has a control character: %q", name, v))
			}
		}
	}
	if !json.Valid(got) || !utf8.Valid(got) {
		bad = append(bad, fmt.Sprintf("the forwarded body is not UTF-8 JSON: %q", got))
	}
	return bad
}

// addHeaderLines adds "Name: value" lines as net/http's server would have
// parsed them; lines it would have refused are skipped.
func addHeaderLines(h http.Header, lines []byte) {
	sc := bufio.NewScanner(bytes.NewReader(lines))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || !validHeaderName(name) || strings.ContainsAny(value, "\r\n\x00") {
			continue
		}
		h.Add(name, strings.TrimSpace(value))
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// signTestRequest signs r, whose body is body, as the provisioned test
// client does: Client-Id, Request-Time now, Signature.
func signTestRequest(tb testing.TB, r *http.Request, key *rsa.PrivateKey, body []byte) {
	tb.Helper()
	rt := fmt.Sprint(time.Now().UnixMilli())
	sig, err := signature.Sign(key, r.Method, r.URL.Path, fuzzClient, rt, body)
	if err != nil {
		tb.Fatal(err)
	}
	r.Header.Set("Client-Id", fuzzClient)
	r.Header.Set("Request-Time", rt)
	r.Header.Set("Signature", signature.FormatHeader("1", sig))
}

func loadFuzzKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("examples", "demo-keys", "merchant-private.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	k, err := signature.ParsePrivateKey(b)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
