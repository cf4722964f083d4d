package bboltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/internal/outboxplan"
)

// The outbox (store.OutboxBackend) lives in four buckets of its own, apart
// from the ingress orders and replay records:
//
//	outbox_entries  clientId NUL requestId       → the entry (store.EncodeEntry)
//	outbox_lanes    clientId NUL merchantBizNo   → the lane (store.EncodeLaneRecord)
//	outbox_index    clientId NUL kind score member → empty; kind is
//	                  'd' due lanes (member merchantBizNo),
//	                  'c' pending callbacks (member requestId),
//	                  's' + state letter (q s f x): entries by state (member requestId)
//	outbox_expiry   score clientId NUL requestId → empty: final entries whose
//	                  retention ends at score, for the sweeper
//
// Scores are epoch milliseconds, 8 bytes big endian, so that a cursor walks
// an index in time order. What is written, and which index entries move, is
// planned by package outboxplan inside the write transaction; every write
// is one shared write (group commit: one fsync shared with concurrent
// writers, see committer) and is on disk
// before it returns.
//
// Lane leases and callback claims are kept in memory, in the Backend (see
// outboxMem), for the reason claims are: bbolt's file lock keeps every
// other process out, so a lease only has to hold against this process's
// goroutines, and a restarted process must find every lane free anyway.
var (
	bucketOutboxEntries = []byte("outbox_entries")
	bucketOutboxLanes   = []byte("outbox_lanes")
	bucketOutboxIndex   = []byte("outbox_index")
	bucketOutboxExpiry  = []byte("outbox_expiry")

	outboxBuckets = [][]byte{bucketOutboxEntries, bucketOutboxLanes, bucketOutboxIndex, bucketOutboxExpiry}
)

// errCorruptIndex is a key of an outbox index that is too short to hold
// its score.
var errCorruptIndex = errors.New("corrupt outbox index key")

// Index kinds, the byte after clientId NUL in outbox_index.
const (
	kindDue      = 'd'
	kindCallback = 'c'
	kindState    = 's'
)

// dueScanLimit bounds how many due lanes DueLanes examines beyond the ones
// it returns (those skipped because they are leased).
const dueScanLimit = 1000

func stateLetter(s store.EntryState) (byte, error) {
	switch s {
	case store.EntryQueued:
		return 'q', nil
	case store.EntrySucceeded:
		return 's', nil
	case store.EntryFailed:
		return 'f', nil
	case store.EntryExpired:
		return 'x', nil
	}
	return 0, fmt.Errorf("unknown entry state %q", s)
}

// indexPrefix is clientId NUL kind [state letter].
func indexPrefix(clientID string, kind byte, state store.EntryState) ([]byte, error) {
	p, err := joinKey(clientID, "")
	if err != nil {
		return nil, err
	}
	p = append(p, kind)
	if kind == kindState {
		l, err := stateLetter(state)
		if err != nil {
			return nil, err
		}
		p = append(p, l)
	}
	return p, nil
}

func appendScore(b []byte, score int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(score))
}

func readScore(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

func scoreTime(score int64) time.Time { return time.UnixMilli(score).UTC() }

// indexKey returns the key of op: in outbox_index, or in outbox_expiry
// for IndexExpiry.
func indexKey(op outboxplan.IndexOp) (bucket, key []byte, err error) {
	if op.Index == outboxplan.IndexExpiry {
		k, err := joinKey(op.ClientID, op.Member)
		if err != nil {
			return nil, nil, err
		}
		return bucketOutboxExpiry, append(appendScore(make([]byte, 0, 8+len(k)), op.Score), k...), nil
	}
	var kind byte
	switch op.Index {
	case outboxplan.IndexDue:
		kind = kindDue
	case outboxplan.IndexCallback:
		kind = kindCallback
	case outboxplan.IndexState:
		kind = kindState
	default:
		return nil, nil, fmt.Errorf("unknown index %d", op.Index)
	}
	p, err := indexPrefix(op.ClientID, kind, op.State)
	if err != nil {
		return nil, nil, err
	}
	return bucketOutboxIndex, append(appendScore(p, op.Score), op.Member...), nil
}

// txReader reads the outbox's records in a transaction, for outboxplan.
type txReader struct{ tx *bolt.Tx }

func (r txReader) Entry(key store.RequestKey) (*store.Entry, error) {
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return nil, err
	}
	v := r.tx.Bucket(bucketOutboxEntries).Get(k)
	if v == nil {
		return nil, nil
	}
	return store.DecodeEntry(v)
}

