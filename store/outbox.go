package store

import (
	"context"
	"errors"
	"time"
)

// The outbox is the egress side's durable state: the order syncs a
// merchant's own system asked the gateway to deliver to AlipayHK (entries),
// grouped per order into lanes that are delivered strictly in acceptance
// order, with each lane's last state AlipayHK accepted.
//
// The outbox has its own keyspace, apart from the ingress orders and replay
// records: one bbolt file (or one Redis prefix) may serve an ingress and an
// egress handler of the same Client-Id, as the egress example does, and the
// two sides' states of one merchantBizNo are different things (what this
// gateway accepted from AlipayHK, and what AlipayHK accepted from us).
//
// Callers use Outbox, where a lane lease is a value (LaneLease) that is
// renewed, released and written through; tokens never leave this package.
// Storage engines implement OutboxBackend, with the records encoded as this
// package encodes them (outbox_codec.go) and the state changes computed as
// this package computes them (package store/internal/outboxplan), and must
// all pass the conformance suite in store/outboxtest.

// Errors of the outbox. ErrConflict (the lane moved since it was read) is
// shared with the ingress side.
var (
	// ErrLaneLeased is returned by LeaseLane when another holder (another
	// worker, or another instance on the same Redis) holds the lane's
	// lease.
	ErrLaneLeased = errors.New("lane is leased by another holder")
	// ErrLeaseLost is returned by the writes that need a lane's lease
	// (RecordAttempt, Complete) and by RenewLane when the lease is no
	// longer held under the caller's token: it expired, and possibly
	// another holder took the lane over. Nothing was written.
	ErrLeaseLost = errors.New("lane lease is no longer held")
	// ErrNotHead is returned by RecordAttempt and Complete when the entry
	// is not (any more) the queued head of the leased lane: an operator
	// dropped it, or it was completed already. Nothing was written.
	ErrNotHead = errors.New("entry is not the queued head of its lane")
	// ErrEntryNotFound is returned by the operator actions (RetryEntry,
	// RequeueEntry, DropEntry) for an entry that does not exist (or whose
	// retention ended).
	ErrEntryNotFound = errors.New("outbox entry not found")
	// ErrWrongState is returned (wrapped, with the entry's state) by an
	// operator action that the entry's state does not allow: RetryEntry
	// and DropEntry of a final entry, RequeueEntry of a queued or
	// succeeded one.
	ErrWrongState = errors.New("outbox entry is not in a state that allows this")
)

// DroppedByOperator is the LastError of an entry ended by DropEntry.
const DroppedByOperator = "dropped by operator"

// LaneKey identifies one lane: the egress entries of one order,
// (Client-Id, merchantBizNo).
type LaneKey struct {
	ClientID      string
	MerchantBizNo string
}

// EntryState is an entry's delivery state. Its values are the words of the
// entry JSON the legacy system reads.
type EntryState string

// Entry states. An entry is queued until it ends in exactly one of the
// final states; only an operator's RequeueEntry makes a failed or expired
// entry queued again.
const (
	// EntryQueued: waiting for its turn in its lane, or between attempts.
	EntryQueued EntryState = "queued"
	// EntrySucceeded: AlipayHK answered S.
	EntrySucceeded EntryState = "succeeded"
	// EntryFailed: AlipayHK answered F, or an operator dropped it.
	EntryFailed EntryState = "failed"
	// EntryExpired: no final answer before max_age.
	EntryExpired EntryState = "expired"
)

// Final reports whether s is a final state.
func (s EntryState) Final() bool {
	return s == EntrySucceeded || s == EntryFailed || s == EntryExpired
}

// Valid reports whether s is one of the four states.
func (s EntryState) Valid() bool { return s == EntryQueued || s.Final() }

