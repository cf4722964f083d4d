package store

import (
	"context"
	"crypto/rand"
	"sync"
	"time"
)

// Defaults for Options.
const (
	// DefaultCleanupTimeout bounds one clean-up step run in the background
	// (a claim's release, an order's unlock). A step that fails or times out
	// costs nothing but time: the lease ends what it would have ended.
	DefaultCleanupTimeout = 2 * time.Second
	// DefaultReleaseWait is how long Claim.Release waits for its clean-up
	// step before leaving it to the background. A healthy store releases
	// well within it, so a caller who retries at once after a U finds the
	// requestId free; a hung store delays the answer by no more than this.
	DefaultReleaseWait = 50 * time.Millisecond
)

// Options configures New. The zero value is usable.
type Options struct {
	// CleanupTimeout bounds each background clean-up step. Zero means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// ReleaseWait is how long Claim.Release waits for the store; zero
	// means DefaultReleaseWait, negative not at all.
	ReleaseWait time.Duration
	// CleanupFailed, if set, is told about a background clean-up step that
	// failed ("release" or "unlock"). It runs on the background goroutine.
	CleanupFailed func(op string, err error)
}

// Store is the durable state as the handler uses it: a Backend whose claims
// are values and whose order locks are unlock funcs, so that no caller ever
// handles a token. It is safe for concurrent use.
//
// Whatever is left to do after an answer is known (releasing a claim,
// unlocking an order, undoing a claim or lock whose reply a deadline cut
// off, a final write that outlived its deadline) runs in the background,
// bounded by Options.CleanupTimeout (the write by the backend), so that a
// hung store never holds up an answer; Wait waits for it.
type Store struct {
	b    Backend
	opts Options
	bg   sync.WaitGroup
}

// New returns a Store over b.
func New(b Backend, opts Options) *Store {
	if opts.CleanupTimeout <= 0 {
		opts.CleanupTimeout = DefaultCleanupTimeout
	}
	if opts.ReleaseWait == 0 {
		opts.ReleaseWait = DefaultReleaseWait
	}
	return &Store{b: b, opts: opts}
}

// newToken returns 128 random bits. Tokens are what make a claim or a lock
// someone's, so they must be unguessable and never repeat across
// instances.
func newToken() string { return rand.Text() }

// Claim claims key for a request whose raw body hashes to hash, for lease.
// The result says what was found; only a Claimed one is held and must be
// finished, committed or released (defer Release: it does nothing once the
// claim is finished or committed).
//
// If Claim fails, the backend may still have claimed (a deadline can cut
// off the reply of a claim the server made): that is released in the
// background, or the requestId would answer InFlight for a whole lease.
func (s *Store) Claim(ctx context.Context, key RequestKey, hash BodyHash, lease time.Duration) (*Claim, error) {
	token := newToken()
	res, err := s.b.Claim(ctx, key, hash, token, lease)
	if err != nil {
		s.cleanup("release", 0, func(ctx context.Context) error { return s.b.Release(ctx, key, token) })
		return nil, err
	}
	c := &Claim{Status: res.Status, Reply: res.Reply}
	if res.Status == Claimed {
		c.s, c.key, c.token, c.held = s, key, token, true
	}
	return c, nil
}

// Claim is the outcome of Store.Claim and, when its Status is Claimed, the
// claim itself: the caller's exclusive right to answer the request, until
// it is finished (Finish, Commit) or given up (Release) or its lease ends.
// A Claim is meant for one goroutine: its methods are not safe for
// concurrent use.
type Claim struct {
	// Status is what Store.Claim found.
	Status ClaimStatus
	// Reply is the stored final reply when Status is Done.
	Reply *Reply

	// Order is the order's state read under its lock, when the claim was
	// made by ClaimOrder (nil: the order has none yet).
	Order *Order

	s     *Store
	key   RequestKey
	token string
	held  bool // Claimed, and not yet finished, committed or released

	// The order lock taken by ClaimOrder, held until the claim ends.
	okey      OrderKey
	lockToken string
	locked    bool
}

// Finish stores reply as the request's final answer, kept for ttl; the
// claim is then spent, and the order it locked (ClaimOrder) unlocked. If
// Finish fails the claim is still held (Release it), unless the error is
// ErrNotOwner: the lease ended and another caller took the requestId over.
//
// Finish returns by ctx's deadline even if the backend does not (a disk
// that hangs under an fsync ignores it; see write).
func (c *Claim) Finish(ctx context.Context, reply Reply, ttl time.Duration) error {
	if c == nil || !c.held {
		return ErrNotHeld
	}
	return c.write(ctx, c.finishOp(reply, ttl))
}

// OrderChange is an accepted change of one order: Prev is its state as
// read under the order lock (nil if none), Next its new state.
type OrderChange struct {
	Key  OrderKey
	Prev *Order
	Next Order
}

