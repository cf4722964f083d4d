package bench

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const modulePath = "github.com/caddy-alipay/ordersync"

// RepoRoot finds the checkout by walking up from the working directory to
// the go.mod of this module, so the tools work from the root (go run) and
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

// BuildFlags are the go build flags of the measured binaries.
type BuildFlags struct {
	// Tags is the -tags list ("openssl" selects the OpenSSL signer).
	Tags string
	// Race builds with the race detector: for tests only, it makes Caddy
	// several times slower and the figures meaningless.
	Race bool
}

func (f BuildFlags) args() []string {
	var a []string
	if f.Race {
		a = append(a, "-race")
	}
	if f.Tags != "" {
		a = append(a, "-tags", f.Tags)
	}
	return a
}

// BinaryFlags reads the build flags a Go binary was built with.
func BinaryFlags(bin string) (BuildFlags, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return BuildFlags{}, err
	}
	var f BuildFlags
	for _, s := range bi.Settings {
		switch s.Key {
		case "-tags":
			f.Tags = s.Value
		case "-race":
			f.Race = s.Value == "true"
		}
	}
	return f, nil
}

// Build builds a package of the checkout at root (./cmd/caddy, the helper)
// into dir and returns the binary's path.
func Build(ctx context.Context, root, dir, pkg string, flags BuildFlags) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := append([]string{"build"}, flags.args()...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", bin, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	return bin, nil
}

// The packages Build is used on.
const (
	CaddyPackage  = "./cmd/caddy"
	HelperPackage = "./bench/internal/helper"
)

// proc is a child process whose output goes to a log file, shown when
// something fails.
type proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	stdin   io.WriteCloser
	stdout  *os.File // with pipeStdout
	logPath string
	logFile *os.File
	// admin is a Caddy's admin port (0 for other processes).
	admin int
}

// startProc starts name with args in dir; its stderr, and its stdout unless
// pipeStdout, go to logPath. With pipeStdout, p.stdout reads what it
// prints, up to EOF once it exits. The kernel stops it if the load tool
// dies without cleaning up.
func startProc(name string, args []string, dir string, env []string, logPath string, pipeStdout bool) (_ *proc, err error) {
	p := &proc{done: make(chan struct{}), logPath: logPath}
	if p.logFile, err = os.Create(logPath); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	if os.Getenv("GORACE") == "" {
		// A race-built binary otherwise sleeps a second before exiting.
		p.cmd.Env = append(p.cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logFile, p.logFile
	var childOut *os.File
	if pipeStdout {
		// An *os.File goes to the child as is: no copying goroutine that
		// Wait would cut short, so nothing printed before exit is lost.
		if p.stdout, childOut, err = os.Pipe(); err != nil {
			p.logFile.Close()
			return nil, err
		}
		p.cmd.Stdout = childOut
	}
	if p.stdin, err = p.cmd.StdinPipe(); err == nil {
		setDeathSignal(p.cmd)
		err = p.cmd.Start()
	}
	if childOut != nil {
		childOut.Close()
	}
	if err != nil {
		p.logFile.Close()
		if p.stdout != nil {
			p.stdout.Close()
		}
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// lines delivers what the process prints, line by line, until it exits.
func (p *proc) lines() <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(p.stdout)
		for s.Scan() {
			ch <- s.Text()
		}
	}()
	return ch
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, as an operator would, then SIGKILL after 15s.
func (p *proc) stop() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.stdin.Close()
	p.logFile.Close()
	if p.stdout != nil {
		p.stdout.Close()
	}
}

// logTail returns at most the last n bytes of the process's log.
func (p *proc) logTail(n int64) string {
	f, err := os.Open(p.logPath)
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

// startCaddy runs `caddy run` in dir on a Caddyfile of the given sites,
// whose ports s reserved, and waits until the admin endpoint and every
// site accept connections.
func startCaddy(ctx context.Context, bin, dir string, s *Site, sites string, env []string) (*proc, error) {
	admin, err := s.Port()
	if err != nil {
		s.release()
		return nil, err
	}
	// Access logs stay off (the default) on every site, so bare pays for
	// none; the gateway's own per-request log line is part of its cost.
	cfg := fmt.Sprintf("{\n\tadmin 127.0.0.1:%d\n\tpersist_config off\n\tgrace_period 2s\n}\n\n%s", admin, sites)
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		s.release()
		return nil, err
	}
	// Caddy's own storage (certificates, autosave) goes to dir, never to
	// the user's home.
	env = append(env, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	ports := s.release()
	p, err := startProc(bin, []string{"run", "--config", cfgPath, "--adapter", "caddyfile"}, s.Root, env, filepath.Join(dir, "caddy.log"), false)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.exited() {
			p.stop()
			return nil, fmt.Errorf("caddy exited during start:\n%s", p.logTail(4096))
		}
		if ctx.Err() != nil {
			p.stop()
			return nil, ctx.Err()
		}
		if ready(hc, admin, ports[:len(ports)-1]) {
			p.admin = admin
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("caddy did not start within 60s:\n%s", p.logTail(4096))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ready(hc *http.Client, admin int, ports []int) bool {
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/config/", admin))
	if err != nil {
		return false
	}
	resp.Body.Close()
	for _, p := range ports {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return false
		}
		conn.Close()
	}
	return true
}

// upstreamProc is the helper's upstream role.
type upstreamProc struct {
	*proc
	addr string
	hc   *http.Client
}

func startUpstream(helper, dir string, env []string) (*upstreamProc, error) {
	p, err := startProc(helper, []string{"upstream"}, dir, env, filepath.Join(dir, "upstream.log"), true)
	if err != nil {
		return nil, err
	}
	select {
	case l := <-p.lines():
		if addr, ok := strings.CutPrefix(l, "listening "); ok {
			return &upstreamProc{proc: p, addr: addr, hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}}, nil
		}
	case <-time.After(30 * time.Second):
	}
	p.stop()
	return nil, fmt.Errorf("the upstream did not start:\n%s", p.logTail(2048))
}

// calls asks the upstream how many requests it has answered.
func (u *upstreamProc) calls() (int64, error) {
	resp, err := u.hc.Get("http://" + u.addr + "/__bench/calls")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscan(string(b), &n); err != nil {
		return 0, errors.New("upstream: unreadable call count")
	}
	return n, nil
}

// caddyVersion is the first word `caddy version` prints, "" if it fails.
func caddyVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	return v
}

// cpuProfile fetches a CPU profile of d from the Caddy process's admin
// endpoint (Caddy serves net/http/pprof there) into path.
func (p *proc) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	secs := max(1, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", p.admin, secs), nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: d + 30*time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
