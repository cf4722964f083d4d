package bboltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// pool holds one open Backend per absolute file path. bbolt locks its
// file, so a second Open of the same path would wait for the first to
// close: during a config reload the new config starts while the old one
// still runs, and two handlers may name one file. All must share the
// Backend, and with it the order locks and the claims.
var pool = caddy.NewUsagePool()

// pooledDB closes the Backend when its last user is cleaned up.
type pooledDB struct{ db *Backend }

func (p pooledDB) Destruct() error { return p.db.Close() }

// Store is the Caddy module http.alipay_order_sync.stores.bbolt, the
// default state store: a store.Backend on the Backend of its file, shared
// with every other Store on the same path.
//
// Provision only resolves and checks the path; the file is opened (and
// locked) when Caddy starts, by the alipay_order_sync app, or by the first
// request if that comes first. So `caddy validate` never touches the file,
// and validating the config of a running Caddy does not wait for its lock.
//
// Caddyfile syntax (inside alipay_order_sync):
//
//	store bbolt [<path>]
type Store struct {
	// Path of the bbolt file. {env.*} placeholders are expanded; a
	// relative path is relative to Caddy's working directory. Default:
	// alipay_order_sync/orders.db in Caddy's data directory.
	Path string `json:"path,omitempty"`

	// Handle makes Store a store.Backend: it opens the file's Backend
	// when needed and forwards every call to it. It is not configuration.
	store.Handle `json:"-"`
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ModuleID,
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision resolves the path and checks what can be checked without
// opening the file.
func (s *Store) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	path, err := resolvePath(s.Path)
	if err != nil {
		return err
	}
	if err := checkPath(path); err != nil {
		return err
	}
	open := func() (store.Backend, error) {
		val, loaded, err := pool.LoadOrNew(path, func() (caddy.Destructor, error) {
			db, err := Open(Options{
				Path: path,
				// The Backend outlives the config that opened it, so it
				// logs through the process logger, not this config's.
				Logger: caddy.Log().Named(ModuleID),
			})
			if err != nil {
				return nil, err
			}
			return pooledDB{db}, nil
		})
		if err != nil {
			// A failed constructor leaves no pool entry (and no reference
			// to give back). Open's error already names the file.
			return nil, err
		}
		if loaded {
			if c := logger.Check(zapcore.DebugLevel, "sharing open state store"); c != nil {
				c.Write(zap.String("path", path))
			}
		} else {
			logger.Info("opened state store", zap.String("path", path))
		}
		return val.(pooledDB).db, nil
	}
	release := func() error {
		deleted, err := pool.Delete(path)
		if deleted {
			if c := logger.Check(zapcore.DebugLevel, "closed unused state store"); c != nil {
				c.Write(zap.String("path", path))
			}
		}
		return err
	}
	s.Handle = store.NewHandle(open, release)
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
			return "", fmt.Errorf("path %q: %w", p, err)
		}
		if expanded == "" {
			return "", fmt.Errorf("path %q is empty once expanded", p)
		}
		p = expanded
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return abs, nil
}

// checkPath finds the mistakes that would make Open fail for sure, without
// opening or creating anything: the path names something that is not a
// regular file, or a directory above it is not a directory.
func checkPath(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("path %s: not a regular file (%s)", path, fi.Mode().Type())
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("path %s: %w", path, err)
	}
	// Open will create it: the nearest existing directory above must be one.
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return fmt.Errorf("path %s: %s is not a directory", path, dir)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("path %s: %w", path, err)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// Cleanup gives back this Store's use of the Backend; the last user closes
// it. It is safe after a failed Provision and when called twice. A request
// still draining from the unloaded config goes on with the Backend, which
// stays open while the config that replaced this one uses it.
func (s *Store) Cleanup() error { return s.Handle.Close() }

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
	_ store.Backend              = (*Store)(nil)
	_ interface{ Start() error } = (*Store)(nil)
	_ caddy.Provisioner          = (*Store)(nil)
	_ caddy.CleanerUpper         = (*Store)(nil)
	_ caddyfile.Unmarshaler      = (*Store)(nil)
)
