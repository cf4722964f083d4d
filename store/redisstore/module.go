package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

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
// store.Store shared by every Caddy instance that points at the same Redis
// server, DB and key prefix. It delegates to a Client built in Provision.
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

	client *Client
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
	opts, err := s.options()
	if err != nil {
		return err
	}
	c, err := New(opts)
	if err != nil {
		return err
	}
	s.client = c
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
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

var errNotProvisioned = errors.New("redis store: not provisioned")

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, key store.RequestKey, hash store.BodyHash, lease time.Duration) (store.ClaimResult, error) {
	if s.client == nil {
		return store.ClaimResult{}, errNotProvisioned
	}
	return s.client.Claim(ctx, key, hash, lease)
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, key store.RequestKey, token string) error {
	if s.client == nil {
		return errNotProvisioned
	}
	return s.client.Release(ctx, key, token)
}

// Finish implements store.Store.
func (s *Store) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	if s.client == nil {
		return errNotProvisioned
	}
	return s.client.Finish(ctx, key, token, reply, ttl)
}

// LockOrder implements store.Store.
func (s *Store) LockOrder(ctx context.Context, key store.OrderKey, lease time.Duration) (func(), error) {
	if s.client == nil {
		return nil, errNotProvisioned
	}
	return s.client.LockOrder(ctx, key, lease)
}

// GetOrder implements store.Store.
func (s *Store) GetOrder(ctx context.Context, key store.OrderKey) (*store.Order, error) {
	if s.client == nil {
		return nil, errNotProvisioned
	}
	return s.client.GetOrder(ctx, key)
}

// CommitSuccess implements store.Store.
func (s *Store) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	if s.client == nil {
		return errNotProvisioned
	}
	return s.client.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
}

// GetRequest implements store.Store.
func (s *Store) GetRequest(ctx context.Context, key store.RequestKey) (*store.RequestRecord, error) {
	if s.client == nil {
		return nil, errNotProvisioned
	}
	return s.client.GetRequest(ctx, key)
}

// Interface guards
var (
	_ store.Store           = (*Client)(nil)
	_ store.Store           = (*Store)(nil)
	_ caddy.Module          = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
