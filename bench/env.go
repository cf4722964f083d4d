package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// SyncPath is the order-sync path both sites are called on; the gateway
// verifies signatures over it.
const SyncPath = "/api/open/alipay/v1/merchant/order/sync"

// ClientID is the Client-Id the load driver signs as.
const ClientID = "BENCH-CLIENT"

const modulePath = "github.com/caddy-alipay/ordersync"

// RepoRoot finds the checkout by walking up from the working directory to
// the go.mod of this module, so the tool works from the root (go run) and
// from bench/ (go test) without hard-coded paths.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			first, _, _ := bytes.Cut(b, []byte("\n"))
			if strings.TrimSpace(strings.TrimPrefix(string(first), "module")) == modulePath {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s above the working directory; run from the checkout", modulePath)
		}
		dir = parent
	}
}

// BuildCaddy builds ./cmd/caddy of the checkout at root into dir and returns
// the binary's path. It is built without -race: the race detector would
// make the gateway several times slower and the ratios meaningless.
func BuildCaddy(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin, nil
}

// EnvConfig says how to start an Env.
type EnvConfig struct {
	// CaddyBin is the Caddy binary with this module compiled in (required).
	CaddyBin string
	// RepoRoot is the checkout holding examples/demo-keys; default RepoRoot().
	RepoRoot string
	// DataDir holds orders.db; default a new temporary directory. Point it
	// at the disk production would use: the first-time and resend numbers
	// depend on fsync.
	DataDir string
}

// Env is one running Caddy process with two sites, bare reverse_proxy and
// the gateway, in front of the same in-process upstream.
type Env struct {
	// BareURL is the sync URL on the bare reverse_proxy site.
	BareURL string
	// GatewayURL is the sync URL on the alipay_order_sync site.
	GatewayURL string
	// Root is the checkout the keys and the seed body are read from.
	Root string
	// CaddyVersion is what `caddy version` printed.
	CaddyVersion string

	up      *upstream
	cmd     *exec.Cmd
	done    chan struct{}
	tmp     string
	logPath string
	logFile *os.File
}

