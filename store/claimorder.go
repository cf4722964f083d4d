package store

import (
	"context"
	"errors"
	"time"
)

// A backend whose operations are round trips to a server (Redis) can do
// what the first-time path asks of the store in two of them instead of
// five: claim + lock + read the order, and commit + unlock. These optional
// interfaces are how it says so; Store uses them when the backend has
// them and falls back on the Backend primitives otherwise (or when a
// method answers errors.ErrUnsupported, as a Handle does over a backend
// without them). A wrapper that embeds a Backend (fault injection in
// tests) does not promote them, so its overrides of the primitives keep
// being called.

// OrderClaimer claims a request and, in the same step, locks its order
// and reads it.
type OrderClaimer interface {
	// ClaimOrder does what Claim(rkey, hash, token, lease) does and, if
	// that is Claimed, takes the order lock of okey under lockToken for
	// lease if it is free or already lockToken's (locked), and then
	// returns the order's state (nil if none). If the lock is held by
	// someone else, locked is false and nothing else is done: the caller
	// waits for it with LockOrder. Run twice with the same tokens, it
	// gives the same answer.
	ClaimOrder(ctx context.Context, rkey RequestKey, hash BodyHash, token string, okey OrderKey, lockToken string, lease time.Duration) (res ClaimResult, locked bool, order *Order, err error)
}

// UnlockingWriter stores a request's final answer and, in the same step,
// unlocks its order.
type UnlockingWriter interface {
	// FinishUnlock is Finish, and on success UnlockOrder(okey, lockToken).
	FinishUnlock(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration, okey OrderKey, lockToken string) error
	// CommitSuccessUnlock is CommitSuccess, and on success
	// UnlockOrder(okey, lockToken).
	CommitSuccessUnlock(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration, lockToken string) error
}

// ClaimOrder claims rkey as Claim does and, when the request is Claimed,
// also locks okey for lease (waiting until ctx ends: ErrLockTimeout) and
// reads its state into the claim's Order: the first-time path's three
// store steps in one call, and in one round trip where the backend can
// (OrderClaimer). The claim then holds the lock too, and gives it up with
// itself: Finish and Commit unlock the order once the answer is stored (in
// the same step where the backend can, UnlockingWriter), Release unlocks
// it with the release.
//
// If ClaimOrder fails after claiming, what it took is given up in the
// background and the error returned: the caller holds nothing.
func (s *Store) ClaimOrder(ctx context.Context, rkey RequestKey, hash BodyHash, okey OrderKey, lease time.Duration) (*Claim, error) {
	return s.ClaimOrderSteps(ctx, rkey, hash, okey, lease, nil)
}

// Step is told about a store operation once it has ended: its name, when
// it began, and its error.
type Step func(op string, began time.Time, err error)

// ClaimOrderSteps is ClaimOrder, telling step (if not nil) about each
// operation it makes, as it ends: "claim", then, when the request is
// claimed, "lock" and "get_order". On a backend that claims, locks and
// reads in one round trip (OrderClaimer) that round trip is the one
// "claim", followed by "lock" and "get_order" only if the lock was held
// by another and had to be waited for. A failed operation is the last one
// told.
func (s *Store) ClaimOrderSteps(ctx context.Context, rkey RequestKey, hash BodyHash, okey OrderKey, lease time.Duration, step Step) (*Claim, error) {
	if step == nil {
		step = func(string, time.Time, error) {}
	}
	token, lockToken := newToken(), newToken()
	began := time.Now()
	res, locked, order, err := s.claimOrder(ctx, rkey, hash, token, okey, lockToken, lease)
	step("claim", began, err)
	if err != nil {
		// The backend may have claimed and locked (a deadline can cut off
		// its reply): undo both.
		s.cleanup("release", 0, func(ctx context.Context) error { return s.b.Release(ctx, rkey, token) })
		s.cleanup("unlock", 0, func(ctx context.Context) error { return s.b.UnlockOrder(ctx, okey, lockToken) })
		return nil, err
	}
	c := &Claim{Status: res.Status, Reply: res.Reply}
	if res.Status != Claimed {
		return c, nil
	}
	c.s, c.key, c.token, c.held = s, rkey, token, true
	c.okey, c.lockToken, c.locked = okey, lockToken, true
	if !locked {
		began = time.Now()
		err := s.b.LockOrder(ctx, okey, lockToken, lease)
		step("lock", began, err)
		if err != nil {
			c.Release()
			return nil, err
		}
		began = time.Now()
		order, err = s.b.GetOrder(ctx, okey)
		step("get_order", began, err)
		if err != nil {
			c.Release()
			return nil, err
		}
	}
	c.Order = order
	return c, nil
}

