package bboltstore

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-alipay/ordersync/store"
)

// loadStore provisions a Store the way Caddy does for one config; cancel
// plays the config being unloaded (Caddy then runs Cleanup).
func loadStore(t *testing.T, path string) (*Store, context.CancelFunc) {
	t.Helper()
	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	raw, _ := json.Marshal(map[string]string{"path": path})
	mod, err := cctx.LoadModuleByID(ModuleID, raw)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return mod.(*Store), cancel
}

// startStore is loadStore and then what the alipay_order_sync app does
// when Caddy starts.
func startStore(t *testing.T, path string) (*Store, context.CancelFunc) {
	t.Helper()
	s, cancel := loadStore(t, path)
	if err := s.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return s, cancel
}

// pooled returns the Backend the pool holds for path, or nil.
func pooled(path string) *Backend {
	var db *Backend
	pool.Range(func(key, value any) bool {
		if key == path {
			db = value.(pooledDB).db
			return false
		}
		return true
	})
	return db
}

// fileLocked reports whether another DB holds the file at path.
func fileLocked(t *testing.T, path string) bool {
	t.Helper()
	db, err := Open(Options{Path: path, Timeout: 100 * time.Millisecond, SweepInterval: -1})
	if err != nil {
		if !strings.Contains(err.Error(), "locked") {
			t.Fatalf("Open: %v", err)
		}
		return true
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return false
}

// TestModuleReload plays a config reload: the new config is provisioned and
// started while the old one still runs, then the old one is cleaned up.
// Both share one Backend (so the reload neither blocks on the file lock nor
// loses the order locks), and the file closes only when the last user is
// gone.
func TestModuleReload(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ORDERSYNC_TEST_DIR", dir)
	path := filepath.Join(dir, "orders.db")

	old, unloadOld := startStore(t, path)
	// The same file, spelled with a placeholder and a detour.
	cur, unloadCur := startStore(t, "{env.ORDERSYNC_TEST_DIR}/sub/../orders.db")
	defer unloadCur()
	if refs, ok := pool.References(path); !ok || refs != 2 {
		t.Fatalf("pool references for %s = %d, %v; want 2", path, refs, ok)
	}

	// An order locked through the old config is locked for the new one.
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	if err := old.LockOrder(context.Background(), okey, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := cur.LockOrder(lctx, okey, "cur", time.Minute); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("the new config's LockOrder on an order the old config holds: %v, want ErrLockTimeout", err)
	}
	if err := old.UnlockOrder(context.Background(), okey, "old"); err != nil {
		t.Fatal(err)
	}

	unloadOld()
	if !fileLocked(t, path) {
		t.Fatal("the file was closed while the new config still uses it")
	}
	// A request of the old config still finishing after its Cleanup
	// commits through the Backend the new config shares.
	late := store.RequestKey{ClientID: "c", RequestID: "late"}
	if res, err := old.Claim(context.Background(), late, hashA, "late", time.Minute); err != nil || res.Status != store.Claimed {
		t.Fatalf("Claim by a request draining from the old config = %v, %v", res.Status, err)
	}
	if err := old.Finish(context.Background(), late, "late", store.Reply{Status: 200}, time.Minute); err != nil {
		t.Fatalf("Finish by a request draining from the old config: %v", err)
	}
	key := store.RequestKey{ClientID: "c", RequestID: "r"}
	if res, err := cur.Claim(context.Background(), key, hashA, "t", time.Minute); err != nil || res.Status != store.Claimed {
		t.Fatalf("Claim after the old config left = %v, %v", res.Status, err)
	}
	// A second Cleanup of the old Store must not drop the new one's use.
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, _ := pool.References(path); refs != 1 {
		t.Fatalf("pool references after the old config's Cleanup = %d, want 1", refs)
	}

	unloadCur()
	if _, ok := pool.References(path); ok {
		t.Fatal("pool entry left after every user was cleaned up")
	}
	if fileLocked(t, path) {
		t.Fatal("the file is still locked after every user was cleaned up")
	}
	// A request still draining from the unloaded config fails cleanly
	// (the file is closed), and does not open the file again.
	if _, err := cur.Claim(context.Background(), key, hashA, "t2", time.Minute); err == nil {
		t.Fatal("Claim on a cleaned-up Store whose file is closed succeeded")
	}
	if fileLocked(t, path) {
		t.Fatal("an operation after Cleanup opened the file again")
	}
}

// TestModuleOpensOnStartOrFirstUse: Provision opens nothing (caddy
// validate provisions but never starts), Start opens, and an operation
// that comes before Start (apps start in no set order) opens too.
func TestModuleOpensOnStartOrFirstUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "orders.db")
	s, unload := loadStore(t, path)
	defer unload()
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Provision created or touched the file's directory: %v", err)
	}
	if pooled(path) != nil {
		t.Fatal("Provision opened the file")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if pooled(path) == nil || !fileLocked(t, path) {
		t.Fatal("Start did not open the file")
	}
	if err := s.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if refs, _ := pool.References(path); refs != 1 {
		t.Fatalf("pool references after two Starts = %d, want 1", refs)
	}

	// Before Start, the first operation opens.
	path2 := filepath.Join(dir, "first-use.db")
	s2, unload2 := loadStore(t, path2)
	defer unload2()
	if o, err := s2.GetOrder(context.Background(), store.OrderKey{ClientID: "c", MerchantBizNo: "m"}); err != nil || o != nil {
		t.Fatalf("GetOrder before Start = %v, %v", o, err)
	}
	if pooled(path2) == nil {
		t.Fatal("the first operation did not open the file")
	}
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	if refs, _ := pool.References(path2); refs != 1 {
		t.Fatalf("pool references after first use and Start = %d, want 1", refs)
	}
}

func TestModuleDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", dir) // caddy.AppDataDir honours it
	_, unload := startStore(t, "")
	defer unload()
	want := filepath.Join(dir, "caddy", "alipay_order_sync", "orders.db")
	if db := pooled(want); db == nil || db.path != want {
		t.Fatalf("the default path is not %s", want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatal(err)
	}
}

// TestModuleFailedProvision checks that a Provision that fails holds
// nothing, and that the Cleanup Caddy then runs is harmless.
func TestModuleFailedProvision(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"unset placeholder":   "{env.ORDERSYNC_SURELY_UNSET}/orders.db",
		"unknown placeholder": "{nope.x}/orders.db",
		"parent is a file":    filepath.Join(blocker, "orders.db"),
		"ancestor is a file":  filepath.Join(blocker, "deeper", "orders.db"),
		"path is a directory": t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			raw, _ := json.Marshal(map[string]string{"path": path})
			_, err := cctx.LoadModuleByID(ModuleID, raw)
			if err == nil {
				t.Fatal("Provision succeeded")
			}
			if !strings.Contains(err.Error(), "bbolt") || strings.Count(err.Error(), "bbolt") > 1 {
				t.Errorf("error %q does not name the store, or names it twice", err)
			}
			s := &Store{Path: path}
			if err := s.Provision(cctx); err == nil {
				t.Fatal("Provision succeeded")
			}
			if err := s.Cleanup(); err != nil {
				t.Fatalf("Cleanup after a failed Provision: %v", err)
			}
			if _, err := s.GetOrder(context.Background(), store.OrderKey{}); !errors.Is(err, store.ErrNotProvisioned) {
				t.Errorf("an unprovisioned Store answered GetOrder with %v, want ErrNotProvisioned", err)
			}
		})
	}
}

// TestModuleOpenTimeout: a file locked by another process does not hold up
// Provision (so caddy validate passes next to a running Caddy); Start waits
// for the lock up to the timeout and fails naming the file and the likely
// cause, which fails caddy run; and an operation that would open it gives
// up when its context ends.
func TestModuleOpenTimeout(t *testing.T) {
	t.Parallel() // it waits out the 5s default; let it overlap the suite
	path := filepath.Join(t.TempDir(), "orders.db")
	holder, err := Open(Options{Path: path, SweepInterval: -1}) // "another process"
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &Store{Path: path}
	began := time.Now()
	if err := s.Provision(cctx); err != nil {
		t.Fatalf("Provision of a locked file: %v", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Provision took %v: it waited for the file", took)
	}

	octx, ocancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ocancel()
	began = time.Now()
	if _, err := s.GetOrder(octx, store.OrderKey{ClientID: "c", MerchantBizNo: "m"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetOrder while the file is locked: %v, want the context's deadline", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("GetOrder returned %v after its 200ms deadline", took)
	}

	// Through the pool, so the constructor's error path is the one taken;
	// the default 5s timeout applies.
	err = s.Start()
	if err == nil {
		t.Fatal("Start on a locked file succeeded")
	}
	if waited := time.Since(began); waited > DefaultTimeout+2*time.Second {
		t.Errorf("Start gave up after %v", waited)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another process") {
		t.Errorf("error %q does not name the file and the likely cause", err)
	}
	if _, ok := pool.References(path); ok {
		t.Error("a failed open left a pool entry")
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		input, path, err string
	}{
		{input: "bbolt", path: ""},
		{input: "bbolt /var/lib/caddy/orders.db", path: "/var/lib/caddy/orders.db"},
		{input: "bbolt {env.STATE_DIR}/orders.db", path: "{env.STATE_DIR}/orders.db"},
		{input: "bbolt a.db b.db", err: `store bbolt: unexpected argument "b.db"`},
		{input: "bbolt a.db {\n\tpath b.db\n}", err: "store bbolt: takes no block"},
		{input: "bbolt {\n}", err: "store bbolt: takes no block"},
	} {
		var s Store
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.input, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.err)
		case tc.err == "" && s.Path != tc.path:
			t.Errorf("%q: path %q, want %q", tc.input, s.Path, tc.path)
		}
	}
}