// Entry is one order sync in the outbox, keyed by (ClientID, RequestID).
// Times are the caller's clock (the delivery runner's), kept to the
// nanosecond and returned in UTC.
type Entry struct {
	// The request, fixed when the entry is queued.
	ClientID        string
	RequestID       string
	MerchantBizNo   string
	Scenario        string
	OrderStatus     string
	OrderModifyTime int64 // epoch milliseconds; 0 when the request had none
	// Body is the bytes sent to AlipayHK on every attempt, byte for byte.
	Body []byte
	// BodyHash is HashBody(Body); Enqueue sets it.
	BodyHash BodyHash

	// Delivery.
	State    EntryState
	Attempts int // HTTP attempts made so far
	// CreatedAt is when the entry was first queued; QueuedAt when it last
	// joined its lane (CreatedAt, or the time of an operator's requeue):
	// max_age counts from QueuedAt.
	CreatedAt     time.Time
	QueuedAt      time.Time
	UpdatedAt     time.Time // last change of the delivery state
	NextAttemptAt time.Time // queued: when the next attempt is due
	LastError     string    // why the last attempt did not end the entry
	// Reply is AlipayHK's final reply (S or F), status, headers and body
	// exactly as received; nil unless the entry ended with one.
	Reply *Reply
	// ExpiresAt is, for a final entry, the end of its retention: after it
	// (and once no callback is pending) the entry reads as absent and is
	// swept. Zero while queued.
	ExpiresAt time.Time

	// Callback is the notification of the entry's final state to the
	// legacy system, when configured.
	Callback Callback
}

// Callback is the state of an entry's callback: the POST of its final state
// to the legacy system, retried until it answers 2xx.
type Callback struct {
	// Pending is set when the entry becomes final with a callback asked
	// for, and cleared by CallbackDone. A pending callback keeps its entry
	// past ExpiresAt.
	Pending bool
	// WebhookID is the Standard Webhooks message id, the same across all
	// retries of one final state's callback and different for every final
	// state (an entry requeued and ended again gets a new one). Made by
	// the store when the entry becomes final.
	WebhookID     string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
}

// Lane is one lane as read at one instant: what the state check of a new
// entry is made against, and the version Enqueue and RequeueEntry compare.
type Lane struct {
	Key LaneKey
	// Version grows with every change of Accepted or of the queued
	// entries' list (enqueue, completion, drop, requeue), not with an
	// attempt. It is 0 for a lane that holds nothing, whatever it held
	// before: a lane emptied of entries with no accepted state is the same
	// lane as one never used, and a check against it is as good.
	Version uint64
	// Accepted is the lane's last state AlipayHK accepted (its last S):
	// Status, ModifyTime, OrderID, DistributeResult (AlipayHK's bytes),
	// RequestID, Scenario, UpdatedAt. Nil before the first S.
	Accepted *Order
	// Queued are the lane's queued entries in acceptance order, head
	// first. Only the head is ever delivered.
	Queued []*Entry
}

// Attempt is the outcome of one delivery attempt that did not end the
// entry (U, a transport error, a timeout, an unverifiable reply...). It
// counts one attempt.
type Attempt struct {
	At            time.Time // when it ended; the entry's UpdatedAt
	NextAttemptAt time.Time // when the next attempt is due
	LastError     string
}

// Completion ends the head entry of a lane, in one durable write: its final
// state and reply, the lane's head popped (unblocking the lane), the lane's
// accepted state moved on S, and its callback scheduled.
type Completion struct {
	State     EntryState // EntrySucceeded, EntryFailed or EntryExpired
	At        time.Time  // when it ended; UpdatedAt, and the start of retention
	LastError string
	// Reply is AlipayHK's final reply, stored byte for byte; nil for
	// expired.
	Reply *Reply
	// Attempted says the completion ends an attempt (AlipayHK answered S
	// or F): it counts one attempt. An expiry found before an attempt
	// does not.
	Attempted bool
	// Accepted, for EntrySucceeded only, is the lane's new accepted state;
	// nil leaves it as it is.
	Accepted *Order
	// Callback schedules the entry's callback, due at once (At).
	Callback bool
	// Retention is how long the final entry is kept after At, for lookups
	// and dedupe (max_age). Must be positive.
	Retention time.Duration
}

// Drop is an operator's drop of a queued entry: it ends failed with
// LastError DroppedByOperator, leaves its lane, and gets its callback.
type Drop struct {
	At        time.Time
	Callback  bool
	Retention time.Duration
}

// DueLanes is the work DueLanes found.
type DueLanes struct {
	// Lanes whose head entry is due and whose lease nobody holds, the
	// longest due first.
	Lanes []LaneKey
	// Next is the earliest due time after now among the client's lanes
	// (zero if none): the latest a poller should look again.
	Next time.Time
}

// OutboxStats is one client's outbox at a glance, for metrics.
type OutboxStats struct {
	Queued           int       // entries queued (the queue depth)
	OldestQueuedAt   time.Time // QueuedAt of the oldest queued entry, to the millisecond; zero when none
	CallbacksPending int
}

