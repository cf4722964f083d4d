package redisstore

import (
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

// Store is the Caddy module http.alipay_order_sync.stores.redis: a
// store.Backend shared by every Caddy instance that points at the same Redis
// server, DB and key prefix. It forwards to a Backend built in Provision.
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

	closed bool

	// Handle makes Store a store.Store: it forwards every call to the
	// Backend built in Provision, and answers store.ErrNotProvisioned before
	// Provision and after Cleanup. It is not configuration.
	store.Handle `json:"-"`
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.alipay_order_sync.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision resolves placeholders and creates the client. It does not
// contact the server, so caddy validate works without Redis and a config
// reload is not held up by a slow one; the first request connects.
func (s *Store) Provision(ctx caddy.Context) error {
	routeRedisLogs()
	opts, err := s.options()
	if err != nil {
		return err
	}
	c, err := Open(opts)
	if err != nil {
		return err
	}
	s.Handle = store.Handle{Backend: c}
	ctx.Logger().Info("redis state store",
		zap.String("address", opts.Addr),
		zap.String("username", opts.Username),
		zap.Bool("password_set", opts.Password != ""),
		zap.Int("db", opts.DB),
		zap.String("key_prefix", opts.KeyPrefix),
		zap.Bool("tls", opts.TLS != nil))
	return nil
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
			return "", fmt.Errorf("redis store: %s %q resolved to an empty value", field, v)
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
		return Options{}, errors.New("redis store: password resolved to an empty value")
	}
	if opts.KeyPrefix, err = resolve("key_prefix", s.KeyPrefix); err != nil {
		return Options{}, err
	}
	if s.DB < 0 {
		return Options{}, fmt.Errorf("redis store: db must be >= 0, got %d", s.DB)
	}
	opts.DB = s.DB
	if s.TLS {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return Options{}, fmt.Errorf("redis store: address %q: %v", opts.Addr, err)
		}
		opts.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// Cleanup closes the client. It runs after a failed Provision too, when
// there may be no client.
func (s *Store) Cleanup() error {
	c, _ := s.Handle.Backend.(*Backend)
	if c == nil || s.closed {
		return nil
	}
	// The handle stays: a request of the old config still finishing after
	// a reload gets go-redis's "client is closed" error (U), not a data race.
	s.closed = true
	return c.Close()
}

// Interface guards
var (
	_ store.Backend         = (*Backend)(nil)
	_ store.Backend         = (*Store)(nil)
	_ caddy.Module          = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
