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
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(NotInstalled)
		}
		t.Skip(NotInstalled)
	}
	addr, stop, err := startIn(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(stop)
	return addr
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
	addr, stopServer, err := startIn(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("redistest: %w", err)
	}
	return addr, func() {
		stopServer()
		os.RemoveAll(dir)
	}, nil
}

// Flush empties every database of the server at addr, so that tests
// sharing one server start from a clean state.
func Flush(t testing.TB, addr string) {
	t.Helper()
	if err := Do(addr, "FLUSHALL"); err != nil {
		t.Fatalf("redistest: FLUSHALL: %v", err)
	}
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
func startIn(dir string) (addr string, stop func(), err error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return "", nil, err
		}
		addr, stop, err := launch(dir, port)
		if err == nil {
			return addr, stop, nil
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

func launch(dir string, port int) (string, func(), error) {
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
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}

	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := do(addr, "PING")
		if err == nil && reply == "PONG" {
			return addr, stop, nil
		}
		select {
		case <-exited:
			return "", nil, fmt.Errorf("redis-server on port %d exited early: %s", port, strings.TrimSpace(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			stop()
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
