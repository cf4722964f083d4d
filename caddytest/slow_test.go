package caddytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// exampleInstance runs Caddyfile.example as it is in the repository, with
// only its ports moved to free ones, from a temporary directory holding a
// copy of the demo keys (the demo keeps its state in .demo/ there).
func exampleInstance(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"merchant-public.pem", "gateway-private.pem"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "demo-keys", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "examples", "demo-keys"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "examples", "demo-keys", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	example, err := os.ReadFile(filepath.Join(repoRoot(), "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	backendPort := freePort(t)
	return startCaddy(t, func(in *instance) string {
		cfg := string(example)
		for _, r := range []struct{ old, new string }{
			{"admin localhost:2019", fmt.Sprintf("admin localhost:%d", in.adminPort)},
			{"http://:8080", fmt.Sprintf("http://:%d", in.port)},
			{"127.0.0.1:9090", fmt.Sprintf("127.0.0.1:%d", backendPort)},
		} {
			if !strings.Contains(cfg, r.old) {
				t.Fatalf("Caddyfile.example no longer has %q; update this test", r.old)
			}
			cfg = strings.ReplaceAll(cfg, r.old, r.new)
		}
		return cfg
	}, caddyOptions{dir: dir})
}

// TestExampleCutsOffSlowSenders (issue 9 item 11): a caller that sends
// part of its headers or body and then stalls holds a connection and, once
// the headers are in, a handler goroutine reading the body. The example's
// server timeouts (read_header, read_body) cut both off: the gateway
// closes the connection well before Caddy's defaults would (a minute for
// headers, never for a body).
func TestExampleCutsOffSlowSenders(t *testing.T) {
	in := exampleInstance(t)
	// Generous: the example's timeouts are 5s and 10s; Caddy's defaults
	// are 60s and none.
	const bound = 25 * time.Second
	body := []byte(`{"requestId":"slow","merchantBizNo":"slow"`) // a prefix of a body
	stalls := []struct {
		name string
		sent string
	}{
		{"headers", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n", syncPath)},
		{"body", fmt.Sprintf("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nClient-Id: DEMO-CLIENT-ID\r\nContent-Length: 4096\r\n\r\n%s", syncPath, body)},
	}
	var wg sync.WaitGroup
	for _, s := range stalls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.port))
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, s.sent); err != nil {
				t.Error(err)
				return
			}
			_ = conn.SetReadDeadline(start.Add(bound))
			got, err := io.ReadAll(conn) // returns when the gateway closes
			elapsed := time.Since(start)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Errorf("stalled %s: the connection was still open after %s", s.name, bound)
				return
			case err != nil && !errors.Is(err, syscall.ECONNRESET):
				t.Errorf("stalled %s: %v", s.name, err)
				return
			}
			t.Logf("stalled %s: connection closed by the gateway after %s (%d bytes of reply)", s.name, elapsed.Round(100*time.Millisecond), len(got))
			// Whatever the gateway still said is an order-sync envelope,
			// never Caddy's error page.
			if len(got) > 0 && bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
				if !bytes.Contains(got, []byte(`"resultCode":"PARAM_ILLEGAL"`)) {
					t.Errorf("stalled %s: reply %q", s.name, got)
				}
			} else if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408")) {
				t.Errorf("stalled %s: reply %q", s.name, got)
			}
		}()
	}
	wg.Wait()
}
