// Package redistest runs a private, throw-away redis-server for tests.
//
// Tests use a real server rather than an in-process fake because the
// stores depend on real Lua scripting, key expiry and connection failure
// behavior, which fakes only approximate. Each server listens on its own
// free port on 127.0.0.1, keeps nothing on disk and is stopped when the
// test (or the caller of StartServer) is done.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NotInstalled is the message used when redis-server is not on PATH.
const NotInstalled = "redis-server not installed (apt-get install -y redis-server)"

// ErrNotInstalled is returned by StartServer when redis-server is not on
// PATH, so that callers such as TestMain can decide whether to skip.
var ErrNotInstalled = errors.New(NotInstalled)

// startTimeout bounds how long a fresh server may take to answer PING.
// It is generous because CI machines under -race can be slow to fork.
const startTimeout = 10 * time.Second

// Start starts a private redis-server for t and returns its address
// ("127.0.0.1:port"). The server is stopped in t.Cleanup.
//
// If redis-server is not installed the test is skipped, unless the CI
// environment variable is set, in which case it fails: a CI run that
// silently skips every Redis test would look green while testing nothing.
func Start(t testing.TB) (addr string) {
	t.Helper()
	return Launch(t).Addr
}

// Server is a private redis-server started by Launch.
type Server struct {
	// Addr is the server's address, "127.0.0.1:port".
	Addr string
	proc *process
}

// Launch is Start for tests that also need to act on the process: it
// returns the Server rather than its address. The server is stopped in
// t.Cleanup (continued first if frozen).
func Launch(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(NotInstalled)
		}
		t.Skip(NotInstalled)
	}
	addr, proc, err := startIn(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(proc.stop)
	return &Server{Addr: addr, proc: proc}
}

// Freeze stops the server process with SIGSTOP. It is the hung server
// that a refused connection is not: the kernel still accepts connections
// and data, but nothing is answered until Thaw (SIGCONT), when the server
// runs whatever was sent meanwhile.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.proc.signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("redistest: freezing the server: %v", err)
	}
}

// Thaw continues a server stopped by Freeze.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.proc.signal(syscall.SIGCONT); err != nil {
		t.Fatalf("redistest: thawing the server: %v", err)
	}
}

// StartServer starts a private redis-server without a testing.TB, for use
// from TestMain or benchmarks' setup. stop kills the server and removes its
// directory; it is safe to call more than once. When redis-server is not on
// PATH the error is ErrNotInstalled.
func StartServer() (addr string, stop func(), err error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return "", nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return "", nil, fmt.Errorf("redistest: %w", err)
	}
	addr, proc, err := startIn(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("redistest: %w", err)
	}
	return addr, func() {
		proc.stop()
		os.RemoveAll(dir)
	}, nil
}

// Do sends one command to the server at addr and fails if the server
// answers with an error. It exists so that helpers and TestMain can talk to
// the server without a client library.
func Do(addr string, args ...string) error {
	_, err := do(addr, args...)
	return err
}

// startIn starts a server whose working directory is dir. The free port is
// found by binding :0 and releasing it, which can race with another
// process; a lost race shows up as the server exiting early, so a few
// attempts are made.
func startIn(dir string) (addr string, proc *process, err error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return "", nil, err
		}
		addr, proc, err := launch(dir, port)
		if err == nil {
			return addr, proc, nil
		}
		lastErr = err
	}
	return "", nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the server's output for error messages; the
// process writes it from another goroutine.
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

// process is a running redis-server.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// signal sends sig unless the server has exited.
func (p *process) signal(sig os.Signal) error {
	select {
	case <-p.exited:
		return errors.New("the server has exited")
	default:
		return p.cmd.Process.Signal(sig)
	}
}

// stop ends the server (a frozen one too) and waits for it; it is safe to
// call more than once.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.signal(syscall.SIGCONT) // a stopped process would not act on SIGTERM
		_ = p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

func launch(dir string, port int) (string, *process, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
	)
	var out lockedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting redis-server: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := do(addr, "PING")
		if err == nil && reply == "PONG" {
			return addr, p, nil
		}
		select {
		case <-p.exited:
			return "", nil, fmt.Errorf("redis-server on port %d exited early: %s", port, strings.TrimSpace(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return "", nil, fmt.Errorf("redis-server on port %d did not answer PING within %v (last error: %v): %s",
				port, startTimeout, err, strings.TrimSpace(out.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do speaks just enough RESP to send one command and read a simple,
// integer or error reply (bulk replies are returned as their first line).
func do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '-':
		return "", errors.New(line[1:])
	case '+', ':':
		return line[1:], nil
	default:
		return line, nil
	}
}
