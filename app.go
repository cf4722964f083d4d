package ordersync

import (
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(App{})
}

// appID is the Caddy module ID of App.
const appID = "alipay_order_sync"

// App is the Caddy app alipay_order_sync. Nobody configures it: every
// handler loads it (ctx.App) to hand it what must only happen when Caddy
// really runs a configuration, not when it only validates one. `caddy
// validate` provisions every module, apps included, but never starts an
// app; `caddy run` and every reload start them. So the state stores open
// their pooled handles (bbolt's file lock, Redis's client) in Start, and
// validating the config of a running Caddy neither waits for nor touches
// them.
//
// Apps start in no set order: a request may reach a handler before this
// app has started, and a store then opens on that first use; Start only
// makes sure a store that cannot open fails the start, naming what is
// wrong, instead of failing requests later.
type App struct {
	// stores is filled while the configuration is provisioned, which Caddy
	// does on one goroutine and before it starts any app.
	stores []starter
	// deliveries are the egress handlers' starts (alipay_order_push):
	// their delivery runners start after every store has opened. Their
	// keys (outbox and client_id) are unique in a configuration.
	deliveries   []func() error
	deliveryKeys map[string]bool
}

// starter is a store module that opens on Start (store.Handle's).
type starter interface{ Start() error }

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  appID,
		New: func() caddy.Module { return new(App) },
	}
}

// Start opens every store handed to the app. A failure fails the start of
// the configuration (caddy run exits, a reload is refused and the running
// config kept); Caddy then cleans the configuration up, which closes what
// was opened.
func (a *App) Start() error {
	for _, s := range a.stores {
		if err := s.Start(); err != nil {
			return err
		}
	}
	for _, start := range a.deliveries {
		if err := start(); err != nil {
			return err
		}
	}
	return nil
}

// Stop does nothing: each store is given back by its module's Cleanup,
// which runs once the configuration's requests are done.
func (a *App) Stop() error { return nil }

// loadStore loads the store module of owner's StoreRaw field (raw points
// at it; bbolt when none is given) and hands it to the app, which opens it
// when Caddy starts the config, not while it is validated.
func loadStore(ctx caddy.Context, owner any, raw *json.RawMessage) (any, error) {
	if *raw == nil {
		*raw = json.RawMessage(`{"backend":"` + defaultStoreBackend + `"}`)
	}
	mod, err := ctx.LoadModule(owner, "StoreRaw")
	if err != nil {
		return nil, fmt.Errorf("store: %v", err)
	}
	if err := addStore(ctx, mod); err != nil {
		return nil, fmt.Errorf("store: %v", err)
	}
	return mod, nil
}

// addStore hands a handler's store module to the app of its configuration,
// if the module opens on Start.
func addStore(ctx caddy.Context, mod any) error {
	s, ok := mod.(starter)
	if !ok {
		return nil
	}
	a, err := appOf(ctx)
	if a == nil {
		return err
	}
	a.stores = append(a.stores, s)
	return nil
}

// addDelivery hands an egress handler's start to the app of its
// configuration: delivery runs only when Caddy really runs the
// configuration, never while `caddy validate` checks it. key names what
// the handler delivers (its outbox and client_id): two handlers of one
// configuration with one key would share one delivery runner with two
// configurations, so the second is refused (at load, and so by caddy
// validate too).
func addDelivery(ctx caddy.Context, key string, start func() error) error {
	a, err := appOf(ctx)
	if a == nil {
		return err
	}
	if a.deliveryKeys[key] {
		return errDuplicateDelivery
	}
	if a.deliveryKeys == nil {
		a.deliveryKeys = map[string]bool{}
	}
	a.deliveryKeys[key] = true
	a.deliveries = append(a.deliveries, start)
	return nil
}

// appOf returns the App of ctx's configuration, loading it if needed; nil
// and no error if ctx has no configuration. That is a caddy.Context made
// with caddy.NewContext outside a running Caddy (in-process tests), which
// Caddy's own Logger and AppIfConfigured accept, but whose App dereferences
// the missing configuration. Such a context starts no app, and its store
// opens on first use.
func appOf(ctx caddy.Context) (a *App, err error) {
	defer func() {
		if recover() != nil {
			a, err = nil, nil // no configuration: see above
		}
	}()
	app, err := ctx.App(appID)
	if err != nil {
		return nil, err
	}
	return app.(*App), nil
}

// Interface guards
var _ caddy.App = (*App)(nil)