// TestUnmarshalModule parses the way the handler does: the dispenser on
// the backend name, handed to caddyfile.UnmarshalModule.
func TestUnmarshalModule(t *testing.T) {
	d := caddyfile.NewTestDispenser("alipay_order_sync {\n\tstore bbolt /data/orders.db\n\tclaim_lease 30s\n}")
	d.Next() // alipay_order_sync
	for d.NextBlock(0) {
		if d.Val() != "store" {
			continue
		}
		if !d.NextArg() || d.Val() != "bbolt" {
			t.Fatalf("dispenser at %q, want bbolt", d.Val())
		}
		unm, err := caddyfile.UnmarshalModule(d, ModuleID)
		if err != nil {
			t.Fatal(err)
		}
		if got := unm.(*Store).Path; got != "/data/orders.db" {
			t.Fatalf("path = %q, want /data/orders.db", got)
		}
		// The handler's parser carries on with the next directive.
		if !d.NextBlock(0) || d.Val() != "claim_lease" {
			t.Fatalf("after the store line the dispenser is at %q, want claim_lease", d.Val())
		}
		return
	}
	t.Fatal("no store line found")
}

// TestModuleJSON: the embedded store.Handle is no part of the
// configuration. A provisioned Store encodes to exactly its config fields,
// that JSON loads back under Caddy's strict decoding, and the Handle cannot
// be set (or even named) from JSON.
func TestModuleJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	s, unload := startStore(t, path)
	defer unload()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]string{"path": path})
	if string(b) != string(want) {
		t.Fatalf("JSON of a provisioned Store = %s, want %s", b, want)
	}
	if b, err := json.Marshal(Store{}); err != nil || string(b) != "{}" {
		t.Fatalf("JSON of the zero Store = %s, %v; want {}", b, err)
	}
	var back Store
	if err := caddy.StrictUnmarshalJSON(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := caddy.StrictUnmarshalJSON(want, &back); err != nil || back.Path != path || back.Handle != (store.Handle{}) {
		t.Fatalf("StrictUnmarshalJSON(%s) = %+v, %v", want, back, err)
	}
	for _, in := range []string{`{"path":"x","Handle":{}}`, `{"path":"x","Store":{}}`, `{"path":"x","handle":null}`} {
		var got Store
		if err := caddy.StrictUnmarshalJSON([]byte(in), &got); err == nil {
			t.Errorf("StrictUnmarshalJSON(%s) accepted a field that is not configuration: %+v", in, got)
		}
	}
}

// TestModuleUnprovisioned: every store.Backend method of a Store that was
// never provisioned reports store.ErrNotProvisioned rather than panicking.
func TestModuleUnprovisioned(t *testing.T) {
	var s Store
	ctx := context.Background()
	rkey := store.RequestKey{ClientID: "c", RequestID: "r"}
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	_, errClaim := s.Claim(ctx, rkey, hashA, "t", time.Minute)
	_, errOrder := s.GetOrder(ctx, okey)
	_, errRequest := s.GetRequest(ctx, rkey)
	for name, err := range map[string]error{
		"Claim":         errClaim,
		"Release":       s.Release(ctx, rkey, "t"),
		"Finish":        s.Finish(ctx, rkey, "t", store.Reply{}, time.Minute),
		"LockOrder":     s.LockOrder(ctx, okey, "t", time.Minute),
		"UnlockOrder":   s.UnlockOrder(ctx, okey, "t"),
		"GetOrder":      errOrder,
		"CommitSuccess": s.CommitSuccess(ctx, okey, nil, store.Order{}, rkey, "t", store.Reply{}, time.Minute),
		"GetRequest":    errRequest,
	} {
		if !errors.Is(err, store.ErrNotProvisioned) {
			t.Errorf("%s on an unprovisioned Store: %v, want ErrNotProvisioned", name, err)
		}
	}
}
