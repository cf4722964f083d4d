package caddytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validateTook bounds a `caddy validate` that must not wait for anything:
// generous for a loaded machine, well under the 5s the bbolt file lock
// would cost.
const validateTook = 4 * time.Second

// writeCaddyfile writes cfg to a file of its own and returns its path.
func writeCaddyfile(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidateWhileRunning: `caddy validate` before `caddy reload` is the
// habit; it must work next to the running gateway, whose bbolt file is
// open and locked. Validation provisions every module but starts no app,
// and the store opens only when the app starts, so validate neither waits
// for nor touches the file. A real mistake in the same config still fails,
// naming it.
func TestValidateWhileRunning(t *testing.T) {
	up := issuingUpstream(t)
	g := gateway{upstream: up.addr()}
	in := g.start(t)
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "SUCCESS", "S")
	env := []string{"XDG_DATA_HOME=" + in.dataDir, "XDG_CONFIG_HOME=" + in.dataDir, "HOME=" + in.dataDir}

	cfg := g.caddyfile(in)
	began := time.Now()
	_, stderr, err := opsRunCaddy(t, env, "validate", "--config", writeCaddyfile(t, cfg), "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy validate of the running config: %v\n%s", err, stderr)
	}
	if took := time.Since(began); took > validateTook {
		t.Errorf("caddy validate took %v next to the running gateway", took)
	}
	// The running gateway did not notice.
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "SUCCESS", "S")

	for name, tc := range map[string]struct{ cfg, want string }{
		"handler option": {
			cfg:  strings.Replace(cfg, "alipay_order_sync {", "alipay_order_sync {\n\t\t\tmap_status 409 NO_SUCH_CODE", 1),
			want: "map_status",
		},
		"store path is a directory": {
			cfg:  strings.Replace(cfg, filepath.Join(in.dataDir, "orders.db"), in.dataDir, 1),
			want: in.dataDir,
		},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.cfg == cfg {
				t.Fatal("the mistake was not made: the config is unchanged")
			}
			began := time.Now()
			_, stderr, err := opsRunCaddy(t, env, "validate", "--config", writeCaddyfile(t, tc.cfg), "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("caddy validate accepted a config with a mistake (%s)", name)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("the error does not name %q:\n%s", tc.want, stderr)
			}
			if took := time.Since(began); took > validateTook {
				t.Errorf("caddy validate took %v", took)
			}
		})
	}
}

// TestSecondProcessOnTheFileFails: a second `caddy run` on a bbolt file
// that a running Caddy holds fails at start, naming the file and the
// likely cause, instead of serving without its state.
func TestSecondProcessOnTheFileFails(t *testing.T) {
	up := issuingUpstream(t)
	g := gateway{upstream: up.addr()}
	first := g.start(t)
	path := filepath.Join(first.dataDir, "orders.db")
	// Same file, other ports.
	second := &instance{t: t, adminPort: freePort(t), port: freePort(t), dataDir: first.dataDir}
	cfg := g.caddyfile(second)
	if !strings.Contains(cfg, path) {
		t.Fatalf("the second config does not name %s", path)
	}
	env := []string{"XDG_DATA_HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(), "HOME=" + t.TempDir()}
	_, stderr, err := opsRunCaddy(t, env, "run", "--config", writeCaddyfile(t, cfg), "--adapter", "caddyfile")
	if err == nil {
		t.Fatal("a second caddy run on a locked bbolt file succeeded")
	}
	for _, want := range []string{path, "locked by another process"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error does not name %q:\n%s", want, stderr)
		}
	}
	send(t, first.url(), signed(t, newOrder().bytes())).expect(t, "SUCCESS", "S")
}
