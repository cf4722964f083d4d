// Package store defines the durable state the gateway keeps: one record per
// order (Client-Id, merchantBizNo) and one replay record per request
// (Client-Id, requestId).
//
// Callers use Store, where a claim on a requestId is a value (Claim) that is
// finished, committed or released, and an order lock is an unlock func;
// tokens never leave this package. Storage engines implement Backend in
// sub-packages, with the records encoded as this package encodes them
// (codec.go), and must all pass the conformance suite in store/storetest.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrConflict is returned by CommitSuccess when the order changed since the
// caller read it (another instance won the race, or the order lock lease
// expired while the upstream was being called).
var ErrConflict = errors.New("order changed since it was read")

// ErrNotOwner is returned by Finish and CommitSuccess when the request's claim
// is no longer held under the given token (its lease expired and another
// caller claimed it).
var ErrNotOwner = errors.New("request claim is no longer held")

// ErrNotHeld is returned by Claim.Finish and Claim.Commit on a claim that is
// not held: one that did not claim (InFlight, Done, Mismatch), or that was
// already finished, committed or released.
var ErrNotHeld = errors.New("request claim is not held: it was not claimed, or was already finished or released")

// ErrLockTimeout is returned by LockOrder when the order lock could not be
// taken before the context ended.
var ErrLockTimeout = errors.New("timed out waiting for the order lock")

// Error is a backend operation that failed for a reason of the backend's
// (I/O, the server's answer, a corrupt record, an ended context), as
// opposed to an outcome of the contract (ErrConflict, ErrNotOwner,
// ErrLockTimeout). Its message names the backend and the operation, and
// the server's message, but never a password.
type Error struct {
	Backend string // "bbolt", "redis"
	Op      string // "claim", "finish", "open /path/orders.db"…
	Err     error
}

func (e *Error) Error() string { return e.Backend + " store: " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// CheckDuration is the rule for every lease and TTL given to a backend: it
// must be positive (zero would mean "forever" to one backend and "already
// expired" to another).
func CheckDuration(what string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s must be positive, got %v", what, d)
	}
	return nil
}

// OrderKey identifies one order.
type OrderKey struct {
	ClientID      string
	MerchantBizNo string
}

// RequestKey identifies one call for replay purposes.
type RequestKey struct {
	ClientID  string
	RequestID string
}

// BodyHash is the SHA-256 of a request's raw body bytes.
type BodyHash [sha256.Size]byte

// HashBody returns the BodyHash of raw.
func HashBody(raw []byte) BodyHash { return sha256.Sum256(raw) }

// Reply is a final answer exactly as it was sent: body bytes and the headers
// that must be replayed byte for byte (Response-Time, Client-Id, Signature,
// Content-Type).
type Reply struct {
	Status int
	Header map[string][]string
	Body   []byte
	// Scenario is the scenario of the request the reply answers, when
	// there is one: what its replays are counted and logged under without
	// reading the request again. It is kept with the reply, never sent.
	Scenario string
}

// Order is the accepted state of one order.
type Order struct {
	Scenario         string
	Status           string
	ModifyTime       int64 // orderModifyTime, epoch milliseconds
	OrderID          string
	DistributeResult json.RawMessage // the upstream's bytes, unchanged
	RequestID        string          // the request that made this change
	UpdatedAt        time.Time       // wall clock of the change
}

// ClaimStatus says what Claim found.
type ClaimStatus int

const (
	// Claimed: the request is new (or its previous claim expired); the
	// caller now owns it until the lease ends and must Release, Finish or
	// Commit it.
	Claimed ClaimStatus = iota + 1
	// InFlight: another caller holds a live claim, whatever its body: the
	// answer is "retry later". A different body is not refused yet, because
	// the first request may still end without a stored answer (U), after
	// which this body is processed afresh.
	InFlight
	// Done: a final reply is stored for the same body; replay it.
	Done
	// Mismatch: a final reply is stored for a different body. Only a stored
	// answer makes a requestId's body final (README, "What the caller gets").
	Mismatch
)

// String returns the status's name.
func (s ClaimStatus) String() string {
	switch s {
	case Claimed:
		return "Claimed"
	case InFlight:
		return "InFlight"
	case Done:
		return "Done"
	case Mismatch:
		return "Mismatch"
	}
	return fmt.Sprintf("ClaimStatus(%d)", int(s))
}

// ClaimResult is what Backend.Claim found.
type ClaimResult struct {
	Status ClaimStatus
	// Reply is the stored final reply when Status is Done.
	Reply *Reply
}

// RequestRecord is a replay record as returned by GetRequest (admin API).
type RequestRecord struct {
	BodyHash  BodyHash
	Done      bool
	Reply     *Reply
	ExpiresAt time.Time // lease end while in flight, TTL end when done
}

// Backend is what a storage engine implements: the low-level primitives
// behind Store. Claims and order locks are identified by tokens, which the
// caller makes (Store makes them unguessable and never reuses one) and a
// backend only compares, so that a caller whose lease ended can never
// finish, commit, release or unlock what another caller holds now.
//
// Implementations must be safe for concurrent use by many goroutines and
// (for shared backends) many processes, and must pass storetest.Run. Every
// operation honours its context: one called with a context that has ended
// fails without doing anything, and none waits past the context's
// deadline (by more than the time to notice it).
type Backend interface {
	// Claim atomically claims key under token for a request whose raw
	// body hashes to hash. A live claim or a stored reply for the key is
	// reported instead of claiming; an expired claim is taken over.
	// Claiming again with the token that holds the claim reports Claimed.
	Claim(ctx context.Context, key RequestKey, hash BodyHash, token string, lease time.Duration) (ClaimResult, error)

	// Release drops the claim held by token (used when the answer is U and
	// nothing must be stored). Releasing a claim that token does not hold
	// (any more) is not an error, and a stored reply is never dropped.
	Release(ctx context.Context, key RequestKey, token string) error

	// Finish stores the final reply for the request claimed by token,
	// kept for ttl. It returns ErrNotOwner if token no longer holds the
	// claim.
	Finish(ctx context.Context, key RequestKey, token string, reply Reply, ttl time.Duration) error

	// LockOrder takes the order's lock under token, serializing work on
	// one order across goroutines (and, for shared backends, processes).
	// The lock expires after lease so that a crashed holder never strands
	// the order. It waits until ctx ends and then returns ErrLockTimeout.
	LockOrder(ctx context.Context, key OrderKey, token string, lease time.Duration) error

	// UnlockOrder releases the order's lock if token holds it; unlocking a
	// lock that token does not hold (any more) is not an error.
	UnlockOrder(ctx context.Context, key OrderKey, token string) error

	// GetOrder returns the order's state, or nil if it has none.
	GetOrder(ctx context.Context, key OrderKey) (*Order, error)

	// CommitSuccess durably writes the order's new state and the request's
	// replay record in one atomic write, if token holds the request's claim
	// (else ErrNotOwner). prev is the state read under the lock (nil if
	// none); if the stored state is not the same version (SameVersion),
	// nothing is written and ErrConflict is returned. Nothing is
	// acknowledged before it is on disk (bbolt) or applied by the server
	// (Redis).
	CommitSuccess(ctx context.Context, okey OrderKey, prev *Order, next Order, rkey RequestKey, token string, reply Reply, ttl time.Duration) error

	// GetRequest returns the replay record for key, or nil if none is live.
	GetRequest(ctx context.Context, key RequestKey) (*RequestRecord, error)
}