// OutboxBackend is what a storage engine implements: the outbox's
// primitives. Lane leases are identified by tokens the caller makes (Outbox
// makes them unguessable and never reuses one) and a backend only compares.
//
// Guarantees every implementation gives, checked by outboxtest.Run:
//
//   - Durable: a write that returned nil is on disk (bbolt: committed and
//     fsynced) or applied by the server (Redis) — a crash right after
//     loses nothing. A write that returned an error may or may not have
//     been applied (a deadline can cut off the reply of a write the server
//     made) but is never half applied: every write is one atomic
//     transaction or script.
//   - Atomic across instances: any number of goroutines (and, for Redis,
//     processes) may call any operation at once; dedupe, lane versions and
//     leases hold under every interleaving.
//   - Retry-safe: a Redis script run twice (go-redis resends a command
//     whose connection broke) gives the answer of the first run.
//   - Every operation honours its context: one called with a context that
//     has ended fails without doing anything, and none waits past the
//     deadline (by more than the time to notice it).
//
// Method names do not overlap Backend's, so that one type (the Caddy store
// module) implements both.
type OutboxBackend interface {
	// Enqueue adds e at the tail of its lane (e.ClientID, e.MerchantBizNo)
	// as a queued entry, in one durable write with the lane's new version,
	// if
	//   - no entry (ClientID, RequestID) exists: otherwise that entry is
	//     returned, unchanged whatever e holds, and nothing is written (the
	//     caller compares BodyHash); checked first;
	//   - the lane is still at laneVersion (as read by GetLane, for the
	//     caller's state check): otherwise ErrConflict and nothing is
	//     written — read the lane again and check again.
	// e.State must be EntryQueued; Attempts, Reply, ExpiresAt and Callback
	// must be zero; BodyHash is set from Body. If the lane was empty, e is
	// its head and due at e.NextAttemptAt.
	Enqueue(ctx context.Context, e Entry, laneVersion uint64) (existing *Entry, err error)

	// GetEntry returns the entry, or nil if there is none (a final entry
	// whose retention ended and that has no callback pending reads as
	// absent, swept or not).
	GetEntry(ctx context.Context, key RequestKey) (*Entry, error)

	// GetLane returns the lane as of one instant: version, accepted state
	// and queued entries in order. A lane that holds nothing is returned
	// with Version 0, not nil.
	GetLane(ctx context.Context, key LaneKey) (*Lane, error)

	// DueLanes returns up to limit lanes of clientID whose head entry is
	// due (NextAttemptAt <= now) and whose lease nobody holds, the longest
	// due first, and the next due time after now. Due times are kept to
	// the millisecond, rounded up: a lane is found due at most a
	// millisecond after its time, never before. A lane leased by anyone
	// (this caller included) is left out. The scan behind it is bounded, so
	// with very many leased due lanes it may return fewer than it could;
	// the next poll finds the rest.
	DueLanes(ctx context.Context, clientID string, now time.Time, limit int) (DueLanes, error)

	// LeaseLane takes the lane's lease for ttl under token: one holder at a
	// time across every caller of the backend (Redis: across instances).
	// It returns ErrLaneLeased if another token holds it; taking it again
	// with the token that holds it renews it. A lease ends by ReleaseLane
	// or when ttl passes, so a crashed holder's lanes resume elsewhere.
	// bbolt keeps leases in memory (one process per file): a restarted
	// process finds every lane free.
	LeaseLane(ctx context.Context, key LaneKey, token string, ttl time.Duration) error
	// RenewLane extends the lease held by token to ttl from now, or
	// returns ErrLeaseLost.
	RenewLane(ctx context.Context, key LaneKey, token string, ttl time.Duration) error
	// ReleaseLane drops the lease if token holds it; releasing a lease
	// that token does not hold (any more) is not an error.
	ReleaseLane(ctx context.Context, key LaneKey, token string) error

	// RecordAttempt records an attempt on the lane's head entry requestID:
	// Attempts+1, UpdatedAt, NextAttemptAt (the lane becomes due then),
	// LastError. It needs the lease (else ErrLeaseLost) and the entry to
	// be the queued head (else ErrNotHead); nothing is written otherwise.
	RecordAttempt(ctx context.Context, key LaneKey, token, requestID string, a Attempt) error

	// Complete ends the lane's head entry requestID as c says, in one
	// durable write: final state, reply, LastError, ExpiresAt = At +
	// Retention, the head popped (the next entry, if any, becomes the head
	// and is due at its NextAttemptAt), the lane's version moved, its
	// accepted state replaced by c.Accepted (on S), and the callback
	// scheduled. It needs the lease (else ErrLeaseLost) and the entry to
	// be the queued head (else ErrNotHead). The lease stays held.
	Complete(ctx context.Context, key LaneKey, token, requestID string, c Completion) error

	// ClaimCallbacks returns up to limit entries of clientID whose callback
	// is pending and due (Callback.NextAttemptAt <= now), earliest first,
	// and claims each for lease: it is not returned again, to anyone,
	// until lease passes or CallbackDone / CallbackRetry is recorded (so
	// instances sharing a Redis do not all send it). The claim is not
	// written into the entry.
	ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*Entry, error)
	// CallbackDone records that the callback webhookID was delivered
	// (2xx): it is no longer pending (and its entry's retention, if over,
	// lets it go). A webhookID that is not the entry's pending callback
	// (done already, or superseded by a requeue) or an entry that is gone
	// is not an error: there is nothing left to do.
	CallbackDone(ctx context.Context, key RequestKey, webhookID string) error
	// CallbackRetry records a failed delivery of callback webhookID:
	// Attempts+1, LastError, due again at next. Like CallbackDone it does
	// nothing for a webhookID that is not pending.
	CallbackRetry(ctx context.Context, key RequestKey, webhookID string, next time.Time, lastError string) error

	// ListEntries returns up to limit entries of clientID in state (all
	// states when empty): queued ones oldest first (QueuedAt), then final
	// ones, the longest retained (the latest ended) first.
	ListEntries(ctx context.Context, clientID string, state EntryState, limit int) ([]*Entry, error)

	// RetryEntry makes a queued entry due at now (if it is its lane's
	// head, the lane is due at once) and returns it. A final entry is
	// ErrWrongState: use RequeueEntry, after the state check.
	RetryEntry(ctx context.Context, key RequestKey, now time.Time) (*Entry, error)
	// RequeueEntry puts a failed or expired entry back at the tail of its
	// lane, queued and due at now, with Attempts, LastError, Reply and
	// ExpiresAt cleared and QueuedAt = now (max_age starts again), if the
	// lane is still at laneVersion (else ErrConflict: the caller checks
	// the entry's status against the lane it read, as for a new entry). A
	// callback still pending for its previous final state is dropped: the
	// new final state gets its own. Succeeded or queued entries are
	// ErrWrongState.
	RequeueEntry(ctx context.Context, key RequestKey, laneVersion uint64, now time.Time) (*Entry, error)
	// DropEntry ends a queued entry as failed with LastError
	// DroppedByOperator, removes it from its lane wherever it is (if it was
	// the head, the next entry becomes due), moves the lane's version and
	// schedules its callback, in one durable write, and returns it. It
	// needs no lease: a holder delivering the dropped head then gets
	// ErrNotHead. A final entry is ErrWrongState.
	DropEntry(ctx context.Context, key RequestKey, d Drop) (*Entry, error)

	// OutboxStats returns clientID's queue depth, oldest queued entry and
	// pending callbacks.
	OutboxStats(ctx context.Context, clientID string) (OutboxStats, error)
}

