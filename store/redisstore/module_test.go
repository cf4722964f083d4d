package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        Store
		wantErr     string
	}{
		{name: "bare", input: `redis`, want: Store{}},
		{name: "short form", input: `redis 10.0.0.5:6380`, want: Store{Address: "10.0.0.5:6380"}},
		{name: "full block", input: `redis {
			address redis.internal:6379
			username gateway
			password {env.REDIS_PASSWORD}
			db 3
			key_prefix "ordersync:prod:"
			tls
		}`, want: Store{Address: "redis.internal:6379", Username: "gateway", Password: "{env.REDIS_PASSWORD}", DB: 3, KeyPrefix: "ordersync:prod:", TLS: true}},
		{name: "short form with block", input: `redis 127.0.0.1:6379 {
			db 0
		}`, want: Store{Address: "127.0.0.1:6379"}},
		{name: "unknown option", input: `redis {
			sentinel x
		}`, wantErr: `unrecognized redis store option "sentinel"`},
		{name: "db not a number", input: `redis {
			db one
		}`, wantErr: `db: want an integer >= 0, got "one"`},
		{name: "db negative", input: `redis {
			db -1
		}`, wantErr: `db: want an integer >= 0`},
		{name: "db missing", input: `redis {
			db
		}`, wantErr: "wrong argument count"},
		{name: "password missing", input: `redis {
			password
		}`, wantErr: "wrong argument count"},
		{name: "two passwords", input: `redis {
			password a b
		}`, wantErr: "wrong argument count"},
		{name: "tls with argument", input: `redis {
			tls yes
		}`, wantErr: "wrong argument count"},
		{name: "two inline addresses", input: `redis a:1 b:2`, wantErr: "wrong argument count"},
		{name: "address twice", input: `redis a:1 {
			address b:2
		}`, wantErr: "address given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Store
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestUnmarshalModule goes through the path the handler uses, positioned
// on "redis" inside its store directive, and checks that the module stops
// at the end of its own block.
func TestUnmarshalModule(t *testing.T) {
	d := caddyfile.NewTestDispenser(`store redis {
		address 127.0.0.1:6390
		db 2
	}
	idempotency_ttl 1h`)
	d.Next() // "store"
	d.NextArg()
	unm, err := caddyfile.UnmarshalModule(d, "http.alipay_order_sync.stores.redis")
	if err != nil {
		t.Fatal(err)
	}
	s := unm.(*Store)
	if s.Address != "127.0.0.1:6390" || s.DB != 2 {
		t.Fatalf("got %+v", s)
	}
	if !d.Next() || d.Val() != "idempotency_ttl" {
		t.Fatalf("dispenser left at %q, want the next directive", d.Val())
	}
}

func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(Store{Address: "a:1", Username: "u", Password: "p", DB: 1, KeyPrefix: "k:", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"address":"a:1","username":"u","password":"p","db":1,"key_prefix":"k:","tls":true}`
	if string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}

	// Started, the embedded store.Handle holds a Backend and still is no
	// part of the JSON; the JSON loads back under Caddy's strict decoding,
	// and the Handle cannot be set (or even named) from JSON.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &Store{Address: "a:1", Username: "u", Password: "p", DB: 1, KeyPrefix: "k:", TLS: true}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(s); err != nil || string(b) != want {
		t.Fatalf("JSON of a provisioned Store = %s, %v; want %s", b, err, want)
	}
	var back Store
	if err := caddy.StrictUnmarshalJSON([]byte(want), &back); err != nil {
		t.Fatal(err)
	}
	if back != (Store{Address: "a:1", Username: "u", Password: "p", DB: 1, KeyPrefix: "k:", TLS: true}) {
		t.Fatalf("StrictUnmarshalJSON(%s) = %+v", want, back)
	}
	for _, in := range []string{`{"db":1,"Handle":{}}`, `{"db":1,"Store":{}}`, `{"db":1,"handle":null}`} {
		var got Store
		if err := caddy.StrictUnmarshalJSON([]byte(in), &got); err == nil {
			t.Errorf("StrictUnmarshalJSON(%s) accepted a field that is not configuration: %+v", in, got)
		}
	}
}

func TestOptionsResolvePlaceholders(t *testing.T) {
	t.Setenv("REDISSTORE_TEST_ADDR", "10.1.2.3:6379")
	t.Setenv("REDISSTORE_TEST_PW", "s3cr{e}t")
	t.Setenv("REDISSTORE_TEST_EMPTY", "")
	s := Store{Address: "{env.REDISSTORE_TEST_ADDR}", Password: "{env.REDISSTORE_TEST_PW}", KeyPrefix: "gw:{env.REDISSTORE_TEST_EMPTY}x:", TLS: true}
	opts, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != "10.1.2.3:6379" || opts.Password != "s3cr{e}t" || opts.KeyPrefix != "gw:x:" {
		t.Fatalf("opts = %+v", opts)
	}
	if opts.TLS == nil || opts.TLS.ServerName != "10.1.2.3" {
		t.Fatalf("TLS = %+v, want ServerName from the address", opts.TLS)
	}

	// A literal password with braces that are not a placeholder survives.
	s = Store{Password: "p{not-a-placeholder}"}
	if opts, err = s.options(); err != nil || opts.Password != "p{not-a-placeholder}" || opts.Addr != DefaultAddress {
		t.Fatalf("opts = %+v, %v", opts, err)
	}

	// An unset variable is an error, not an empty password.
	s = Store{Password: "{env.REDISSTORE_TEST_UNSET_VAR}"}
	if _, err = s.options(); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("unset password variable: err = %v", err)
	}
	s = Store{DB: -1}
	if _, err = s.options(); err == nil {
		t.Fatal("negative db accepted")
	}
}

// TestProvisionWithEnvPassword provisions the module against a server that
// requires a password given only through {env.*}, then uses it.
func TestProvisionWithEnvPassword(t *testing.T) {
	addr := redistest.Start(t)
	if err := redistest.Do(addr, "CONFIG", "SET", "requirepass", "from-env-pw"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("REDISSTORE_TEST_PASSWORD", "from-env-pw")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &Store{Address: addr, Password: "{env.REDISSTORE_TEST_PASSWORD}", KeyPrefix: uniquePrefix()}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Cleanup()
	opCtx, opCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer opCancel()
	res, err := s.Claim(opCtx, store.RequestKey{ClientID: "c", RequestID: "r"}, store.HashBody(nil), "t", time.Minute)
	if err != nil || res.Status != store.Claimed {
		t.Fatalf("Claim through the module: %+v, %v", res, err)
	}
}

// TestProvisionDoesNotConnect: caddy validate provisions modules; it must
// not need (or wait for) a reachable server, nor take a client from the
// pool. Start takes it, still without connecting.
func TestProvisionDoesNotConnect(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &Store{Address: "127.0.0.1:1"}
	start := time.Now()
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	opts, _ := s.options()
	if _, ok := pool.References(poolKey(opts)); ok {
		t.Fatal("Provision took a client from the pool")
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start with no server: %v", err)
	}
	if refs, _ := pool.References(poolKey(opts)); refs != 1 {
		t.Fatalf("pool references after Start = %d, want 1", refs)
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Provision and Start took %v", d)
	}
}

// TestModuleReloadSharesTheClient: the config a reload starts shares the
// pooled client (and its connections) of the config it replaces, which
// closes only when its last user is cleaned up.
func TestModuleReloadSharesTheClient(t *testing.T) {
	addr, prefix := sharedAddr(t), uniquePrefix()
	load := func() (*Store, context.CancelFunc) {
		cctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		s := &Store{Address: addr, KeyPrefix: prefix}
		if err := s.Provision(cctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		return s, func() { cancel(); _ = s.Cleanup() }
	}
	old, unloadOld := load()
	cur, unloadCur := load()
	opts, _ := old.options()
	key := poolKey(opts)
	if refs, _ := pool.References(key); refs != 2 {
		t.Fatalf("pool references with two configs = %d, want 2", refs)
	}
	okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
	if err := old.LockOrder(context.Background(), okey, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	unloadOld()
	if refs, _ := pool.References(key); refs != 1 {
		t.Fatalf("pool references after the old config left = %d, want 1", refs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cur.UnlockOrder(ctx, okey, "old"); err != nil {
		t.Fatalf("the new config's client after the old one left: %v", err)
	}
	unloadCur()
	if _, ok := pool.References(key); ok {
		t.Fatal("pool entry left after every user was cleaned up")
	}
}

func TestCleanupAfterFailedProvision(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &Store{Password: "{env.REDISSTORE_TEST_UNSET_VAR}"}
	if err := s.Provision(ctx); err == nil {
		t.Fatal("Provision succeeded with an unset password variable")
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := (&Store{}).Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOrder(context.Background(), store.OrderKey{}); !errors.Is(err, store.ErrNotProvisioned) {
		t.Fatalf("unprovisioned store answered: %v, want ErrNotProvisioned", err)
	}
}

// TestNotProvisioned: every store.Backend method of a Store that was never
// provisioned reports store.ErrNotProvisioned, one that was cleaned up
// reports store.ErrClosed, neither panics, and a second Cleanup is
// harmless.
func TestNotProvisioned(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	cleaned := &Store{Address: "127.0.0.1:1"}
	if err := cleaned.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cleaned.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := cleaned.Cleanup(); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
	for name, s := range map[string]*Store{"zero": {}, "cleaned up": cleaned} {
		bg := context.Background()
		rkey := store.RequestKey{ClientID: "c", RequestID: "r"}
		okey := store.OrderKey{ClientID: "c", MerchantBizNo: "m"}
		_, errClaim := s.Claim(bg, rkey, store.HashBody(nil), "t", time.Minute)
		_, errOrder := s.GetOrder(bg, okey)
		_, errRequest := s.GetRequest(bg, rkey)
		for op, err := range map[string]error{
			"Claim":         errClaim,
			"Release":       s.Release(bg, rkey, "t"),
			"Finish":        s.Finish(bg, rkey, "t", store.Reply{}, time.Minute),
			"LockOrder":     s.LockOrder(bg, okey, "t", time.Minute),
			"UnlockOrder":   s.UnlockOrder(bg, okey, "t"),
			"GetOrder":      errOrder,
			"CommitSuccess": s.CommitSuccess(bg, okey, nil, store.Order{}, rkey, "t", store.Reply{}, time.Minute),
			"GetRequest":    errRequest,
		} {
			if name == "zero" && !errors.Is(err, store.ErrNotProvisioned) {
				t.Errorf("%s on a %s Store: %v, want ErrNotProvisioned", op, name, err)
			}
			if name == "cleaned up" && !errors.Is(err, store.ErrClosed) {
				t.Errorf("%s on a %s Store: %v, want ErrClosed", op, name, err)
			}
			if err == nil {
				t.Errorf("%s on a %s Store succeeded", op, name)
			}
		}
	}
}

func TestModuleRegistered(t *testing.T) {
	mi, err := caddy.GetModule("http.alipay_order_sync.stores.redis")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mi.New().(store.Backend); !ok {
		t.Fatal("module does not implement store.Backend")
	}
}
