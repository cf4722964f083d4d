package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotProvisioned is returned by every method of a Handle that holds no
// Backend: a Caddy store module used before its Provision succeeded (or, for
// a backend that lets go of it in Cleanup, after Cleanup).
var ErrNotProvisioned = errors.New("state store is not provisioned (used before Provision succeeded, or after Cleanup)")

// Handle is a Backend that forwards to the Backend it holds. A Caddy store
// module embeds it, tagged json:"-" so that it stays out of the module's
// configuration, and sets Backend in Provision: the module is then a
// Backend without a hand-written delegating method per operation. Unlike an
// embedded Backend interface, the zero Handle is safe to call: it answers
// ErrNotProvisioned instead of dereferencing nil.
type Handle struct {
	Backend Backend `json:"-"`
}

// Claim implements Backend.
func (h Handle) Claim(ctx context.Context, key RequestKey, hash BodyHash, token string, lease time.Duration) (ClaimResult, error) {
	if h.Backend == nil {
		return ClaimResult{}, ErrNotProvisioned
	}
	return h.Backend.Claim(ctx, key, hash, token, lease)
}

// Release implements Backend.
func (h Handle) Release(ctx context.Context, key RequestKey, token string) error {
	if h.Backend == nil {
		return ErrNotProvisioned
	}
	return h.Backend.Release(ctx, key, token)
}

// Finish implements Backend.
func (h Handle) Finish(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration) error {
	if h.Backend == nil {
		return ErrNotProvisioned
	}
	return h.Backend.Finish(ctx, key, token, reply, ttl)
}

// LockOrder implements Backend.
func (h Handle) LockOrder(ctx context.Context, key OrderKey, token string, lease time.Duration) error {
	if h.Backend == nil {
		return ErrNotProvisioned
	}
	return h.Backend.LockOrder(ctx, key, token, lease)
}

// UnlockOrder implements Backend.
func (h Handle) UnlockOrder(ctx context.Context, key OrderKey, token string) error {
	if h.Backend == nil {
		return ErrNotProvisioned
	}
	return h.Backend.UnlockOrder(ctx, key, token)
}

// GetOrder implements Backend.
func (h Handle) GetOrder(ctx context.Context, key OrderKey) (*Order, error) {
	if h.Backend == nil {
		return nil, ErrNotProvisioned
	}
	return h.Backend.GetOrder(ctx, key)
}

// CommitSuccess implements Backend.
func (h Handle) CommitSuccess(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration) error {
	if h.Backend == nil {
		return ErrNotProvisioned
	}
	return h.Backend.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
}

// GetRequest implements Backend.
func (h Handle) GetRequest(ctx context.Context, key RequestKey) (*RequestRecord, error) {
	if h.Backend == nil {
		return nil, ErrNotProvisioned
	}
	return h.Backend.GetRequest(ctx, key)
}

// Interface guard.
var _ Backend = Handle{}
