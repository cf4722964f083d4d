// Package outboxplan computes every change of the outbox's records, once,
// for every backend: the backends differ only in how they read and write
// records, not in what they write.
//
// Each operation of store.OutboxBackend is a function here that reads the
// records it needs through a Reader and returns a Change: the records to
// write (or delete), each with what was read, from which Index derives the
// index maintenance. A backend runs it inside its own atomicity:
//
//   - bbolt: inside a write transaction, reading from it and applying the
//     Change to it (Batch may run the function again: a plan is pure);
//   - Redis: reading the records (each with its write id), then one script
//     that applies the Change only if no record read has been written
//     since, and otherwise reading and planning again.
//
// Lease checks are the backends' (an in-memory table, a Redis key) and are
// not here.
package outboxplan

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Reader reads records as they are stored: expired entries included (use
// Live), nil for none.
type Reader interface {
	Entry(key store.RequestKey) (*store.Entry, error)
	Lane(key store.LaneKey) (*store.LaneRecord, error)
}

// Change is what one operation writes: each record with what was read
// (Old, nil: none) and what to write (New, nil: delete).
type Change struct {
	Entries []EntryChange
	Lanes   []LaneChange
}

// EntryChange is one entry written by a Change.
type EntryChange struct {
	Key      store.RequestKey
	Old, New *store.Entry
}

// LaneChange is one lane written by a Change.
type LaneChange struct {
	Key      store.LaneKey
	Old, New *store.LaneRecord
}

// Empty reports whether c writes nothing.
func (c *Change) Empty() bool { return len(c.Entries) == 0 && len(c.Lanes) == 0 }

func (c *Change) entry(key store.RequestKey, old, new *store.Entry) {
	c.Entries = append(c.Entries, EntryChange{Key: key, Old: old, New: new})
}

// lane records a lane change; a lane left empty is deleted.
func (c *Change) lane(key store.LaneKey, old, new *store.LaneRecord) {
	if new.Empty() {
		new = nil
	}
	if old == nil && new == nil {
		return
	}
	c.Lanes = append(c.Lanes, LaneChange{Key: key, Old: old, New: new})
}

// Live reports whether a stored entry still counts: every entry but a
// final one whose retention ended and that has no callback pending, which
// reads as absent until it is swept.
func Live(e *store.Entry, now time.Time) bool {
	if e == nil {
		return false
	}
	return !e.State.Final() || e.Callback.Pending || now.Before(e.ExpiresAt)
}

// Sweepable reports whether a stored entry may be deleted.
func Sweepable(e *store.Entry, now time.Time) bool { return e != nil && !Live(e, now) }

var errCorrupt = errors.New("outbox records disagree (an entry and its lane)")

func laneOf(e *store.Entry) store.LaneKey {
	return store.LaneKey{ClientID: e.ClientID, MerchantBizNo: e.MerchantBizNo}
}

func cloneEntry(e *store.Entry) *store.Entry {
	c := *e
	return &c
}

func cloneLane(r *store.LaneRecord) *store.LaneRecord {
	if r == nil {
		return &store.LaneRecord{}
	}
	c := *r
	c.Queue = slices.Clone(r.Queue)
	return &c
}

func version(r *store.LaneRecord) uint64 {
	if r == nil {
		return 0
	}
	return r.Version
}

// Enqueue plans store.OutboxBackend.Enqueue. existing is the live entry
// found under e's key (nothing to write then).
func Enqueue(r Reader, e store.Entry, laneVersion uint64, now time.Time) (c Change, existing *store.Entry, err error) {
	if err := checkNew(&e); err != nil {
		return c, nil, err
	}
	key := store.RequestKey{ClientID: e.ClientID, RequestID: e.RequestID}
	old, err := r.Entry(key)
	if err != nil {
		return c, nil, err
	}
	if Live(old, now) {
		return c, old, nil
	}
	lk := laneOf(&e)
	lane, err := r.Lane(lk)
	if err != nil {
		return c, nil, err
	}
	if version(lane) != laneVersion {
		return c, nil, store.ErrConflict
	}
	e.BodyHash = store.HashBody(e.Body)
	if e.QueuedAt.IsZero() {
		e.QueuedAt = e.CreatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.QueuedAt
	}
	nl := cloneLane(lane)
	nl.Version++
	nl.Queue = append(nl.Queue, e.RequestID)
	if len(nl.Queue) == 1 {
		nl.HeadDue = e.NextAttemptAt
	}
	c.entry(key, old, &e)
	c.lane(lk, lane, nl)
	return c, nil, nil
}

func checkNew(e *store.Entry) error {
	switch {
	case e.ClientID == "" || e.RequestID == "" || e.MerchantBizNo == "":
		return errors.New("enqueue: client id, requestId and merchantBizNo are required")
	case e.State != store.EntryQueued:
		return fmt.Errorf("enqueue: state must be %s, got %q", store.EntryQueued, e.State)
	case e.Attempts != 0 || e.Reply != nil || !e.ExpiresAt.IsZero() || e.Callback != (store.Callback{}):
		return errors.New("enqueue: a new entry has no attempts, reply, expiry or callback")
	case e.CreatedAt.IsZero():
		return errors.New("enqueue: createdAt is required")
	}
	return nil
}

// head reads the lane and its head entry, which must be requestID and
// queued (else store.ErrNotHead).
func head(r Reader, lk store.LaneKey, requestID string) (*store.LaneRecord, *store.Entry, error) {
	lane, err := r.Lane(lk)
	if err != nil {
		return nil, nil, err
	}
	if lane == nil || len(lane.Queue) == 0 || lane.Queue[0] != requestID {
		return nil, nil, store.ErrNotHead
	}
	e, err := r.Entry(store.RequestKey{ClientID: lk.ClientID, RequestID: requestID})
	if err != nil {
		return nil, nil, err
	}
	if e == nil || e.State != store.EntryQueued || e.MerchantBizNo != lk.MerchantBizNo {
		return nil, nil, fmt.Errorf("lane head %q: %w", requestID, errCorrupt)
	}
	return lane, e, nil
}

// Attempt plans store.OutboxBackend.RecordAttempt (the lease is the
// backend's to check).
func Attempt(r Reader, lk store.LaneKey, requestID string, a store.Attempt) (Change, error) {
	var c Change
	lane, e, err := head(r, lk, requestID)
	if err != nil {
		return c, err
	}
	ne := cloneEntry(e)
	ne.Attempts++
	ne.UpdatedAt = a.At
	ne.NextAttemptAt = a.NextAttemptAt
	ne.LastError = a.LastError
	nl := cloneLane(lane)
	nl.HeadDue = a.NextAttemptAt
	c.entry(store.RequestKey{ClientID: lk.ClientID, RequestID: requestID}, e, ne)
	c.lane(lk, lane, nl)
	return c, nil
}

// Complete plans store.OutboxBackend.Complete (the lease is the backend's
// to check).
func Complete(r Reader, lk store.LaneKey, requestID string, cp store.Completion) (Change, error) {
	var c Change
	switch {
	case !cp.State.Final():
		return c, fmt.Errorf("complete: state must be final, got %q", cp.State)
	case cp.Accepted != nil && cp.State != store.EntrySucceeded:
		return c, fmt.Errorf("complete: only %s moves the lane's accepted state", store.EntrySucceeded)
	case cp.Retention <= 0:
		return c, fmt.Errorf("complete: retention must be positive, got %v", cp.Retention)
	}
	lane, e, err := head(r, lk, requestID)
	if err != nil {
		return c, err
	}
	ne := cloneEntry(e)
	if cp.Attempted {
		ne.Attempts++
	}
	end(ne, cp.State, cp.At, cp.LastError, cp.Reply, cp.Callback, cp.Retention)
	nl := cloneLane(lane)
	if cp.Accepted != nil {
		a := *cp.Accepted
		nl.Accepted = &a
	}
	if err := pop(r, lk, nl, 0); err != nil {
		return c, err
	}
	c.entry(store.RequestKey{ClientID: lk.ClientID, RequestID: requestID}, e, ne)
	c.lane(lk, lane, nl)
	return c, nil
}

// end makes e final.
func end(e *store.Entry, state store.EntryState, at time.Time, lastError string, reply *store.Reply, callback bool, retention time.Duration) {
	e.State = state
	e.UpdatedAt = at
	e.NextAttemptAt = time.Time{}
	e.LastError = lastError
	e.Reply = nil
	if reply != nil {
		r := *reply
		e.Reply = &r
	}
	e.ExpiresAt = at.Add(retention)
	e.Callback = store.Callback{}
	if callback {
		e.Callback = store.Callback{Pending: true, WebhookID: WebhookID(e.ClientID, e.RequestID, at), NextAttemptAt: at}
	}
}

// pop removes the lane's queued entry at i, moving its version; if that was
// the head, the lane is due when the new head is.
func pop(r Reader, lk store.LaneKey, nl *store.LaneRecord, i int) error {
	nl.Queue = slices.Delete(nl.Queue, i, i+1)
	nl.Version++
	if i != 0 {
		return nil
	}
	nl.HeadDue = time.Time{}
	if len(nl.Queue) == 0 {
		return nil
	}
	next, err := r.Entry(store.RequestKey{ClientID: lk.ClientID, RequestID: nl.Queue[0]})
	if err != nil {
		return err
	}
	if next == nil || next.State != store.EntryQueued {
		return fmt.Errorf("lane entry %q: %w", nl.Queue[0], errCorrupt)
	}
	nl.HeadDue = next.NextAttemptAt
	return nil
}

// WebhookID is the Standard Webhooks message id of the callback of one
// final state: the entry and the instant it ended, hashed, so that it is
// the same whenever the write is retried and new for every final state.
func WebhookID(clientID, requestID string, at time.Time) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{clientID, requestID} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	h.Write(n[:binary.PutVarint(n[:], at.Unix())])
	h.Write(n[:binary.PutVarint(n[:], int64(at.Nanosecond()))])
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// liveEntry reads an operator action's entry.
func liveEntry(r Reader, key store.RequestKey, now time.Time) (*store.Entry, error) {
	e, err := r.Entry(key)
	if err != nil {
		return nil, err
	}
	if !Live(e, now) {
		return nil, store.ErrEntryNotFound
	}
	return e, nil
}

func wrongState(op string, s store.EntryState) error {
	return fmt.Errorf("%s: %w (it is %s)", op, store.ErrWrongState, s)
}

// Retry plans store.OutboxBackend.RetryEntry.
func Retry(r Reader, key store.RequestKey, now time.Time) (Change, *store.Entry, error) {
	var c Change
	e, err := liveEntry(r, key, now)
	if err != nil {
		return c, nil, err
	}
	if e.State != store.EntryQueued {
		return c, nil, wrongState("retry", e.State)
	}
	ne := cloneEntry(e)
	ne.NextAttemptAt = now
	ne.UpdatedAt = now
	c.entry(key, e, ne)
	lk := laneOf(e)
	lane, err := r.Lane(lk)
	if err != nil {
		return c, nil, err
	}
	if lane == nil || !slices.Contains(lane.Queue, key.RequestID) {
		return c, nil, fmt.Errorf("queued entry %q: %w", key.RequestID, errCorrupt)
	}
	if lane.Queue[0] == key.RequestID {
		nl := cloneLane(lane)
		nl.HeadDue = now
		c.lane(lk, lane, nl)
	}
	return c, ne, nil
}

// Requeue plans store.OutboxBackend.RequeueEntry.
func Requeue(r Reader, key store.RequestKey, laneVersion uint64, now time.Time) (Change, *store.Entry, error) {
	var c Change
	e, err := liveEntry(r, key, now)
	if err != nil {
		return c, nil, err
	}
	if e.State != store.EntryFailed && e.State != store.EntryExpired {
		return c, nil, wrongState("requeue", e.State)
	}
	lk := laneOf(e)
	lane, err := r.Lane(lk)
	if err != nil {
		return c, nil, err
	}
	if version(lane) != laneVersion {
		return c, nil, store.ErrConflict
	}
	ne := cloneEntry(e)
	ne.State = store.EntryQueued
	ne.Attempts = 0
	ne.QueuedAt, ne.UpdatedAt, ne.NextAttemptAt = now, now, now
	ne.LastError = ""
	ne.Reply = nil
	ne.ExpiresAt = time.Time{}
	ne.Callback = store.Callback{}
	nl := cloneLane(lane)
	nl.Version++
	nl.Queue = append(nl.Queue, key.RequestID)
	if len(nl.Queue) == 1 {
		nl.HeadDue = now
	}
	c.entry(key, e, ne)
	c.lane(lk, lane, nl)
	return c, ne, nil
}

// Drop plans store.OutboxBackend.DropEntry.
func Drop(r Reader, key store.RequestKey, d store.Drop) (Change, *store.Entry, error) {
	var c Change
	if d.Retention <= 0 {
		return c, nil, fmt.Errorf("drop: retention must be positive, got %v", d.Retention)
	}
	e, err := liveEntry(r, key, d.At)
	if err != nil {
		return c, nil, err
	}
	if e.State != store.EntryQueued {
		return c, nil, wrongState("drop", e.State)
	}
	lk := laneOf(e)
	lane, err := r.Lane(lk)
	if err != nil {
		return c, nil, err
	}
	i := -1
	if lane != nil {
		i = slices.Index(lane.Queue, key.RequestID)
	}
	if i < 0 {
		return c, nil, fmt.Errorf("queued entry %q: %w", key.RequestID, errCorrupt)
	}
	nl := cloneLane(lane)
	if err := pop(r, lk, nl, i); err != nil {
		return c, nil, err
	}
	ne := cloneEntry(e)
	end(ne, store.EntryFailed, d.At, store.DroppedByOperator, nil, d.Callback, d.Retention)
	c.entry(key, e, ne)
	c.lane(lk, lane, nl)
	return c, ne, nil
}

// pendingCallback reads the entry whose callback webhookID is pending, or
// nil.
func pendingCallback(r Reader, key store.RequestKey, webhookID string) (*store.Entry, error) {
	e, err := r.Entry(key)
	if err != nil || e == nil || !e.Callback.Pending || e.Callback.WebhookID != webhookID {
		return nil, err
	}
	return e, nil
}

// CallbackDone plans store.OutboxBackend.CallbackDone; an empty Change
// when there is nothing to do.
func CallbackDone(r Reader, key store.RequestKey, webhookID string) (Change, error) {
	var c Change
	e, err := pendingCallback(r, key, webhookID)
	if err != nil || e == nil {
		return c, err
	}
	ne := cloneEntry(e)
	ne.Callback.Pending = false
	ne.Callback.Attempts++
	ne.Callback.NextAttemptAt = time.Time{}
	ne.Callback.LastError = ""
	c.entry(key, e, ne)
	return c, nil
}

// CallbackRetry plans store.OutboxBackend.CallbackRetry; an empty Change
// when there is nothing to do.
func CallbackRetry(r Reader, key store.RequestKey, webhookID string, next time.Time, lastError string) (Change, error) {
	var c Change
	e, err := pendingCallback(r, key, webhookID)
	if err != nil || e == nil {
		return c, err
	}
	ne := cloneEntry(e)
	ne.Callback.Attempts++
	ne.Callback.NextAttemptAt = next
	ne.Callback.LastError = lastError
	c.entry(key, e, ne)
	return c, nil
}

// Sweep plans the deletion of key's entry if it is sweepable; an empty
// Change otherwise.
func Sweep(r Reader, key store.RequestKey, now time.Time) (Change, error) {
	var c Change
	e, err := r.Entry(key)
	if err != nil || !Sweepable(e, now) {
		return c, err
	}
	c.entry(key, e, nil)
	return c, nil
}
