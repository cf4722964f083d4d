package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotProvisioned is returned by every method of a Handle that holds no
// Store: a Caddy store module used before its Provision succeeded (or, for
// a backend that lets go of its Store in Cleanup, after Cleanup).
var ErrNotProvisioned = errors.New("state store is not provisioned (used before Provision succeeded, or after Cleanup)")

// Handle is a Store that forwards to the Store it holds. A Caddy store
// module embeds it, tagged json:"-" so that it stays out of the module's
// configuration, and sets Store in Provision: the module is then a Store
// without a hand-written delegating method per operation. Unlike an
// embedded Store interface, the zero Handle is safe to call: it answers
// ErrNotProvisioned instead of dereferencing nil.
type Handle struct {
	Store Store `json:"-"`
}

// Claim implements Store.
func (h Handle) Claim(ctx context.Context, key RequestKey, hash BodyHash, lease time.Duration) (ClaimResult, error) {
	if h.Store == nil {
		return ClaimResult{}, ErrNotProvisioned
	}
	return h.Store.Claim(ctx, key, hash, lease)
}

// Release implements Store.
func (h Handle) Release(ctx context.Context, key RequestKey, token string) error {
	if h.Store == nil {
		return ErrNotProvisioned
	}
	return h.Store.Release(ctx, key, token)
}

// Finish implements Store.
func (h Handle) Finish(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration) error {
	if h.Store == nil {
		return ErrNotProvisioned
	}
	return h.Store.Finish(ctx, key, token, reply, ttl)
}

// LockOrder implements Store.
func (h Handle) LockOrder(ctx context.Context, key OrderKey, lease time.Duration) (unlock func(), err error) {
	if h.Store == nil {
		return nil, ErrNotProvisioned
	}
	return h.Store.LockOrder(ctx, key, lease)
}

// GetOrder implements Store.
func (h Handle) GetOrder(ctx context.Context, key OrderKey) (*Order, error) {
	if h.Store == nil {
		return nil, ErrNotProvisioned
	}
	return h.Store.GetOrder(ctx, key)
}

// CommitSuccess implements Store.
func (h Handle) CommitSuccess(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration) error {
	if h.Store == nil {
		return ErrNotProvisioned
	}
	return h.Store.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
}

// GetRequest implements Store.
func (h Handle) GetRequest(ctx context.Context, key RequestKey) (*RequestRecord, error) {
	if h.Store == nil {
		return nil, ErrNotProvisioned
	}
	return h.Store.GetRequest(ctx, key)
}

// Interface guard.
var _ Store = Handle{}