func (r txReader) Lane(key store.LaneKey) (*store.LaneRecord, error) {
	k, err := joinKey(key.ClientID, key.MerchantBizNo)
	if err != nil {
		return nil, err
	}
	v := r.tx.Bucket(bucketOutboxLanes).Get(k)
	if v == nil {
		return nil, nil
	}
	return store.DecodeLaneRecord(v)
}

// apply writes c, and the index entries it moves, in tx.
func apply(tx *bolt.Tx, c outboxplan.Change) error {
	entries, lanes := tx.Bucket(bucketOutboxEntries), tx.Bucket(bucketOutboxLanes)
	for _, ec := range c.Entries {
		k, err := joinKey(ec.Key.ClientID, ec.Key.RequestID)
		if err != nil {
			return err
		}
		if ec.New == nil {
			err = entries.Delete(k)
		} else {
			err = entries.Put(k, store.EncodeEntry(ec.New))
		}
		if err != nil {
			return err
		}
	}
	for _, lc := range c.Lanes {
		k, err := joinKey(lc.Key.ClientID, lc.Key.MerchantBizNo)
		if err != nil {
			return err
		}
		if lc.New == nil {
			err = lanes.Delete(k)
		} else {
			err = lanes.Put(k, store.EncodeLaneRecord(lc.New))
		}
		if err != nil {
			return err
		}
	}
	for _, op := range c.Index() {
		bucket, k, err := indexKey(op)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucket)
		if op.Remove {
			err = b.Delete(k)
		} else {
			err = b.Put(k, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// write runs plan in a shared transaction and applies its Change. What plan
// refuses (ErrConflict, ErrNotHead, bad input, a corrupt record) is
// returned as it is and writes nothing, without failing the batch it
// shares with other writers. plan may run more than once (committer reruns a
// batch's functions one by one when one fails), so it must only report
// through its result.
func (db *Backend) write(ctx context.Context, op string, plan func(r txReader) (outboxplan.Change, error)) error {
	if err := ctx.Err(); err != nil {
		return fail(op, err)
	}
	var refused error
	err := db.group.write(func(tx *bolt.Tx) error {
		refused = nil
		c, err := plan(txReader{tx})
		if err != nil {
			refused = err
			return nil
		}
		return apply(tx, c)
	})
	if err != nil {
		return fail(op, err)
	}
	if refused != nil && !isRefusal(refused) {
		return fail(op, refused)
	}
	return refused
}

// isRefusal reports whether err is one of the outbox's answers, returned
// unwrapped, rather than a failure to name.
func isRefusal(err error) bool {
	for _, e := range []error{store.ErrConflict, store.ErrNotHead, store.ErrEntryNotFound, store.ErrWrongState} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// view runs fn in a read transaction.
func (db *Backend) view(ctx context.Context, op string, fn func(r txReader) error) error {
	if err := ctx.Err(); err != nil {
		return fail(op, err)
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error { return fn(txReader{tx}) }); err != nil {
		return fail(op, err)
	}
	return nil
}

// Enqueue implements store.OutboxBackend.
func (db *Backend) Enqueue(ctx context.Context, e store.Entry, laneVersion uint64) (*store.Entry, error) {
	var existing *store.Entry
	err := db.write(ctx, "enqueue", func(r txReader) (outboxplan.Change, error) {
		c, ex, err := outboxplan.Enqueue(r, e, laneVersion, time.Now())
		existing = ex
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}

// GetEntry implements store.OutboxBackend.
func (db *Backend) GetEntry(ctx context.Context, key store.RequestKey) (*store.Entry, error) {
	var e *store.Entry
	err := db.view(ctx, "get entry", func(r txReader) error {
		var err error
		e, err = r.Entry(key)
		return err
	})
	if err != nil || !outboxplan.Live(e, time.Now()) {
		return nil, err
	}
	return e, nil
}

// GetLane implements store.OutboxBackend.
func (db *Backend) GetLane(ctx context.Context, key store.LaneKey) (*store.Lane, error) {
	lane := &store.Lane{Key: key}
	err := db.view(ctx, "get lane", func(r txReader) error {
		rec, err := r.Lane(key)
		if err != nil || rec == nil {
			return err
		}
		lane.Version, lane.Accepted = rec.Version, rec.Accepted
		lane.Queued = make([]*store.Entry, 0, len(rec.Queue))
		for _, id := range rec.Queue {
			e, err := r.Entry(store.RequestKey{ClientID: key.ClientID, RequestID: id})
			if err != nil {
				return err
			}
			if e == nil {
				return fmt.Errorf("lane %q lists entry %q, which does not exist", key.MerchantBizNo, id)
			}
			lane.Queued = append(lane.Queued, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lane, nil
}

// DueLanes implements store.OutboxBackend.
func (db *Backend) DueLanes(ctx context.Context, clientID string, now time.Time, limit int) (store.DueLanes, error) {
	var due store.DueLanes
	prefix, err := indexPrefix(clientID, kindDue, "")
	if err != nil {
		return due, fail("due lanes", err)
	}
	floor := outboxplan.Floor(now)
	// Candidates are read first and checked against the leases after the
	// transaction: the lease table's lock is never taken inside one.
	var candidates []store.LaneKey
	err = db.view(ctx, "due lanes", func(r txReader) error {
		c := r.tx.Bucket(bucketOutboxIndex).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(candidates) < limit+dueScanLimit; k, _ = c.Next() {
			if len(k) < len(prefix)+8 {
				return errCorruptIndex
			}
			if readScore(k[len(prefix):]) > floor {
				break
			}
			candidates = append(candidates, store.LaneKey{ClientID: clientID, MerchantBizNo: string(k[len(prefix)+8:])})
		}
		if k, _ := c.Seek(appendScore(slices.Clip(prefix), floor+1)); k != nil && bytes.HasPrefix(k, prefix) && len(k) >= len(prefix)+8 {
			due.Next = scoreTime(readScore(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return store.DueLanes{}, err
	}
	for _, lane := range candidates {
		if len(due.Lanes) == limit {
			break
		}
		if !db.outbox.leased(lane, now) {
			due.Lanes = append(due.Lanes, lane)
		}
	}
	return due, nil
}

// LeaseLane implements store.OutboxBackend.
func (db *Backend) LeaseLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if err := positive("lease lane", "ttl", ttl); err != nil {
		return err
	}
	if err := db.memOp(ctx, "lease lane"); err != nil {
		return err
	}
	return db.outbox.lease(key, token, ttl)
}

// RenewLane implements store.OutboxBackend.
func (db *Backend) RenewLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if err := positive("renew lane", "ttl", ttl); err != nil {
		return err
	}
	if err := db.memOp(ctx, "renew lane"); err != nil {
		return err
	}
	return db.outbox.renew(key, token, ttl)
}

// ReleaseLane implements store.OutboxBackend.
func (db *Backend) ReleaseLane(ctx context.Context, key store.LaneKey, token string) error {
	if err := db.memOp(ctx, "release lane"); err != nil {
		return err
	}
	db.outbox.release(key, token)
	return nil
}

// memOp checks what an operation on the in-memory tables checks: the
// context, and that the file is open.
func (db *Backend) memOp(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fail(op, err)
	}
	if db.closed() {
		return fail(op, bolterrors.ErrDatabaseNotOpen)
	}
	return nil
}

// leasedWrite runs a write that needs the lane's lease: the lease is held
// (and cannot be taken over, even if its ttl ends) for the whole write.
func (db *Backend) leasedWrite(ctx context.Context, op string, key store.LaneKey, token string, plan func(r txReader) (outboxplan.Change, error)) error {
	if err := ctx.Err(); err != nil {
		return fail(op, err)
	}
	l := db.outbox.begin(key, token)
	if l == nil {
		return store.ErrLeaseLost
	}
	defer db.outbox.end(l)
	return db.write(ctx, op, plan)
}

// RecordAttempt implements store.OutboxBackend.
func (db *Backend) RecordAttempt(ctx context.Context, key store.LaneKey, token, requestID string, a store.Attempt) error {
	return db.leasedWrite(ctx, "record attempt", key, token, func(r txReader) (outboxplan.Change, error) {
		return outboxplan.Attempt(r, key, requestID, a)
	})
}

// Complete implements store.OutboxBackend.
func (db *Backend) Complete(ctx context.Context, key store.LaneKey, token, requestID string, c store.Completion) error {
	return db.leasedWrite(ctx, "complete", key, token, func(r txReader) (outboxplan.Change, error) {
		return outboxplan.Complete(r, key, requestID, c)
	})
}

// ClaimCallbacks implements store.OutboxBackend. Claims are kept in memory.
func (db *Backend) ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*store.Entry, error) {
	if err := positive("claim callbacks", "lease", lease); err != nil {
		return nil, err
	}
	prefix, err := indexPrefix(clientID, kindCallback, "")
	if err != nil {
		return nil, fail("claim callbacks", err)
	}
	floor := outboxplan.Floor(now)
	// A claim lasts lease in real time, whatever now the caller asks
	// about (now only says what is due).
	clock := time.Now()
	var out []*store.Entry
	// The scan and the claims happen under the claims' lock, so that two
	// concurrent callers never both claim one callback. (Nothing takes
	// that lock inside a transaction, so holding it across one is safe.)
	db.outbox.cbmu.Lock()
	defer db.outbox.cbmu.Unlock()
	err = db.view(ctx, "claim callbacks", func(r txReader) error {
		c := r.tx.Bucket(bucketOutboxIndex).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			if len(k) < len(prefix)+8 {
				return errCorruptIndex
			}
			if readScore(k[len(prefix):]) > floor {
				break
			}
			key := store.RequestKey{ClientID: clientID, RequestID: string(k[len(prefix)+8:])}
			if until, ok := db.outbox.callbacks[key]; ok && clock.Before(until) {
				continue
			}
			e, err := r.Entry(key)
			if err != nil {
				return err
			}
			if e == nil || !e.Callback.Pending {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range out {
		db.outbox.claimCallback(store.RequestKey{ClientID: clientID, RequestID: e.RequestID}, clock.Add(lease))
	}
	return out, nil
}

// CallbackDone implements store.OutboxBackend.
func (db *Backend) CallbackDone(ctx context.Context, key store.RequestKey, webhookID string) error {
	err := db.write(ctx, "callback done", func(r txReader) (outboxplan.Change, error) {
		return outboxplan.CallbackDone(r, key, webhookID)
	})
	if err == nil {
		db.outbox.unclaimCallback(key)
	}
	return err
}

// CallbackRetry implements store.OutboxBackend.
func (db *Backend) CallbackRetry(ctx context.Context, key store.RequestKey, webhookID string, next time.Time, lastError string) error {
	err := db.write(ctx, "callback retry", func(r txReader) (outboxplan.Change, error) {
		return outboxplan.CallbackRetry(r, key, webhookID, next, lastError)
	})
	if err == nil {
		db.outbox.unclaimCallback(key)
	}
	return err
}

// ListEntries implements store.OutboxBackend.
func (db *Backend) ListEntries(ctx context.Context, clientID string, state store.EntryState, limit int) ([]*store.Entry, error) {
	if state != "" && !state.Valid() {
		return nil, fail("list entries", fmt.Errorf("unknown entry state %q", state))
	}
	var out []*store.Entry
	err := db.view(ctx, "list entries", func(r txReader) error {
		now := time.Now()
		if state == "" || state == store.EntryQueued {
			queued, err := scanState(r, clientID, store.EntryQueued, false, limit, now)
			if err != nil {
				return err
			}
			out = append(out, queued...)
		}
		var final []scored
		for _, s := range []store.EntryState{store.EntrySucceeded, store.EntryFailed, store.EntryExpired} {
			if state != "" && state != s {
				continue
			}
			got, err := scanStateScored(r, clientID, s, true, limit-len(out), now)
			if err != nil {
				return err
			}
			final = append(final, got...)
		}
		slices.SortStableFunc(final, func(a, b scored) int { return -cmpInt(a.score, b.score) })
		for _, f := range final {
			if len(out) == limit {
				break
			}
			out = append(out, f.e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type scored struct {
	score int64
	e     *store.Entry
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func scanState(r txReader, clientID string, state store.EntryState, desc bool, limit int, now time.Time) ([]*store.Entry, error) {
	got, err := scanStateScored(r, clientID, state, desc, limit, now)
	out := make([]*store.Entry, len(got))
	for i, s := range got {
		out[i] = s.e
	}
	return out, err
}

// scanStateScored walks one state's index, oldest or (desc) newest score
// first, and returns up to limit live entries.
func scanStateScored(r txReader, clientID string, state store.EntryState, desc bool, limit int, now time.Time) ([]scored, error) {
	if limit <= 0 {
		return nil, nil
	}
	prefix, err := indexPrefix(clientID, kindState, state)
	if err != nil {
		return nil, err
	}
	c := r.tx.Bucket(bucketOutboxIndex).Cursor()
	var k []byte
	step := c.Next
	if desc {
		step = c.Prev
		// The first key past the prefix, then one back.
		end := append(slices.Clip(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		if k, _ = c.Seek(end); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
	} else {
		k, _ = c.Seek(prefix)
	}
	var out []scored
	for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = step() {
		if len(k) < len(prefix)+8 {
			return nil, errCorruptIndex
		}
		e, err := r.Entry(store.RequestKey{ClientID: clientID, RequestID: string(k[len(prefix)+8:])})
		if err != nil {
			return nil, err
		}
		if outboxplan.Live(e, now) {
			out = append(out, scored{readScore(k[len(prefix):]), e})
		}
	}
	return out, nil
}

// RetryEntry implements store.OutboxBackend.
func (db *Backend) RetryEntry(ctx context.Context, key store.RequestKey, now time.Time) (*store.Entry, error) {
	var out *store.Entry
	err := db.write(ctx, "retry entry", func(r txReader) (outboxplan.Change, error) {
		c, e, err := outboxplan.Retry(r, key, now)
		out = e
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RequeueEntry implements store.OutboxBackend.
func (db *Backend) RequeueEntry(ctx context.Context, key store.RequestKey, laneVersion uint64, now time.Time) (*store.Entry, error) {
	var out *store.Entry
	err := db.write(ctx, "requeue entry", func(r txReader) (outboxplan.Change, error) {
		c, e, err := outboxplan.Requeue(r, key, laneVersion, now)
		out = e
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DropEntry implements store.OutboxBackend.
func (db *Backend) DropEntry(ctx context.Context, key store.RequestKey, d store.Drop) (*store.Entry, error) {
	var out *store.Entry
	err := db.write(ctx, "drop entry", func(r txReader) (outboxplan.Change, error) {
		c, e, err := outboxplan.Drop(r, key, d)
		out = e
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OutboxStats implements store.OutboxBackend. It counts index keys, so it
// costs a walk over the client's queued entries and pending callbacks.
func (db *Backend) OutboxStats(ctx context.Context, clientID string) (store.OutboxStats, error) {
	var st store.OutboxStats
	queued, err := indexPrefix(clientID, kindState, store.EntryQueued)
	if err != nil {
		return st, fail("outbox stats", err)
	}
	callbacks, err := indexPrefix(clientID, kindCallback, "")
	if err != nil {
		return st, fail("outbox stats", err)
	}
	err = db.view(ctx, "outbox stats", func(r txReader) error {
		c := r.tx.Bucket(bucketOutboxIndex).Cursor()
		for k, _ := c.Seek(queued); k != nil && bytes.HasPrefix(k, queued); k, _ = c.Next() {
			if st.Queued == 0 && len(k) >= len(queued)+8 {
				st.OldestQueuedAt = scoreTime(readScore(k[len(queued):]))
			}
			st.Queued++
		}
		for k, _ := c.Seek(callbacks); k != nil && bytes.HasPrefix(k, callbacks); k, _ = c.Next() {
			st.CallbacksPending++
		}
		return nil
	})
	return st, err
}

// sweepOutbox deletes the final entries whose retention ended and whose
// callback is not pending, in chunks like sweep, and drops the in-memory
// leases and callback claims that ended. It returns the number of entries
// deleted.
func (db *Backend) sweepOutbox(now time.Time) (int, error) {
	db.outbox.sweep(now)
	removed := 0
	floor := outboxplan.Floor(now)
	for {
		select {
		case <-db.stop:
			return removed, nil
		default:
		}
		var keys []store.RequestKey
		more := false
		err := db.bolt.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketOutboxExpiry).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if len(k) < 9 {
					return errCorruptIndex
				}
				if readScore(k) > floor {
					break
				}
				if len(keys) == sweepChunk {
					more = true
					break
				}
				client, id, ok := bytes.Cut(k[8:], []byte{0})
				if !ok {
					return errCorruptIndex
				}
				keys = append(keys, store.RequestKey{ClientID: string(client), RequestID: string(id)})
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return removed, err
		}
		// Plain Update, not Batch, as in sweep.
		err = db.bolt.Update(func(tx *bolt.Tx) error {
			for _, key := range keys {
				c, err := outboxplan.Sweep(txReader{tx}, key, now)
				if err != nil {
					return err
				}
				if err := apply(tx, c); err != nil {
					return err
				}
				removed += len(c.Entries)
			}
			return nil
		})
		if err != nil || !more {
			return removed, err
		}
	}
}

// logOutboxSweep reports a sweepOutbox, as sweepLoop reports sweep.
func (db *Backend) logOutboxSweep(removed int, err error) {
	switch {
	case err != nil && !db.closed():
		db.log.Error("sweeping expired outbox entries", zap.String("path", db.path), zap.Error(err))
	case removed > 0:
		db.log.Debug("swept expired outbox entries", zap.String("path", db.path), zap.Int("removed", removed))
	}
}

// outboxMem holds the lane leases and callback claims of one database
// file, in memory (see the top of this file). It lives in the Backend, which is
// shared by every handler using the file and survives config reloads.
//
// Invariant, kept under mu: a lease that is writing (a RecordAttempt or
// Complete under way) is neither taken over, even if its ttl ends during
// the fsync, nor swept; only its writer ends the write.
type outboxMem struct {
	mu     sync.Mutex
	leases map[store.LaneKey]*laneLease

	cbmu      sync.Mutex
	callbacks map[store.RequestKey]time.Time // claimed until
}

type laneLease struct {
	key     store.LaneKey
	token   string
	expires time.Time
	writing int
}

func (l *laneLease) live(now time.Time) bool { return l.writing > 0 || now.Before(l.expires) }

// leased reports whether someone holds the lane's lease.
func (m *outboxMem) leased(key store.LaneKey, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.leases[key]
	return l != nil && l.live(now)
}

func (m *outboxMem) lease(key store.LaneKey, token string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if l := m.leases[key]; l != nil && l.token != token && l.live(now) {
		return store.ErrLaneLeased
	}
	if l := m.leases[key]; l != nil && l.token == token {
		l.expires = now.Add(ttl)
		return nil
	}
	if m.leases == nil {
		m.leases = make(map[store.LaneKey]*laneLease)
	}
	m.leases[key] = &laneLease{key: key, token: token, expires: now.Add(ttl)}
	return nil
}

func (m *outboxMem) renew(key store.LaneKey, token string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	l := m.leases[key]
	if l == nil || l.token != token || !l.live(now) {
		return store.ErrLeaseLost
	}
	l.expires = now.Add(ttl)
	return nil
}

func (m *outboxMem) release(key store.LaneKey, token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.leases[key]; l != nil && l.token == token {
		delete(m.leases, key)
	}
}

// begin marks the live lease of key held by token as writing and returns
// it, or returns nil. Every non-nil result must be passed to end.
func (m *outboxMem) begin(key store.LaneKey, token string) *laneLease {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.leases[key]
	if l == nil || l.token != token || !l.live(time.Now()) {
		return nil
	}
	l.writing++
	return l
}

func (m *outboxMem) end(l *laneLease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.writing--
}

// claimCallback is called with cbmu held.
func (m *outboxMem) claimCallback(key store.RequestKey, until time.Time) {
	if m.callbacks == nil {
		m.callbacks = make(map[store.RequestKey]time.Time)
	}
	m.callbacks[key] = until
}

func (m *outboxMem) unclaimCallback(key store.RequestKey) {
	m.cbmu.Lock()
	defer m.cbmu.Unlock()
	delete(m.callbacks, key)
}

// sweep drops the leases and claims that ended.
func (m *outboxMem) sweep(now time.Time) {
	m.mu.Lock()
	for k, l := range m.leases {
		if !l.live(now) {
			delete(m.leases, k)
		}
	}
	m.mu.Unlock()
	m.cbmu.Lock()
	defer m.cbmu.Unlock()
	for k, until := range m.callbacks {
		if !now.Before(until) {
			delete(m.callbacks, k)
		}
	}
}

// Interface guard.
var _ store.OutboxBackend = (*Backend)(nil)

// The module is an outbox too: its embedded store.Handle forwards the
// outbox to the file's Backend.
var _ store.OutboxBackend = (*Store)(nil)
