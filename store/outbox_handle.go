package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The outbox through a Handle: a store module that embeds Handle is an
// OutboxBackend too, forwarding to its Backend when that implements
// OutboxBackend (both backends do), so a module needs no code of its own
// for the outbox. Before Provision they answer ErrNotProvisioned, like the
// ingress methods.

// ErrNoOutbox is returned by a Handle's outbox methods when its Backend
// does not implement OutboxBackend.
var ErrNoOutbox = errors.New("state store has no outbox")

// outbox returns the OutboxBackend h forwards to, opening it if needed.
func (h Handle) outbox(ctx context.Context) (OutboxBackend, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return nil, err
	}
	o, ok := b.(OutboxBackend)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNoOutbox, b)
	}
	return o, nil
}

// Enqueue implements OutboxBackend.
func (h Handle) Enqueue(ctx context.Context, e Entry, laneVersion uint64) (existing *Entry, err error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.Enqueue(ctx, e, laneVersion)
}

// GetEntry implements OutboxBackend.
func (h Handle) GetEntry(ctx context.Context, key RequestKey) (*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.GetEntry(ctx, key)
}

// GetLane implements OutboxBackend.
func (h Handle) GetLane(ctx context.Context, key LaneKey) (*Lane, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.GetLane(ctx, key)
}

// DueLanes implements OutboxBackend.
func (h Handle) DueLanes(ctx context.Context, clientID string, now time.Time, limit int) (DueLanes, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return DueLanes{}, err
	}
	return o.DueLanes(ctx, clientID, now, limit)
}

// LeaseLane implements OutboxBackend.
func (h Handle) LeaseLane(ctx context.Context, key LaneKey, token string, ttl time.Duration) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.LeaseLane(ctx, key, token, ttl)
}

// RenewLane implements OutboxBackend.
func (h Handle) RenewLane(ctx context.Context, key LaneKey, token string, ttl time.Duration) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.RenewLane(ctx, key, token, ttl)
}

// ReleaseLane implements OutboxBackend.
func (h Handle) ReleaseLane(ctx context.Context, key LaneKey, token string) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.ReleaseLane(ctx, key, token)
}

// RecordAttempt implements OutboxBackend.
func (h Handle) RecordAttempt(ctx context.Context, key LaneKey, token, requestID string, a Attempt) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.RecordAttempt(ctx, key, token, requestID, a)
}

// Complete implements OutboxBackend.
func (h Handle) Complete(ctx context.Context, key LaneKey, token, requestID string, c Completion) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.Complete(ctx, key, token, requestID, c)
}

// ClaimCallbacks implements OutboxBackend.
func (h Handle) ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.ClaimCallbacks(ctx, clientID, now, limit, lease)
}

// CallbackDone implements OutboxBackend.
func (h Handle) CallbackDone(ctx context.Context, key RequestKey, webhookID string) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.CallbackDone(ctx, key, webhookID)
}

// CallbackRetry implements OutboxBackend.
func (h Handle) CallbackRetry(ctx context.Context, key RequestKey, webhookID string, next time.Time, lastError string) error {
	o, err := h.outbox(ctx)
	if err != nil {
		return err
	}
	return o.CallbackRetry(ctx, key, webhookID, next, lastError)
}

// ListEntries implements OutboxBackend.
func (h Handle) ListEntries(ctx context.Context, clientID string, state EntryState, limit int) ([]*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.ListEntries(ctx, clientID, state, limit)
}

// RetryEntry implements OutboxBackend.
func (h Handle) RetryEntry(ctx context.Context, key RequestKey, now time.Time) (*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.RetryEntry(ctx, key, now)
}

// RequeueEntry implements OutboxBackend.
func (h Handle) RequeueEntry(ctx context.Context, key RequestKey, laneVersion uint64, now time.Time) (*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.RequeueEntry(ctx, key, laneVersion, now)
}

// DropEntry implements OutboxBackend.
func (h Handle) DropEntry(ctx context.Context, key RequestKey, d Drop) (*Entry, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return nil, err
	}
	return o.DropEntry(ctx, key, d)
}

// OutboxStats implements OutboxBackend.
func (h Handle) OutboxStats(ctx context.Context, clientID string) (OutboxStats, error) {
	o, err := h.outbox(ctx)
	if err != nil {
		return OutboxStats{}, err
	}
	return o.OutboxStats(ctx, clientID)
}

// Interface guard.
var _ OutboxBackend = Handle{}