// Outbox is the outbox as the egress side uses it: an OutboxBackend whose
// lane leases are values, so that no caller ever handles a token. It is
// safe for concurrent use.
type Outbox struct {
	b OutboxBackend
}

// NewOutbox returns an Outbox over b.
func NewOutbox(b OutboxBackend) *Outbox { return &Outbox{b: b} }

// Backend returns the OutboxBackend o works on.
func (o *Outbox) Backend() OutboxBackend { return o.b }

// Enqueue: see OutboxBackend.Enqueue.
func (o *Outbox) Enqueue(ctx context.Context, e Entry, laneVersion uint64) (existing *Entry, err error) {
	return o.b.Enqueue(ctx, e, laneVersion)
}

// Entry returns the entry, or nil: see OutboxBackend.GetEntry.
func (o *Outbox) Entry(ctx context.Context, key RequestKey) (*Entry, error) {
	return o.b.GetEntry(ctx, key)
}

// Lane returns the lane: see OutboxBackend.GetLane.
func (o *Outbox) Lane(ctx context.Context, key LaneKey) (*Lane, error) {
	return o.b.GetLane(ctx, key)
}

// Due returns the client's due, unleased lanes: see OutboxBackend.DueLanes.
func (o *Outbox) Due(ctx context.Context, clientID string, now time.Time, limit int) (DueLanes, error) {
	return o.b.DueLanes(ctx, clientID, now, limit)
}

