package redisstore

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(Store{})
}

// DefaultAddress is the server used when the configuration names none,
// matching redis-cli's and go-redis's default.
const DefaultAddress = "localhost:6379"

// pool holds one Backend (one connection pool) per server, credentials,
// database and key prefix, so that a config reload keeps the connections of
// the config it replaces, and handlers naming the same server share them.
var pool = caddy.NewUsagePool()

type pooledBackend struct{ b *Backend }

func (p pooledBackend) Destruct() error { return p.b.Close() }

// Store is the Caddy module http.alipay_order_sync.stores.redis: a
// store.Backend shared by every Caddy instance that points at the same Redis
// server, DB and key prefix.
//
// Provision only resolves and checks the configuration; the client is made
// (from the pool) when Caddy starts, by the alipay_order_sync app, or by the
// first request if that comes first, and it connects on its first command.
// So `caddy validate` neither needs nor waits for a reachable Redis.
type Store struct {
	// Address is the server's host:port (default localhost:6379).
	// {env.*} and {file.*} placeholders are resolved at load.
	Address string `json:"address,omitempty"`
	// Username for Redis ACLs; empty means the default user. Placeholders
	// are resolved.
	Username string `json:"username,omitempty"`
	// Password for AUTH. Use {env.*} or {file.*} rather than the literal
	// secret in a config file.
	Password string `json:"password,omitempty"`
	// DB is the database number (default 0).
	DB int `json:"db,omitempty"`
	// KeyPrefix starts every key (default "alipay_order_sync:");
	// placeholders are resolved.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// TLS connects with TLS, verifying the server against the system roots
	// and the address's host name.
	TLS bool `json:"tls,omitempty"`

	// Handle makes Store a store.Backend: it takes the pooled Backend when
	// needed and forwards every call to it. It is not configuration.
	store.Handle `json:"-"`
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.alipay_order_sync.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision resolves placeholders and checks the options. It does not
// contact the server.
func (s *Store) Provision(ctx caddy.Context) error {
	routeRedisLogs()
	opts, err := s.options()
	if err != nil {
		return err
	}
	logger := ctx.Logger()
	key := poolKey(opts)
	open := func() (store.Backend, error) {
		val, loaded, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
			b, err := Open(opts)
			if err != nil {
				return nil, err
			}
			return pooledBackend{b}, nil
		})
		if err != nil {
			return nil, err
		}
		if !loaded {
			logger.Info("redis state store",
				zap.String("address", opts.Addr),
				zap.String("username", opts.Username),
				zap.Bool("password_set", opts.Password != ""),
				zap.Int("db", opts.DB),
				zap.String("key_prefix", opts.KeyPrefix),
				zap.Bool("tls", opts.TLS != nil))
		}
		return val.(pooledBackend).b, nil
	}
	release := func() error {
		_, err := pool.Delete(key)
		return err
	}
	s.Handle = store.NewHandle(open, release)
	return nil
}

// poolKey identifies what a pooled Backend is made of. The password is
// hashed so that it is not kept as a key (nor shown by anything that lists
// the pool's keys).
func poolKey(o Options) string {
	pw := sha256.Sum256([]byte(o.Password))
	return fmt.Sprintf("%s\x00%s\x00%x\x00%d\x00%s\x00%t", o.Addr, o.Username, pw, o.DB, o.KeyPrefix, o.TLS != nil)
}

// options turns the configuration into Options, resolving placeholders.
// It is separate from Provision so that tests can check the resolution
// without a caddy.Context. Placeholders the replacer does not know are left
// as written, so a password that happens to contain braces still works.
func (s *Store) options() (Options, error) {
	repl := caddy.NewReplacer()
	resolve := func(field, v string) (string, error) {
		out := repl.ReplaceKnown(v, "")
		if v != "" && out == "" {
			// An unset {env.X} would otherwise silently mean "no
			// password" or "the default prefix".
			return "", fmt.Errorf("%s %q resolved to an empty value", field, v)
		}
		return out, nil
	}
	var opts Options
	var err error
	if opts.Addr, err = resolve("address", s.Address); err != nil {
		return Options{}, err
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddress
	}
	if opts.Username, err = resolve("username", s.Username); err != nil {
		return Options{}, err
	}
	if opts.Password, err = resolve("password", s.Password); err != nil {
		// The field name is enough; the placeholder text is not secret but
		// there is no reason to print anything from this field.
		return Options{}, errors.New("password resolved to an empty value")
	}
	if opts.KeyPrefix, err = resolve("key_prefix", s.KeyPrefix); err != nil {
		return Options{}, err
	}
	if s.DB < 0 {
		return Options{}, fmt.Errorf("db must be >= 0, got %d", s.DB)
	}
	opts.DB = s.DB
	if s.TLS {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return Options{}, fmt.Errorf("address %q: %v", opts.Addr, err)
		}
		opts.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// Cleanup gives back this Store's use of the pooled Backend; the last user
// closes it. It runs after a failed Provision too. A request still draining
// from the unloaded config goes on with the Backend, which stays open while
// the config that replaced this one uses it.
func (s *Store) Cleanup() error { return s.Handle.Close() }

// Interface guards
var (
	_ store.Backend              = (*Backend)(nil)
	_ store.Backend              = (*Store)(nil)
	_ interface{ Start() error } = (*Store)(nil)
	_ caddy.Module               = (*Store)(nil)
	_ caddy.Provisioner          = (*Store)(nil)
	_ caddy.CleanerUpper         = (*Store)(nil)
	_ caddyfile.Unmarshaler      = (*Store)(nil)
)
