package bboltstore

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(Store{})
}

// ModuleID is the Caddy module ID of Store.
const ModuleID = "http.alipay_order_sync.stores.bbolt"

// pool holds one open Backend per absolute file path. bbolt locks its file, so
// a second Open of the same path would wait for the first to close: during
// a config reload the new config is provisioned while the old one still
// runs, and two handlers may name one file. Both must share the Backend, and
// with it the order locks.
var pool = caddy.NewUsagePool()

// pooledDB closes the Backend when its last user is cleaned up.
type pooledDB struct{ db *Backend }

func (p pooledDB) Destruct() error { return p.db.Close() }

// Store is the Caddy module http.alipay_order_sync.stores.bbolt, the
// default state store. It implements store.Backend with the Backend of its file,
// shared with every other Store on the same path.
//
// Caddyfile syntax (inside alipay_order_sync):
//
//	store bbolt [<path>]
type Store struct {
	// Path of the bbolt file. {env.*} placeholders are expanded; a
	// relative path is relative to Caddy's working directory. Default:
	// alipay_order_sync/orders.db in Caddy's data directory.
	Path string `json:"path,omitempty"`

	// Handle makes Store a store.Backend: it forwards every call to the Backend
	// once Provision has set it, and answers store.ErrNotProvisioned
	// before. It is not configuration.
	store.Handle `json:"-"`

	poolKey string // set only while this Store holds a pool reference
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ModuleID,
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision opens the file, or joins the Backend already open for it.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	path, err := resolvePath(s.Path)
	if err != nil {
		return err
	}
	val, loaded, err := pool.LoadOrNew(path, func() (caddy.Destructor, error) {
		db, err := Open(Options{
			Path: path,
			// The Backend outlives the config that opened it, so it logs
			// through the process logger, not this config's.
			Logger: caddy.Log().Named(ModuleID),
		})
		if err != nil {
			return nil, err
		}
		return pooledDB{db}, nil
	})
	if err != nil {
		// A failed constructor leaves no pool entry (and no reference of
		// ours to drop), so Cleanup must not Delete. Open's error already
		// names the store and the file.
		return err
	}
	s.Handle, s.poolKey = store.Handle{Backend: val.(pooledDB).db}, path
	if loaded {
		if c := s.logger.Check(zapcore.DebugLevel, "sharing open state store"); c != nil {
			c.Write(zap.String("path", path))
		}
	} else {
		s.logger.Info("opened state store", zap.String("path", path))
	}
	return nil
}

// resolvePath expands placeholders and defaults, and makes the path
// absolute so that two spellings of one file share one pool entry.
func resolvePath(p string) (string, error) {
	if p == "" {
		p = filepath.Join(caddy.AppDataDir(), "alipay_order_sync", "orders.db")
	} else {
		expanded, err := caddy.NewReplacer().ReplaceOrErr(p, true, true)
		if err != nil {
			return "", fmt.Errorf("store bbolt: path %q: %w", p, err)
		}
		if expanded == "" {
			return "", fmt.Errorf("store bbolt: path %q is empty once expanded", p)
		}
		p = expanded
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("store bbolt: path %q: %w", p, err)
	}
	return abs, nil
}

// Cleanup gives back this Store's use of the Backend; the last user closes it.
// It is safe after a failed Provision and when called twice. The Backend is
// left in the Handle: a request still draining from the old config then
// gets an error from a closed Backend.
func (s *Store) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	key := s.poolKey
	s.poolKey = ""
	deleted, err := pool.Delete(key)
	if deleted && s.logger != nil {
		if c := s.logger.Check(zapcore.DebugLevel, "closed unused state store"); c != nil {
			c.Write(zap.String("path", key))
		}
	}
	if err != nil {
		return fmt.Errorf("store bbolt: %w", err)
	}
	return nil
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. The
// dispenser is positioned before the backend name:
//
//	store bbolt [<path>]
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the backend name, "bbolt"
	if d.NextArg() {
		s.Path = d.Val()
	}
	if d.NextArg() {
		return d.Errf("store bbolt: unexpected argument %q; syntax: store bbolt [<path>]", d.Val())
	}
	// The dispenser holds only this store's segment, so anything left is
	// a block (an empty one too, which NextBlock would skip silently).
	if d.Next() {
		return d.Errf("store bbolt: takes no block; syntax: store bbolt [<path>]")
	}
	return nil
}

// Interface guards.
var (
	_ store.Backend         = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