// LeaseLane takes the lane's lease for ttl: one holder at a time, across
// instances on a shared backend. It returns ErrLaneLeased if someone else
// holds it. The lease ends with Release or after ttl (Renew extends it);
// the writes that need it go through it.
//
// If LeaseLane fails otherwise, the backend may still have leased (a
// deadline can cut off the reply): the lease then simply expires.
func (o *Outbox) LeaseLane(ctx context.Context, key LaneKey, ttl time.Duration) (*LaneLease, error) {
	token := newToken()
	if err := o.b.LeaseLane(ctx, key, token, ttl); err != nil {
		return nil, err
	}
	return &LaneLease{b: o.b, key: key, token: token}, nil
}

// ClaimCallbacks returns due callbacks, each claimed for lease: see
// OutboxBackend.ClaimCallbacks.
func (o *Outbox) ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*Entry, error) {
	return o.b.ClaimCallbacks(ctx, clientID, now, limit, lease)
}

// CallbackDone: see OutboxBackend.CallbackDone.
func (o *Outbox) CallbackDone(ctx context.Context, key RequestKey, webhookID string) error {
	return o.b.CallbackDone(ctx, key, webhookID)
}

// CallbackRetry: see OutboxBackend.CallbackRetry.
func (o *Outbox) CallbackRetry(ctx context.Context, key RequestKey, webhookID string, next time.Time, lastError string) error {
	return o.b.CallbackRetry(ctx, key, webhookID, next, lastError)
}

// List: see OutboxBackend.ListEntries.
func (o *Outbox) List(ctx context.Context, clientID string, state EntryState, limit int) ([]*Entry, error) {
	return o.b.ListEntries(ctx, clientID, state, limit)
}

// Retry: see OutboxBackend.RetryEntry.
func (o *Outbox) Retry(ctx context.Context, key RequestKey, now time.Time) (*Entry, error) {
	return o.b.RetryEntry(ctx, key, now)
}

// Requeue: see OutboxBackend.RequeueEntry.
func (o *Outbox) Requeue(ctx context.Context, key RequestKey, laneVersion uint64, now time.Time) (*Entry, error) {
	return o.b.RequeueEntry(ctx, key, laneVersion, now)
}

// Drop: see OutboxBackend.DropEntry.
func (o *Outbox) Drop(ctx context.Context, key RequestKey, d Drop) (*Entry, error) {
	return o.b.DropEntry(ctx, key, d)
}

// Stats: see OutboxBackend.OutboxStats.
func (o *Outbox) Stats(ctx context.Context, clientID string) (OutboxStats, error) {
	return o.b.OutboxStats(ctx, clientID)
}

// LaneLease is a held lane lease: the right to deliver the lane's head and
// to write its outcome, until Release or until its ttl passes without a
// Renew. Every write through it is refused with ErrLeaseLost once the lease
// is gone, so a holder that stalled past its ttl can never overwrite what
// the next holder did. A LaneLease is meant for one goroutine.
type LaneLease struct {
	b     OutboxBackend
	key   LaneKey
	token string
}

// Lane returns the leased lane's key.
func (l *LaneLease) Lane() LaneKey { return l.key }

// Renew extends the lease to ttl from now, or returns ErrLeaseLost.
func (l *LaneLease) Renew(ctx context.Context, ttl time.Duration) error {
	return l.b.RenewLane(ctx, l.key, l.token, ttl)
}

// Release gives the lease up. Releasing a lease that was lost, or twice,
// is not an error; if Release fails the lease still ends with its ttl.
func (l *LaneLease) Release(ctx context.Context) error {
	return l.b.ReleaseLane(ctx, l.key, l.token)
}

// RecordAttempt records an attempt on the head entry requestID that did not
// end it: see OutboxBackend.RecordAttempt.
func (l *LaneLease) RecordAttempt(ctx context.Context, requestID string, a Attempt) error {
	return l.b.RecordAttempt(ctx, l.key, l.token, requestID, a)
}

// Complete ends the head entry requestID in one durable write: see
// OutboxBackend.Complete. The lease stays held, for the next head.
func (l *LaneLease) Complete(ctx context.Context, requestID string, c Completion) error {
	return l.b.Complete(ctx, l.key, l.token, requestID, c)
}