// Commit writes the order change and reply (the request's final answer,
// kept for ttl) in one durable write; the claim is then spent. It returns
// ErrConflict, writing nothing, if the order is no longer at change.Prev.
// The order the claim locked (ClaimOrder) is unlocked once the write is
// done. If Commit fails the claim is still held (Release it), unless the
// error is ErrNotOwner. Like Finish, it returns by ctx's deadline whatever
// the backend does.
func (c *Claim) Commit(ctx context.Context, change OrderChange, reply Reply, ttl time.Duration) error {
	if c == nil || !c.held {
		return ErrNotHeld
	}
	return c.write(ctx, c.commitOp(change, reply, ttl))
}

// write runs a final write of the held claim c (finishOp, commitOp),
// bounded by ctx, and settles what c holds once it is done: the claim is
// spent if the write succeeded, and the order lock is given up then too.
//
// A write that is still running when ctx ends is not waited for: write
// returns ctx's error, and the write goes on in the background, owning
// what c held. c is spent for its holder at once (a deferred Release does
// nothing), but the order stays locked, so that no other change reads it
// while this one may still land. When the write ends, the background
// unlocks the order, and releases the claim if the write failed; if it
// landed, a retry is a replay. Store.Wait waits for it.
//
// Ownership: c is its caller's, and the write (op) only uses what it
// captured when it was made, never c; c's fields are settled here, on the
// caller's goroutine, before write returns.
func (c *Claim) write(ctx context.Context, op func(context.Context) (unlocked bool, err error)) error {
	if err := ctx.Err(); err != nil {
		return err // nothing started: the claim is still held
	}
	done := make(chan writeResult, 1)
	go func() {
		unlocked, err := op(ctx)
		done <- writeResult{unlocked, err}
	}()
	var r writeResult
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // it ended just in time
		default:
			c.handOff(done)
			return ctx.Err()
		}
	}
	if r.err != nil {
		return r.err // still held: the caller releases, which unlocks
	}
	c.held = false
	if r.unlocked {
		c.locked = false
	} else {
		c.unlock()
	}
	return nil
}

// writeResult is how a final write ended: unlocked says it also unlocked
// the claim's order (UnlockingWriter).
type writeResult struct {
	unlocked bool
	err      error
}

// handOff gives what c holds to the pending write whose result comes on
// done: from now on the background ends them, and c holds nothing.
func (c *Claim) handOff(done <-chan writeResult) {
	s, key, token := c.s, c.key, c.token
	okey, lockToken, locked := c.okey, c.lockToken, c.locked
	c.held, c.locked = false, false
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		r := <-done
		if r.err != nil {
			s.cleanup("release", 0, func(ctx context.Context) error { return s.b.Release(ctx, key, token) })
		}
		if locked && !r.unlocked {
			s.cleanup("unlock", 0, func(ctx context.Context) error { return s.b.UnlockOrder(ctx, okey, lockToken) })
		}
	}()
}

// Release gives the claim up, so that the requestId can be processed
// afresh; nothing is stored. The order the claim locked (ClaimOrder) is
// unlocked too, in the background; so is the lock of a claim whose Finish
// or Commit failed with ErrNotOwner. It does nothing on a claim that holds
// nothing (including a nil one), so it can be deferred right after
// Store.Claim or Store.ClaimOrder. The store is asked in the background:
// Release returns once the claim's release is done, or after
// Options.ReleaseWait, whichever comes first.
func (c *Claim) Release() {
	if c == nil {
		return
	}
	c.unlock()
	if !c.held {
		return
	}
	c.held = false
	s, key, token := c.s, c.key, c.token
	s.cleanup("release", s.opts.ReleaseWait, func(ctx context.Context) error { return s.b.Release(ctx, key, token) })
}

// GetOrder returns the order's state, or nil if it has none.
func (s *Store) GetOrder(ctx context.Context, key OrderKey) (*Order, error) {
	return s.b.GetOrder(ctx, key)
}

// GetRequest returns the replay record for key, or nil if none is live.
func (s *Store) GetRequest(ctx context.Context, key RequestKey) (*RequestRecord, error) {
	return s.b.GetRequest(ctx, key)
}

// Wait waits for the clean-up steps running in the background, each
// bounded by Options.CleanupTimeout. Tests use it to observe their effect.
func (s *Store) Wait() { s.bg.Wait() }

// cleanup runs step in the background with a context of its own, bounded
// by CleanupTimeout, and waits for it at most wait.
func (s *Store) cleanup(op string, wait time.Duration, step func(context.Context) error) {
	done := make(chan struct{})
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.CleanupTimeout)
		defer cancel()
		if err := step(ctx); err != nil && s.opts.CleanupFailed != nil {
			s.opts.CleanupFailed(op, err)
		}
	}()
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
