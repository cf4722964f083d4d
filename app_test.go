package ordersync

import (
	"context"
	"errors"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

type fakeStarter struct {
	err     error
	started *[]string
	name    string
}

func (f fakeStarter) Start() error {
	*f.started = append(*f.started, f.name)
	return f.err
}

// TestAppStartsStores: Start opens every store handed to the app, in
// order, and the first failure fails the start with that store's error.
func TestAppStartsStores(t *testing.T) {
	var started []string
	broken := errors.New("opening /x/orders.db: locked")
	a := &App{stores: []starter{
		fakeStarter{started: &started, name: "a"},
		fakeStarter{started: &started, name: "b", err: broken},
		fakeStarter{started: &started, name: "c"},
	}}
	if err := a.Start(); !errors.Is(err, broken) {
		t.Fatalf("Start: %v, want the failing store's error", err)
	}
	if len(started) != 2 || started[0] != "a" || started[1] != "b" {
		t.Errorf("started %v, want [a b]", started)
	}
	if err := (&App{}).Start(); err != nil {
		t.Errorf("Start with no store: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestAppOfAContextWithoutConfig: a caddy.Context made outside a running
// Caddy (in-process tests) has no configuration and so no app; handing it
// a store is not an error (the store opens on first use).
func TestAppOfAContextWithoutConfig(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if a, err := appOf(ctx); a != nil || err != nil {
		t.Fatalf("appOf a context without config = %v, %v; want nil, nil", a, err)
	}
	if err := addStore(ctx, fakeStarter{}); err != nil {
		t.Fatalf("addStore: %v", err)
	}
}
