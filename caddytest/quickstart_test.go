package caddytest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuickStart walks the README's quick start on Caddyfile.example as it
// is in the repository (only its ports moved to free ones), from a copy of
// the files it uses, with the CLI's send as the caller: the demo keeps its
// state in .demo/ of the directory Caddy runs in, a second send of the seed
// is a replay, --set makes a changed body or a new order, and after the
// README's reset a new run issues a new orderId.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"examples/seed-gift-card.json",
		"examples/demo-keys/merchant-private.pem", "examples/demo-keys/merchant-public.pem",
		"examples/demo-keys/gateway-private.pem", "examples/demo-keys/gateway-public.pem",
	} {
		b, err := os.ReadFile(filepath.Join(repoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	example, err := os.ReadFile(filepath.Join(repoRoot(), "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	backendPort := freePort(t)
	render := func(in *instance) string {
		cfg := string(example)
		for _, r := range []struct{ old, new string }{
			{"admin localhost:2019", fmt.Sprintf("admin localhost:%d", in.adminPort)},
			{"http://:8080", fmt.Sprintf("http://:%d", in.port)},
			{"127.0.0.1:9090", fmt.Sprintf("127.0.0.1:%d", backendPort)},
		} {
			if !strings.Contains(cfg, r.old) {
				t.Fatalf("Caddyfile.example no longer has %q; update this test and the README's quick start", r.old)
			}
			cfg = strings.ReplaceAll(cfg, r.old, r.new)
		}
		return cfg
	}
	dataDir := t.TempDir()
	start := func() *instance {
		return startCaddy(t, render, caddyOptions{dir: dir, dataDir: dataDir})
	}

	// send runs the README's send command from dir and returns its output
	// and the reply's orderId.
	send := func(in *instance, wantResult string, extra ...string) (out, orderID string) {
		t.Helper()
		args := append([]string{"alipay-order-sync", "send",
			"--url", in.url(),
			"--client-id", "DEMO-CLIENT-ID",
			"--key", "examples/demo-keys/merchant-private.pem",
			"--verify-key", "examples/demo-keys/gateway-public.pem"},
			append(extra, "examples/seed-gift-card.json")...)
		cmd := exec.Command(caddyBin, args...)
		cmd.Dir = dir
		b, err := cmd.Output()
		out = string(b)
		if err != nil {
			t.Fatalf("send %v: %v\n%s", extra, err, out)
		}
		if !strings.HasSuffix(out, "\n"+wantResult+"\n") || !strings.Contains(out, "signature: verified\n") {
			t.Fatalf("send %v: want a verified %s, got:\n%s", extra, wantResult, out)
		}
		var env struct {
			OrderID string `json:"orderId"`
		}
		if i, j := strings.Index(out, "{\n"), strings.LastIndex(out, "}\n"); i >= 0 && j > i {
			if err := json.Unmarshal([]byte(out[i:j+1]), &env); err != nil {
				t.Fatalf("send %v: the envelope does not parse: %v\n%s", extra, err, out)
			}
		}
		return out, env.OrderID
	}
	withoutTracer := func(out string) string {
		var keep []string
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "< Tracer-Id: ") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}

	in := start()
	first, order1 := send(in, "SUCCESS/S")
	if !strings.HasPrefix(order1, "demo-") {
		t.Fatalf("first run: orderId %q, want one from the demo backend", order1)
	}
	if _, err := os.Stat(filepath.Join(dir, ".demo", "orders.db")); err != nil {
		t.Errorf("the demo's state is not in .demo/ of Caddy's working directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "caddy", "alipay_order_sync", "orders.db")); err == nil {
		t.Errorf("the demo wrote state into Caddy's data directory")
	}

	// Again: the stored reply, byte for byte (only Tracer-Id is new).
	again, _ := send(in, "SUCCESS/S")
	if withoutTracer(again) != withoutTracer(first) {
		t.Errorf("a second send of the seed is not a replay:\nfirst:\n%s\nagain:\n%s", first, again)
	}
	// One changed field, same requestId.
	out, _ := send(in, "PARAM_ILLEGAL/F", "--set", "tradeNo=another-trade")
	if !strings.Contains(out, "requestId: already used with a different body") {
		t.Errorf("changed body under a used requestId:\n%s", out)
	}
	// A new requestId for the same order re-sends its current status: the
	// stored orderId, no second gift card.
	if _, id := send(in, "SUCCESS/S", "--set", "requestId=demo-2"); id != order1 {
		t.Errorf("re-sent TICKETED with a new requestId: orderId %q, want the stored %q", id, order1)
	}
	// A new order.
	if _, id := send(in, "SUCCESS/S", "--set", "requestId=demo-3", "--set", "merchantBizNo=demo-3"); id == order1 || id == "" {
		t.Errorf("a new order got orderId %q, want a new one (first: %q)", id, order1)
	}

	// A second run without a reset: state survived, the seed is a replay.
	in.stop()
	in = start()
	if _, id := send(in, "SUCCESS/S"); id != order1 {
		t.Errorf("second run without a reset: orderId %q, want the stored %q", id, order1)
	}
	// The README's reset, then a run: a new orderId.
	in.stop()
	if err := os.RemoveAll(filepath.Join(dir, ".demo")); err != nil {
		t.Fatal(err)
	}
	in = start()
	if _, id := send(in, "SUCCESS/S"); id == order1 || !strings.HasPrefix(id, "demo-") {
		t.Errorf("run after the reset: orderId %q, want a new one (first run: %q)", id, order1)
	}
}
