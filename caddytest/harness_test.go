// Package caddytest runs the gateway end to end: a real Caddy binary built
// from ./cmd/caddy, real HTTP over loopback, real RSA keys, real bbolt files
// and a real redis-server.
package caddytest

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// caddyBin is the binary built once for the whole package.
var caddyBin string

const syncPath = "/api/open/alipay/v1/merchant/order/sync"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ordersync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-race", "-tags", caddyBuildTags, "-o", caddyBin, "./cmd/caddy")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building caddy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		// Caddy binds with SO_REUSEPORT, so two Caddys given the same port
		// both start, and the kernel splits the connections between them
		// (one test's requests reach another's admin endpoint: "404 page
		// not found"). The kernel may hand a port it just freed out again
		// before the first Caddy has bound it: never give one out twice.
		if _, taken := portsGiven.LoadOrStore(port, true); !taken {
			return port
		}
	}
}

// portsGiven holds every port freePort has handed out in this process.
var portsGiven sync.Map

// instance is one running Caddy process.
type instance struct {
	t         testing.TB
	cmd       *exec.Cmd
	adminPort int
	port      int
	dataDir   string
	logs      *lockedBuffer
	done      chan struct{}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caddyOptions tune startCaddy.
type caddyOptions struct {
	dataDir   string // reuse a data dir (restart tests); default a new temp dir
	adminPort int
	port      int
	env       []string
	dir       string // working directory; default the repository root
}

// startCaddy writes the Caddyfile produced by render (given the instance's
// ports) and runs Caddy on it until the test ends.
func startCaddy(t testing.TB, render func(in *instance) string, opts caddyOptions) *instance {
	t.Helper()
	in := &instance{t: t, adminPort: opts.adminPort, port: opts.port, dataDir: opts.dataDir, logs: &lockedBuffer{}, done: make(chan struct{})}
	if in.adminPort == 0 {
		in.adminPort = freePort(t)
	}
	if in.port == 0 {
		in.port = freePort(t)
	}
	if in.dataDir == "" {
		in.dataDir = t.TempDir()
	}
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(cfg, []byte(render(in)), 0o600); err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	in.cmd.Dir = repoRoot()
	if opts.dir != "" {
		in.cmd.Dir = opts.dir
	}
	in.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+in.dataDir, "XDG_CONFIG_HOME="+in.dataDir, "HOME="+in.dataDir)
	in.cmd.Env = append(in.cmd.Env, opts.env...)
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = in.cmd.Wait(); close(in.done) }()
	t.Cleanup(func() { in.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-in.done:
			t.Fatalf("caddy exited during start:\n%s", in.logs.String())
		default:
		}
		if resp, err := adminClient.Get(in.adminURL("/config/")); err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.port)); err == nil {
				c.Close()
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start in time:\n%s", in.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (in *instance) adminURL(path string) string {
	return fmt.Sprintf("http://localhost:%d%s", in.adminPort, path)
}

func (in *instance) url() string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", in.port, syncPath)
}

// stop ends the process gracefully (SIGTERM), as an operator would.
func (in *instance) stop() {
	if in.cmd.Process == nil {
		return
	}
	select {
	case <-in.done:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// kill ends the process abruptly, as a crash would.
func (in *instance) kill() {
	_ = in.cmd.Process.Kill()
	<-in.done
}

// load replaces the running config through the admin API (a reload).
func (in *instance) load(t testing.TB, caddyfile string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, in.adminURL("/load"), strings.NewReader(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload failed: %d %s", resp.StatusCode, body)
	}
	// The old config's server closes its idle connections; a POST sent on
	// one of them in that instant is reset and not retried by net/http.
	httpClient.CloseIdleConnections()
}

// keys used by the tests: the repository's demo keys.
type testKeys struct {
	merchant      *rsa.PrivateKey
	gateway       *rsa.PrivateKey
	merchantPub   string // path
	gatewayPriv   string // path
	gatewayPublic *rsa.PublicKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func demoKeys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		dir := filepath.Join(repoRoot(), "examples", "demo-keys")
		read := func(name string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				panic(err)
			}
			return b
		}
		var err error
		if keys.merchant, err = signature.ParsePrivateKey(read("merchant-private.pem")); err != nil {
			panic(err)
		}
		if keys.gateway, err = signature.ParsePrivateKey(read("gateway-private.pem")); err != nil {
			panic(err)
		}
		if keys.gatewayPublic, err = signature.ParsePublicKey(read("gateway-public.pem")); err != nil {
			panic(err)
		}
		keys.merchantPub = filepath.Join(dir, "merchant-public.pem")
		keys.gatewayPriv = filepath.Join(dir, "gateway-private.pem")
	})
	return keys
}

// call is one request to the gateway.
type call struct {
	method      string
	path        string // the signed path; default syncPath
	clientID    string
	body        []byte
	keyVersion  string
	key         *rsa.PrivateKey // nil: unsigned
	requestTime string          // default: now in epoch ms
	headers     map[string]string
	contentType string
}

