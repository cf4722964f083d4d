package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/internal/outboxplan"
)

// The outbox (store.OutboxBackend). Each client's keys share one hash tag,
// the base <prefix>ob:{<clientId>}: (the Client-Id percent-escaped as in
// the ingress keys); after it the ids are verbatim:
//
//	<base>e:<requestId>       hash: v (store.EncodeEntry), w (write id); PEXPIREAT = end of retention once final with no callback pending
//	<base>l:<merchantBizNo>   hash: v (store.EncodeLaneRecord), w (write id)
//	<base>lease:<merchantBizNo>  string: the lease holder's token, PX = lease ttl
//	<base>due                 sorted set: merchantBizNo by its head's NextAttemptAt (epoch ms)
//	<base>cb                  sorted set: requestId by its pending callback's next time
//	<base>cbc:<requestId>     string: a callback's claim token, PX = claim lease
//	<base>st:<state>          sorted set: requestId by QueuedAt (queued) or end of retention (final)
//
// What a write changes is planned by package outboxplan from the records as
// read, each with its write id; applyScript then writes the records and
// moves the index entries only if none of them has been written since, and
// otherwise the records are read and the write planned again. A write that
// needs a lane's lease checks the lease key in the same script.

// outboxScanLimit bounds how many due lanes or callbacks a script examines
// beyond the ones it returns.
const outboxScanLimit = 1000

// conflictBackoff bounds the pause after a lost race on one record, so that
// writers of a hot lane do not retry in lockstep.
const conflictBackoff = 5 * time.Millisecond

func (c *Backend) outboxBase(clientID string) string {
	return c.prefix + "ob:{" + keyEscaper.Replace(clientID) + "}:"
}

func entrySuffix(requestID string) string { return "e:" + requestID }
func laneSuffix(mbn string) string        { return "l:" + mbn }
func leaseSuffix(mbn string) string       { return "lease:" + mbn }
func claimSuffix(requestID string) string { return "cbc:" + requestID }
func stateSuffix(s store.EntryState) string {
	return "st:" + string(s)
}

// record is one hash as read: its encoding and its write id.
type record struct {
	v, w string
	ok   bool
}

// reader reads one client's records for outboxplan, remembering each
// record's write id for applyScript's checks.
type reader struct {
	ctx    context.Context
	c      *Backend
	client string
	base   string
	read   map[string]record // by suffix
}

func (c *Backend) newReader(ctx context.Context, clientID string) *reader {
	return &reader{ctx: ctx, c: c, client: clientID, base: c.outboxBase(clientID), read: make(map[string]record)}
}

