package store

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNotProvisioned is returned by every method of the zero Handle: a Caddy
// store module used before its Provision succeeded.
var ErrNotProvisioned = errors.New("state store is not provisioned (used before Provision succeeded)")

// ErrClosed is returned by every method of a Handle closed before it
// opened its Backend.
var ErrClosed = errors.New("state store is closed (its configuration was unloaded)")

// Handle is a Backend that opens the Backend it forwards to on demand. A
// Caddy store module embeds it, tagged json:"-" so that it stays out of the
// module's configuration, and sets it in Provision with NewHandle, which
// only says how to open. The module is then a Backend without a delegating
// method per operation, and it holds nothing (no file lock, no connection)
// until Start, or until its first operation if that comes first: Caddy
// provisions modules to validate a configuration (caddy validate) as well
// as to run it, and only starts apps when it runs it, in no set order, so
// a request may arrive before the app that calls Start has started.
//
// A Handle is a small value that may be copied; the copies share one
// Backend. The zero Handle answers ErrNotProvisioned.
type Handle struct{ l *lazy }

// NewHandle returns a Handle whose Backend is made by open, once it is
// needed. release gives back what a successful open took (a pool reference,
// say); Close calls it. An open that fails is tried again by the next
// operation (the file may have been unlocked meanwhile), each caller
// waiting for it no longer than its context allows.
func NewHandle(open func() (Backend, error), release func() error) Handle {
	return Handle{&lazy{open: open, release: release}}
}

// lazy is the state the copies of a Handle share.
type lazy struct {
	open    func() (Backend, error)
	release func() error

	mu      sync.Mutex
	b       Backend  // once opened; kept after Close (see Close)
	running *attempt // the open under way, if any
	closed  bool
}

// attempt is one run of open; err is set before done is closed.
type attempt struct {
	done chan struct{}
	err  error
}

// backend returns the Backend, opening it if needed. A caller whose ctx
// ends while the open is under way gives up; the open goes on for the next
// caller.
func (h Handle) backend(ctx context.Context) (Backend, error) {
	l := h.l
	if l == nil {
		return nil, ErrNotProvisioned
	}
	for {
		l.mu.Lock()
		if l.b != nil {
			b := l.b
			l.mu.Unlock()
			return b, nil
		}
		if l.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		a := l.running
		if a == nil {
			a = &attempt{done: make(chan struct{})}
			l.running = a
			go l.run(a)
		}
		l.mu.Unlock()
		select {
		case <-a.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if a.err != nil {
			return nil, a.err
		}
		// Opened: loop to take it (or to find the Handle closed).
	}
}

func (l *lazy) run(a *attempt) {
	b, err := l.open()
	l.mu.Lock()
	a.err = err
	l.running = nil
	closed := l.closed
	if err == nil && !closed {
		l.b = b
	}
	l.mu.Unlock()
	if err == nil && closed {
		// Closed while opening: nobody will use it.
		_ = l.release()
	}
	close(a.done)
}

// Start opens the Backend now, if it is not open yet, and returns the
// error of opening: the alipay_order_sync app calls it when Caddy starts, so
// that a store that cannot open fails `caddy run` (or the reload) with a
// message naming what is wrong.
func (h Handle) Start() error {
	_, err := h.backend(context.Background())
	return err
}

// Close gives back the Backend if it was opened, and stops the Handle from
// opening one. Operations after Close still reach a Backend it had opened:
// Caddy cleans up the configuration a reload replaced while some of its
// requests may still be finishing, and they must be able to commit through
// the Backend the new configuration shares (once its last user gave a
// Backend back, it is closed and answers with errors of its own). A Handle
// closed before it opened answers ErrClosed. Close is safe on the zero
// Handle and when called twice.
func (h Handle) Close() error {
	l := h.l
	if l == nil {
		return nil
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	b := l.b
	l.mu.Unlock()
	if b == nil {
		return nil // never opened, or an open under way releases itself
	}
	return l.release()
}

// Claim implements Backend.
func (h Handle) Claim(ctx context.Context, key RequestKey, hash BodyHash, token string, lease time.Duration) (ClaimResult, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return ClaimResult{}, err
	}
	return b.Claim(ctx, key, hash, token, lease)
}

// Release implements Backend.
func (h Handle) Release(ctx context.Context, key RequestKey, token string) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	return b.Release(ctx, key, token)
}

// Finish implements Backend.
func (h Handle) Finish(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	return b.Finish(ctx, key, token, reply, ttl)
}

// LockOrder implements Backend.
func (h Handle) LockOrder(ctx context.Context, key OrderKey, token string, lease time.Duration) error {
	b, err := h.backend(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ErrLockTimeout // what LockOrder says when ctx ends first
		}
		return err
	}
	return b.LockOrder(ctx, key, token, lease)
}

// UnlockOrder implements Backend.
func (h Handle) UnlockOrder(ctx context.Context, key OrderKey, token string) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	return b.UnlockOrder(ctx, key, token)
}

// GetOrder implements Backend.
func (h Handle) GetOrder(ctx context.Context, key OrderKey) (*Order, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return nil, err
	}
	return b.GetOrder(ctx, key)
}

// CommitSuccess implements Backend.
func (h Handle) CommitSuccess(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	return b.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
}

// GetRequest implements Backend.
func (h Handle) GetRequest(ctx context.Context, key RequestKey) (*RequestRecord, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return nil, err
	}
	return b.GetRequest(ctx, key)
}

// ClaimOrder implements OrderClaimer for a Backend that does, and answers
// errors.ErrUnsupported (Store then uses the primitives) for one that
// does not.
func (h Handle) ClaimOrder(ctx context.Context, rkey RequestKey, hash BodyHash, token string, okey OrderKey, lockToken string, lease time.Duration) (ClaimResult, bool, *Order, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return ClaimResult{}, false, nil, err
	}
	oc, ok := b.(OrderClaimer)
	if !ok {
		return ClaimResult{}, false, nil, errors.ErrUnsupported
	}
	return oc.ClaimOrder(ctx, rkey, hash, token, okey, lockToken, lease)
}

// FinishUnlock implements UnlockingWriter as ClaimOrder does OrderClaimer.
func (h Handle) FinishUnlock(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration, okey OrderKey, lockToken string) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	uw, ok := b.(UnlockingWriter)
	if !ok {
		return errors.ErrUnsupported
	}
	return uw.FinishUnlock(ctx, key, token, reply, ttl, okey, lockToken)
}

// CommitSuccessUnlock implements UnlockingWriter as ClaimOrder does
// OrderClaimer.
func (h Handle) CommitSuccessUnlock(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration, lockToken string) error {
	b, err := h.backend(ctx)
	if err != nil {
		return err
	}
	uw, ok := b.(UnlockingWriter)
	if !ok {
		return errors.ErrUnsupported
	}
	return uw.CommitSuccessUnlock(ctx, okey, prev, next, rkey, token, reply, ttl, lockToken)
}

// StoredReply implements ReplyReader for a Backend that does, and answers
// errors.ErrUnsupported (Store then finds nothing) for one that does not.
func (h Handle) StoredReply(ctx context.Context, key RequestKey, hash BodyHash) (*Reply, error) {
	b, err := h.backend(ctx)
	if err != nil {
		return nil, err
	}
	rr, ok := b.(ReplyReader)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return rr.StoredReply(ctx, key, hash)
}

// Interface guards.
var (
	_ Backend         = Handle{}
	_ OrderClaimer    = Handle{}
	_ UnlockingWriter = Handle{}
	_ ReplyReader     = Handle{}
)