// StartEnv starts the upstream and Caddy and waits until both sites accept
// connections. The caller must Close the Env.
func StartEnv(ctx context.Context, cfg EnvConfig) (_ *Env, err error) {
	if cfg.CaddyBin == "" {
		return nil, errors.New("no caddy binary given")
	}
	if cfg.RepoRoot == "" {
		if cfg.RepoRoot, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	e := &Env{Root: cfg.RepoRoot, done: make(chan struct{})}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "ordersync-bench-"); err != nil {
		return nil, err
	}
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(e.tmp, "data")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if out, verr := exec.CommandContext(ctx, cfg.CaddyBin, "version").Output(); verr == nil {
		e.CaddyVersion, _, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	}
	if e.up, err = startUpstream(); err != nil {
		return nil, err
	}

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	admin, bare, gw := ports[0], ports[1], ports[2]
	keys := filepath.Join(cfg.RepoRoot, "examples", "demo-keys")
	caddyfile := fmt.Sprintf(caddyfileTemplate,
		admin,
		bare, e.up.addr,
		gw, SyncPath, ClientID,
		strconv.Quote(filepath.Join(keys, "merchant-public.pem")),
		strconv.Quote(filepath.Join(keys, "gateway-private.pem")),
		strconv.Quote(filepath.Join(dataDir, "orders.db")),
		e.up.addr)
	cfgPath := filepath.Join(e.tmp, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	e.BareURL = fmt.Sprintf("http://127.0.0.1:%d%s", bare, SyncPath)
	e.GatewayURL = fmt.Sprintf("http://127.0.0.1:%d%s", gw, SyncPath)

	// Caddy logs one line per gateway request; a file keeps that off the
	// terminal and out of memory, and is shown when something fails.
	e.logPath = filepath.Join(e.tmp, "caddy.log")
	if e.logFile, err = os.Create(e.logPath); err != nil {
		return nil, err
	}
	e.cmd = exec.Command(cfg.CaddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	e.cmd.Dir = cfg.RepoRoot
	// Caddy's own storage (certificates, autosave) goes to the temp dir,
	// never to the user's home.
	e.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+e.tmp, "XDG_CONFIG_HOME="+e.tmp, "HOME="+e.tmp)
	e.cmd.Stdout, e.cmd.Stderr = e.logFile, e.logFile
	setDeathSignal(e.cmd)
	if err := e.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = e.cmd.Wait(); close(e.done) }()

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-e.done:
			return nil, fmt.Errorf("caddy exited during start:\n%s", e.LogTail(4096))
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		if e.ready(client, admin, bare, gw) {
			return e, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("caddy did not start within 60s:\n%s", e.LogTail(4096))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caddyfileTemplate is the one config of a run: admin, the bare site, the
// gateway site. Access logs stay off on both sites so neither pays for them;
// the gateway's own per-request log line is part of what it costs.
const caddyfileTemplate = `{
	admin 127.0.0.1:%d
	persist_config off
}

# (a) bare Caddy: what the gateway is compared with.
http://127.0.0.1:%d {
	reverse_proxy %s
}

# (b) the gateway in front of the same upstream.
http://127.0.0.1:%d {
	route %s {
		alipay_order_sync {
			client %s {
				public_key_file 1 %s
			}
			sign_responses {
				private_key_file %s
			}
			store bbolt %s
		}
		reverse_proxy %s
	}
}
`

func (e *Env) ready(c *http.Client, admin, bare, gw int) bool {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", admin))
	if err != nil {
		return false
	}
	resp.Body.Close()
	for _, p := range []int{bare, gw} {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// PID is the Caddy process id.
func (e *Env) PID() int { return e.cmd.Process.Pid }

// UpstreamCalls is how many requests the upstream has answered so far.
func (e *Env) UpstreamCalls() int64 { return e.up.calls.Load() }

// LogTail returns at most the last n bytes Caddy wrote to stdout/stderr.
func (e *Env) LogTail(n int64) string {
	f, err := os.Open(e.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// Close stops Caddy (SIGTERM, as an operator would, then SIGKILL after 15s),
// the upstream, and removes the temporary directory.
func (e *Env) Close() {
	if e.cmd != nil && e.cmd.Process != nil {
		select {
		case <-e.done:
		default:
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.done:
			case <-time.After(15 * time.Second):
				_ = e.cmd.Process.Kill()
				<-e.done
			}
		}
	}
	if e.logFile != nil {
		e.logFile.Close()
	}
	if e.up != nil {
		e.up.close()
	}
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
	}
}

// freePorts reserves n distinct loopback ports by holding them open until
// all are chosen, so the three never collide with each other.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// upstream is the issuing backend: the cheapest possible success reply, so
// what is measured is Caddy and the gateway, not a backend.
type upstream struct {
	srv   *http.Server
	addr  string
	calls atomic.Int64
}

func startUpstream() (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{addr: l.Addr().String()}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(l) }()
	return u, nil
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := u.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	body := make([]byte, 0, 64)
	body = append(body, `{"orderId":"ORD-`...)
	body = strconv.AppendInt(body, n, 10)
	body = append(body, `","distributeResult":[]}`...)
	_, _ = w.Write(body)
}

func (u *upstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
}

// resetPeakRSS starts a new high-water mark for the process's resident set
// (Linux ≥ 4.0), so each scenario gets its own peak instead of the largest
// one seen since Caddy started.
func resetPeakRSS(pid int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("5")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// peakRSS reads VmHWM, the process's peak resident set, in KiB.
func peakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// currentRSS reads VmRSS, the process's resident set now, in KiB.
func currentRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// procStatus reads one "<field> <n> kB" line of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, fixed at
// 100 by the kernel's ABI whatever the kernel's own tick rate.
const userHZ = 100

// cpuTime reads the CPU time (user + system) the process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces; fields count from
	// after its closing parenthesis, where field 3 (state) is index 0.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