// fetch reads the records not read yet, in one round trip.
func (r *reader) fetch(suffixes ...string) error {
	var want []string
	for _, s := range suffixes {
		if _, ok := r.read[s]; !ok && !slices.Contains(want, s) {
			want = append(want, s)
		}
	}
	if len(want) == 0 {
		return nil
	}
	cmds := make([]*redis.SliceCmd, len(want))
	_, err := r.c.rdb.Pipelined(r.ctx, func(p redis.Pipeliner) error {
		for i, s := range want {
			cmds[i] = p.HMGet(r.ctx, r.base+s, "v", "w")
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, s := range want {
		vals := cmds[i].Val()
		var rec record
		if len(vals) == 2 {
			rec.v, rec.ok = vals[0].(string)
			rec.w, _ = vals[1].(string)
		}
		r.read[s] = rec
	}
	return nil
}

func (r *reader) Entry(key store.RequestKey) (*store.Entry, error) {
	if key.ClientID != r.client {
		return nil, errors.New("outbox plan read another client's entry")
	}
	s := entrySuffix(key.RequestID)
	if err := r.fetch(s); err != nil {
		return nil, err
	}
	rec := r.read[s]
	if !rec.ok {
		return nil, nil
	}
	return store.DecodeEntry([]byte(rec.v))
}

func (r *reader) Lane(key store.LaneKey) (*store.LaneRecord, error) {
	if key.ClientID != r.client {
		return nil, errors.New("outbox plan read another client's lane")
	}
	s := laneSuffix(key.MerchantBizNo)
	if err := r.fetch(s); err != nil {
		return nil, err
	}
	rec := r.read[s]
	if !rec.ok {
		return nil, nil
	}
	return store.DecodeLaneRecord([]byte(rec.v))
}

// applyArgs builds applyScript's arguments for ch, planned from r.
func applyArgs(r *reader, ch outboxplan.Change, wid, lease, token string, now time.Time) []any {
	primary := ""
	for _, ec := range ch.Entries {
		if ec.New != nil {
			primary = entrySuffix(ec.Key.RequestID)
			break
		}
	}
	args := []any{r.base, wid, primary, lease, token, outboxplan.Floor(now)}
	args = append(args, len(r.read))
	for _, s := range slices.Sorted(mapKeys(r.read)) {
		args = append(args, s, r.read[s].w)
	}
	args = append(args, len(ch.Entries)+len(ch.Lanes))
	for _, ec := range ch.Entries {
		v := ""
		if ec.New != nil {
			v = string(store.EncodeEntry(ec.New))
		}
		args = append(args, entrySuffix(ec.Key.RequestID), v)
	}
	for _, lc := range ch.Lanes {
		v := ""
		if lc.New != nil {
			v = string(store.EncodeLaneRecord(lc.New))
		}
		args = append(args, laneSuffix(lc.Key.MerchantBizNo), v)
	}
	var ops []any
	for _, op := range ch.Index() {
		switch op.Index {
		case outboxplan.IndexState, outboxplan.IndexCallback, outboxplan.IndexDue:
			set := "cb"
			switch op.Index {
			case outboxplan.IndexState:
				set = stateSuffix(op.State)
			case outboxplan.IndexDue:
				set = "due"
			}
			kind := "za"
			if op.Remove {
				kind = "zr"
			}
			ops = append(ops, kind, set, op.Member, op.Score)
		case outboxplan.IndexExpiry:
			if op.Remove {
				ops = append(ops, "ep", entrySuffix(op.Member), "", 0)
			} else {
				ops = append(ops, "ea", entrySuffix(op.Member), "", op.Score)
			}
		}
	}
	// A write that changes an entry's callback ends the callback's claim.
	for _, ec := range ch.Entries {
		if ec.Old != nil && (ec.New == nil || ec.Old.Callback != ec.New.Callback) {
			ops = append(ops, "d", claimSuffix(ec.Key.RequestID), "", 0)
		}
	}
	args = append(args, len(ops)/4)
	return append(args, ops...)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// write plans and applies one change of clientID's records, planning again
// after every lost race, until it is written, refused or ctx ends. With a
// lease (lane and token), the lease is checked in the same script.
func (c *Backend) write(ctx context.Context, op, clientID string, lease *store.LaneKey, token string, plan func(r *reader) (outboxplan.Change, error)) error {
	leaseKey := ""
	if lease != nil {
		leaseKey = leaseSuffix(lease.MerchantBizNo)
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fail(op, err)
		}
		r := c.newReader(ctx, clientID)
		ch, err := plan(r)
		if err != nil {
			if isRefusal(err) {
				return err
			}
			return fail(op, err)
		}
		if ch.Empty() {
			return nil
		}
		args := applyArgs(r, ch, rand.Text(), leaseKey, token, time.Now())
		res, err := applyScript.Run(ctx, c.rdb, nil, args...).Int()
		if err != nil {
			return fail(op, err)
		}
		switch res {
		case applyDone, applyAlready:
			return nil
		case applyLeaseLost:
			return store.ErrLeaseLost
		case applyConflict:
			if attempt >= 2 {
				t := time.NewTimer(mrand.N(conflictBackoff) + 1)
				select {
				case <-ctx.Done():
					t.Stop()
					return fail(op, ctx.Err())
				case <-t.C:
				}
			}
			continue
		}
		return fail(op, fmt.Errorf("unexpected script reply %d", res))
	}
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

// Enqueue implements store.OutboxBackend.
func (c *Backend) Enqueue(ctx context.Context, e store.Entry, laneVersion uint64) (*store.Entry, error) {
	var existing *store.Entry
	err := c.write(ctx, "enqueue", e.ClientID, nil, "", func(r *reader) (outboxplan.Change, error) {
		if err := r.fetch(entrySuffix(e.RequestID), laneSuffix(e.MerchantBizNo)); err != nil {
			return outboxplan.Change{}, err
		}
		ch, ex, err := outboxplan.Enqueue(r, e, laneVersion, time.Now())
		existing = ex
		return ch, err
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}

// GetEntry implements store.OutboxBackend.
func (c *Backend) GetEntry(ctx context.Context, key store.RequestKey) (*store.Entry, error) {
	e, err := c.newReader(ctx, key.ClientID).Entry(key)
	if err != nil {
		return nil, fail("get entry", err)
	}
	if !outboxplan.Live(e, time.Now()) {
		return nil, nil
	}
	return e, nil
}

// GetLane implements store.OutboxBackend. The lane is read, then its
// entries by a script that checks the lane has not moved, so that what is
// returned was all true at one instant.
func (c *Backend) GetLane(ctx context.Context, key store.LaneKey) (*store.Lane, error) {
	for {
		r := c.newReader(ctx, key.ClientID)
		rec, err := r.Lane(key)
		if err != nil {
			return nil, fail("get lane", err)
		}
		lane := &store.Lane{Key: key}
		if rec == nil {
			return lane, nil
		}
		lane.Version, lane.Accepted = rec.Version, rec.Accepted
		args := make([]any, 0, 3+len(rec.Queue))
		args = append(args, r.base, laneSuffix(key.MerchantBizNo), r.read[laneSuffix(key.MerchantBizNo)].w)
		for _, id := range rec.Queue {
			args = append(args, id)
		}
		blobs, err := laneScript.Run(ctx, c.rdb, nil, args...).StringSlice()
		if errors.Is(err, redis.Nil) {
			continue // the lane moved between the two reads
		}
		if err != nil {
			return nil, fail("get lane", err)
		}
		if len(blobs) != len(rec.Queue) {
			return nil, fail("get lane", fmt.Errorf("unexpected script reply of %d items", len(blobs)))
		}
		lane.Queued = make([]*store.Entry, len(blobs))
		for i, b := range blobs {
			if b == "" {
				return nil, fail("get lane", fmt.Errorf("lane %q lists entry %q, which does not exist", key.MerchantBizNo, rec.Queue[i]))
			}
			if lane.Queued[i], err = store.DecodeEntry([]byte(b)); err != nil {
				return nil, fail("get lane", err)
			}
		}
		return lane, nil
	}
}

// DueLanes implements store.OutboxBackend.
func (c *Backend) DueLanes(ctx context.Context, clientID string, now time.Time, limit int) (store.DueLanes, error) {
	var due store.DueLanes
	if limit <= 0 {
		return due, nil
	}
	base := c.outboxBase(clientID)
	res, err := dueScript.Run(ctx, c.rdb, []string{base + "due"}, base, outboxplan.Floor(now), limit, limit+outboxScanLimit).Slice()
	if err != nil {
		return due, fail("due lanes", err)
	}
	if len(res) != 2 {
		return due, fail("due lanes", fmt.Errorf("unexpected script reply of %d items", len(res)))
	}
	ids, _ := res[0].([]any)
	for _, id := range ids {
		s, _ := id.(string)
		due.Lanes = append(due.Lanes, store.LaneKey{ClientID: clientID, MerchantBizNo: s})
	}
	if next, ok := res[1].(string); ok {
		ms, err := strconv.ParseFloat(next, 64)
		if err != nil {
			return store.DueLanes{}, fail("due lanes", err)
		}
		due.Next = time.UnixMilli(int64(ms)).UTC()
	}
	return due, nil
}

// LeaseLane implements store.OutboxBackend.
func (c *Backend) LeaseLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	ms, err := millis("lease lane", "ttl", ttl)
	if err != nil {
		return err
	}
	got, err := leaseScript.Run(ctx, c.rdb, []string{c.outboxBase(key.ClientID) + leaseSuffix(key.MerchantBizNo)}, token, ms).Int()
	if err != nil {
		return fail("lease lane", err)
	}
	if got != 1 {
		return store.ErrLaneLeased
	}
	return nil
}

// RenewLane implements store.OutboxBackend.
func (c *Backend) RenewLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	ms, err := millis("renew lane", "ttl", ttl)
	if err != nil {
		return err
	}
	got, err := renewScript.Run(ctx, c.rdb, []string{c.outboxBase(key.ClientID) + leaseSuffix(key.MerchantBizNo)}, token, ms).Int()
	if err != nil {
		return fail("renew lane", err)
	}
	if got != 1 {
		return store.ErrLeaseLost
	}
	return nil
}

// ReleaseLane implements store.OutboxBackend.
func (c *Backend) ReleaseLane(ctx context.Context, key store.LaneKey, token string) error {
	if err := unlockScript.Run(ctx, c.rdb, []string{c.outboxBase(key.ClientID) + leaseSuffix(key.MerchantBizNo)}, token).Err(); err != nil {
		return fail("release lane", err)
	}
	return nil
}

// RecordAttempt implements store.OutboxBackend.
func (c *Backend) RecordAttempt(ctx context.Context, key store.LaneKey, token, requestID string, a store.Attempt) error {
	return c.write(ctx, "record attempt", key.ClientID, &key, token, func(r *reader) (outboxplan.Change, error) {
		if err := r.fetch(laneSuffix(key.MerchantBizNo), entrySuffix(requestID)); err != nil {
			return outboxplan.Change{}, err
		}
		return outboxplan.Attempt(r, key, requestID, a)
	})
}

// Complete implements store.OutboxBackend.
func (c *Backend) Complete(ctx context.Context, key store.LaneKey, token, requestID string, cp store.Completion) error {
	return c.write(ctx, "complete", key.ClientID, &key, token, func(r *reader) (outboxplan.Change, error) {
		if err := r.fetch(laneSuffix(key.MerchantBizNo), entrySuffix(requestID)); err != nil {
			return outboxplan.Change{}, err
		}
		return outboxplan.Complete(r, key, requestID, cp)
	})
}

// ClaimCallbacks implements store.OutboxBackend.
func (c *Backend) ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*store.Entry, error) {
	ms, err := millis("claim callbacks", "lease", lease)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	base := c.outboxBase(clientID)
	ids, err := claimCallbacksScript.Run(ctx, c.rdb, []string{base + "cb"}, base, outboxplan.Floor(now), limit,
		limit+outboxScanLimit, rand.Text(), ms).StringSlice()
	if err != nil {
		return nil, fail("claim callbacks", err)
	}
	r := c.newReader(ctx, clientID)
	suffixes := make([]string, len(ids))
	for i, id := range ids {
		suffixes[i] = entrySuffix(id)
	}
	if err := r.fetch(suffixes...); err != nil {
		return nil, fail("claim callbacks", err)
	}
	var out []*store.Entry
	for _, id := range ids {
		e, err := r.Entry(store.RequestKey{ClientID: clientID, RequestID: id})
		if err != nil {
			return nil, fail("claim callbacks", err)
		}
		if e != nil && e.Callback.Pending {
			out = append(out, e)
		}
	}
	return out, nil
}

// CallbackDone implements store.OutboxBackend.
func (c *Backend) CallbackDone(ctx context.Context, key store.RequestKey, webhookID string) error {
	return c.write(ctx, "callback done", key.ClientID, nil, "", func(r *reader) (outboxplan.Change, error) {
		return outboxplan.CallbackDone(r, key, webhookID)
	})
}

// CallbackRetry implements store.OutboxBackend.
func (c *Backend) CallbackRetry(ctx context.Context, key store.RequestKey, webhookID string, next time.Time, lastError string) error {
	return c.write(ctx, "callback retry", key.ClientID, nil, "", func(r *reader) (outboxplan.Change, error) {
		return outboxplan.CallbackRetry(r, key, webhookID, next, lastError)
	})
}

// ListEntries implements store.OutboxBackend.
func (c *Backend) ListEntries(ctx context.Context, clientID string, state store.EntryState, limit int) ([]*store.Entry, error) {
	if state != "" && !state.Valid() {
		return nil, fail("list entries", fmt.Errorf("unknown entry state %q", state))
	}
	if limit <= 0 {
		return nil, nil
	}
	base := c.outboxBase(clientID)
	now := time.Now()
	var queued *redis.StringSliceCmd
	var final []*redis.ZSliceCmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if state == "" || state == store.EntryQueued {
			queued = p.ZRange(ctx, base+stateSuffix(store.EntryQueued), 0, int64(limit-1))
		}
		for _, s := range []store.EntryState{store.EntrySucceeded, store.EntryFailed, store.EntryExpired} {
			if state == "" || state == s {
				// Members whose retention ended are left out: their
				// keys have expired, or are about to.
				final = append(final, p.ZRevRangeByScoreWithScores(ctx, base+stateSuffix(s), &redis.ZRangeBy{
					Max: "+inf", Min: "(" + strconv.FormatInt(outboxplan.Floor(now), 10), Count: int64(limit),
				}))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fail("list entries", err)
	}
	var ids []string
	if queued != nil {
		ids = queued.Val()
	}
	var zs []redis.Z
	for _, cmd := range final {
		zs = append(zs, cmd.Val()...)
	}
	slices.SortStableFunc(zs, func(a, b redis.Z) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	for _, z := range zs {
		s, _ := z.Member.(string)
		ids = append(ids, s)
	}
	ids = ids[:min(len(ids), limit)]
	r := c.newReader(ctx, clientID)
	suffixes := make([]string, len(ids))
	for i, id := range ids {
		suffixes[i] = entrySuffix(id)
	}
	if err := r.fetch(suffixes...); err != nil {
		return nil, fail("list entries", err)
	}
	out := make([]*store.Entry, 0, len(ids))
	for _, id := range ids {
		e, err := r.Entry(store.RequestKey{ClientID: clientID, RequestID: id})
		if err != nil {
			return nil, fail("list entries", err)
		}
		if outboxplan.Live(e, now) {
			out = append(out, e)
		}
	}
	return out, nil
}

// entryAction runs an operator action on one entry: the entry is read
// first, then its lane (which the plan reads through r).
func (c *Backend) entryAction(ctx context.Context, op string, key store.RequestKey, plan func(r *reader) (outboxplan.Change, *store.Entry, error)) (*store.Entry, error) {
	var out *store.Entry
	err := c.write(ctx, op, key.ClientID, nil, "", func(r *reader) (outboxplan.Change, error) {
		ch, e, err := plan(r)
		out = e
		return ch, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RetryEntry implements store.OutboxBackend.
func (c *Backend) RetryEntry(ctx context.Context, key store.RequestKey, now time.Time) (*store.Entry, error) {
	return c.entryAction(ctx, "retry entry", key, func(r *reader) (outboxplan.Change, *store.Entry, error) {
		return outboxplan.Retry(r, key, now)
	})
}

// RequeueEntry implements store.OutboxBackend.
func (c *Backend) RequeueEntry(ctx context.Context, key store.RequestKey, laneVersion uint64, now time.Time) (*store.Entry, error) {
	return c.entryAction(ctx, "requeue entry", key, func(r *reader) (outboxplan.Change, *store.Entry, error) {
		return outboxplan.Requeue(r, key, laneVersion, now)
	})
}

// DropEntry implements store.OutboxBackend.
func (c *Backend) DropEntry(ctx context.Context, key store.RequestKey, d store.Drop) (*store.Entry, error) {
	return c.entryAction(ctx, "drop entry", key, func(r *reader) (outboxplan.Change, *store.Entry, error) {
		return outboxplan.Drop(r, key, d)
	})
}

// OutboxStats implements store.OutboxBackend.
func (c *Backend) OutboxStats(ctx context.Context, clientID string) (store.OutboxStats, error) {
	var st store.OutboxStats
	base := c.outboxBase(clientID)
	var depth, callbacks *redis.IntCmd
	var oldest *redis.ZSliceCmd
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		depth = p.ZCard(ctx, base+stateSuffix(store.EntryQueued))
		oldest = p.ZRangeWithScores(ctx, base+stateSuffix(store.EntryQueued), 0, 0)
		callbacks = p.ZCard(ctx, base+"cb")
		return nil
	})
	if err != nil {
		return st, fail("outbox stats", err)
	}
	st.Queued, st.CallbacksPending = int(depth.Val()), int(callbacks.Val())
	if z := oldest.Val(); len(z) == 1 {
		st.OldestQueuedAt = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	return st, nil
}

// Interface guard.
var _ store.OutboxBackend = (*Backend)(nil)

// The module is an outbox too: its embedded store.Handle forwards the
// outbox to the Backend.
var _ store.OutboxBackend = (*Store)(nil)