// LockOrder takes the lock of okey for the held claim c, for lease, waiting
// until ctx ends (ErrLockTimeout). c then holds the lock as a claim made by
// ClaimOrder does, and gives it up with itself: Finish and Commit unlock
// once the answer is stored (or, for a write that outlives its deadline,
// once it has ended), Release unlocks. It is ClaimOrder's lock step on its
// own, for a caller that times the steps apart.
//
// If LockOrder fails, the backend may still have locked (a deadline can
// cut off the reply): that is undone in the background, and c holds no
// lock.
func (c *Claim) LockOrder(ctx context.Context, okey OrderKey, lease time.Duration) error {
	if c == nil || !c.held {
		return ErrNotHeld
	}
	if c.locked {
		return errors.New("the claim already holds an order lock")
	}
	s, token := c.s, newToken()
	if err := s.b.LockOrder(ctx, okey, token, lease); err != nil {
		s.cleanup("unlock", 0, func(ctx context.Context) error { return s.b.UnlockOrder(ctx, okey, token) })
		return err
	}
	c.okey, c.lockToken, c.locked = okey, token, true
	return nil
}

// claimOrder is the backend's ClaimOrder, or the primitives it stands for.
func (s *Store) claimOrder(ctx context.Context, rkey RequestKey, hash BodyHash, token string, okey OrderKey, lockToken string, lease time.Duration) (ClaimResult, bool, *Order, error) {
	if oc, ok := s.b.(OrderClaimer); ok {
		res, locked, order, err := oc.ClaimOrder(ctx, rkey, hash, token, okey, lockToken, lease)
		if !errors.Is(err, errors.ErrUnsupported) {
			return res, locked, order, err
		}
	}
	res, err := s.b.Claim(ctx, rkey, hash, token, lease)
	return res, false, nil, err
}

// finishOp is the write of Finish: store reply for c, unlocking c's order
// in the same step where the backend can (then unlocked is true). It uses
// only what it captures now, never c (see Claim.write).
func (c *Claim) finishOp(reply Reply, ttl time.Duration) func(context.Context) (unlocked bool, err error) {
	b, key, token, okey, lockToken := c.s.b, c.key, c.token, c.okey, c.lockToken
	return c.finalOp(
		func(ctx context.Context, uw UnlockingWriter) error {
			return uw.FinishUnlock(ctx, key, token, reply, ttl, okey, lockToken)
		},
		func(ctx context.Context) error { return b.Finish(ctx, key, token, reply, ttl) })
}

// commitOp is finishOp for CommitSuccess.
func (c *Claim) commitOp(change OrderChange, reply Reply, ttl time.Duration) func(context.Context) (unlocked bool, err error) {
	b, key, token, lockToken := c.s.b, c.key, c.token, c.lockToken
	return c.finalOp(
		func(ctx context.Context, uw UnlockingWriter) error {
			return uw.CommitSuccessUnlock(ctx, change.Key, change.Prev, change.Next, key, token, reply, ttl, lockToken)
		},
		func(ctx context.Context) error {
			return b.CommitSuccess(ctx, change.Key, change.Prev, change.Next, key, token, reply, ttl)
		})
}

// finalOp is the shape of finishOp and commitOp: the write that also
// unlocks, where c holds a lock and the backend has it, else the plain
// write (the lock is then given up afterwards, by the caller).
func (c *Claim) finalOp(unlocking func(context.Context, UnlockingWriter) error, plain func(context.Context) error) func(context.Context) (unlocked bool, err error) {
	uw, ok := c.s.b.(UnlockingWriter)
	ok = ok && c.locked
	return func(ctx context.Context) (bool, error) {
		if ok {
			err := unlocking(ctx, uw)
			if !errors.Is(err, errors.ErrUnsupported) {
				return err == nil, err
			}
		}
		return false, plain(ctx)
	}
}

// unlock gives c's order lock up in the background, if c holds it.
func (c *Claim) unlock() {
	if !c.locked {
		return
	}
	c.locked = false
	s, okey, tok := c.s, c.okey, c.lockToken
	s.cleanup("unlock", 0, func(ctx context.Context) error { return s.b.UnlockOrder(ctx, okey, tok) })
}