// answer is what the caller got back.
type answer struct {
	method string
	path   string // the path the reply is signed over
	status int
	header http.Header
	body   []byte
	env    envelope
}

type envelope struct {
	Result struct {
		ResultCode    string `json:"resultCode"`
		ResultStatus  string `json:"resultStatus"`
		ResultMessage string `json:"resultMessage"`
	} `json:"result"`
	OrderID          string          `json:"orderId"`
	OrderStatus      string          `json:"orderStatus"`
	DistributeResult json.RawMessage `json:"distributeResult"`
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// adminClient is for the admin API: a fresh connection per call. Every
// config load replaces Caddy's admin server and shuts the old one down in
// the background, after /load has answered: a kept-alive connection to it
// is closed at a moment of its choosing, and a POST /load sent on it in
// that instant is reset (net/http retries only idempotent requests).
var adminClient = &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func send(t testing.TB, url string, c call) answer {
	t.Helper()
	a, err := trySend(t, url, c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sendNoFail sends and ignores the outcome (for requests cut off on purpose).
func sendNoFail(t testing.TB, url string, c call) { _, _ = trySend(t, url, c) }

func trySend(t testing.TB, url string, c call) (answer, error) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(c.body))
	if err != nil {
		return answer{}, err
	}
	ct := c.contentType
	if ct == "" {
		ct = "application/json; charset=UTF-8"
	}
	req.Header.Set("Content-Type", ct)
	if c.clientID != "" {
		req.Header.Set("Client-Id", c.clientID)
	}
	rt := c.requestTime
	if rt == "" {
		rt = fmt.Sprint(time.Now().UnixMilli())
	}
	req.Header.Set("Request-Time", rt)
	if c.key != nil {
		kv := c.keyVersion
		if kv == "" {
			kv = "1"
		}
		sig, err := signature.Sign(c.key, method, signedPathOf(c), c.clientID, rt, c.body)
		if err != nil {
			return answer{}, err
		}
		req.Header.Set("Signature", signature.FormatHeader(kv, sig))
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("request failed: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := answer{method: method, path: signedPathOf(c), status: resp.StatusCode, header: resp.Header, body: body}
	if err := json.Unmarshal(body, &a.env); err != nil {
		return a, fmt.Errorf("reply is not an envelope: %v: %s", err, body)
	}
	return a, nil
}

// expect asserts the envelope's code and status letter and the invariants
// every answer has (HTTP 200, JSON, Response-Time, Client-Id, Tracer-Id).
func (a answer) expect(t testing.TB, code, status string) answer {
	t.Helper()
	if a.status != http.StatusOK {
		t.Errorf("HTTP status = %d, want 200", a.status)
	}
	if a.env.Result.ResultCode != code || a.env.Result.ResultStatus != status {
		t.Fatalf("got %s/%s (%q), want %s/%s; body %s", a.env.Result.ResultCode, a.env.Result.ResultStatus, a.env.Result.ResultMessage, code, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, h := range []string{"Response-Time", "Tracer-Id"} {
		if a.header.Get(h) == "" {
			t.Errorf("missing %s header", h)
		}
	}
	if len(a.env.Result.ResultMessage) > 256 {
		t.Errorf("resultMessage longer than 256: %d", len(a.env.Result.ResultMessage))
	}
	return a
}

// messageHas asserts the resultMessage names what it should.
func (a answer) messageHas(t testing.TB, parts ...string) answer {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(a.env.Result.ResultMessage, p) {
			t.Errorf("resultMessage %q does not contain %q", a.env.Result.ResultMessage, p)
		}
	}
	return a
}

func signedPathOf(c call) string {
	if c.path != "" {
		return c.path
	}
	return syncPath
}

// sendConcurrently sends n signed copies of body at once, the i-th to
// urlFor(i), and returns every answer (failures are reported, not fatal,
// since they happen off the test goroutine).
func sendConcurrently(t testing.TB, n int, urlFor func(i int) string, body []byte) []answer {
	t.Helper()
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i := range answers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a, err := trySend(t, urlFor(i), signed(t, body))
			if err != nil {
				t.Error(err)
			}
			answers[i] = a
		}(i)
	}
	wg.Wait()
	return answers
}

// sameSuccess asserts that concurrent copies of one request got either U
// or one and the same SUCCESS envelope, and returns that envelope.
func sameSuccess(t testing.TB, answers []answer) []byte {
	t.Helper()
	var success []byte
	for _, a := range answers {
		switch a.env.Result.ResultCode {
		case "SUCCESS":
			if success != nil && !bytes.Equal(success, a.body) {
				t.Error("two different SUCCESS answers for one requestId")
			}
			success = a.body
		case "UNKNOWN_EXCEPTION":
		default:
			t.Errorf("unexpected answer %s", a.body)
		}
	}
	return success
}
