// Package bboltstore keeps the gateway's state in a bbolt file: the
// default store, for a single Caddy instance.
//
// The file has three buckets:
//
//	orders    clientId NUL merchantBizNo → the order (store.EncodeOrder)
//	requests  clientId NUL requestId     → the done record (see codec.go)
//	meta      "format"                   → the file format version
//
// Every write that is acknowledged is on disk: writes go through group
// commit (committer, group.go), which runs concurrent writers in one
// transaction and one commit, and returns only once that transaction
// committed, which bbolt does only once its pages are fdatasynced.
//
// bbolt takes an exclusive lock on the file, so one file is used by one
// process, and within it by one Backend. The Caddy module (Store) shares
// the Backend of a path between every handler and across config reloads
// through a caddy.UsagePool. Order locks are therefore in-process, kept in
// the Backend.
//
// For the same reason in-flight claims are kept in memory, in the Backend
// (see claimTable), and only done records (Finish, CommitSuccess) are
// written to the file. A claim is only worth anything to the process that
// holds it: were it written, a claim left by a process that died (or a
// Backend that was closed) mid-flight would have to be treated as expired
// at once by the next one anyway, since its owner can never finish it.
// Keeping claims in memory gives exactly that, and saves the fsync of a
// write per new request: a first-time request costs one fsync (its done
// record), and a Claim or Release costs none.
//
// Expired replay records read as absent and are deleted by a sweeper
// goroutine that runs while the Backend is open; it drops claims whose
// lease ended too. Orders never expire.
//
// The egress outbox (store.OutboxBackend) has four buckets of its own in
// the same file, apart from the orders and replay records; see outbox.go.
// Its lane leases are in memory for the reason claims are; its final
// entries are swept by the same goroutine once their retention ended.
package bboltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/store"
)

// Defaults for Options.
const (
	// DefaultTimeout bounds the wait for the file lock. bbolt waits
	// forever without one, which would hang a config load (or
	// `caddy validate`) while another process has the file open.
	DefaultTimeout = 5 * time.Second
	// DefaultSweepInterval is how often expired replay records are deleted.
	DefaultSweepInterval = time.Minute
)

// formatVersion is written to the meta bucket so that a later, incompatible
// layout refuses to open an old file instead of misreading it. Versions 1
// and 2 were development builds (1 kept orders as JSON, 2 had request
// records for in-flight claims).
const formatVersion = "3"

// sweepChunk bounds the keys examined per read transaction and deleted per
// write transaction by the sweeper, so that it never holds the write lock
// (or pins old pages with a long read) for long.
const sweepChunk = 1000

var (
	bucketOrders   = []byte("orders")
	bucketRequests = []byte("requests")
	bucketMeta     = []byte("meta")
	keyFormat      = []byte("format")
)

// Options configures Open.
type Options struct {
	// Path is the bbolt file; it is created, with its parent directories,
	// if it does not exist. Required.
	Path string
	// Timeout is how long Open waits for the file lock held by another
	// process before failing. Zero means DefaultTimeout.
	Timeout time.Duration
	// SweepInterval is how often expired replay records are deleted. Zero
	// means DefaultSweepInterval; negative turns the sweeper off (expired
	// records still read as absent).
	SweepInterval time.Duration
	// BatchDelay is how long a write that starts a transaction waits for
	// others to join it before committing. Zero, the default, waits not at
	// all: the writes that arrive while a commit is under way share the
	// next one anyway (see committer), so a delay only adds latency. Tests
	// use it to put writes in one transaction.
	BatchDelay time.Duration
	// Logger receives the sweeper's reports. Nil means no logging.
	Logger *zap.Logger
}

// Backend is a bbolt file opened as a store.Backend. It is safe for
// concurrent use. Close it when done; operations after Close fail.
type Backend struct {
	bolt   *bolt.DB
	path   string
	log    *zap.Logger
	locks  lockTable
	claims claimTable
	outbox outboxMem
	group  committer

	stop      chan struct{}
	sweeping  sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens the bbolt file at opts.Path, creating it (and its parent
// directories) if needed.
func Open(opts Options) (*Backend, error) {
	path := opts.Path
	if path == "" {
		return nil, fail("open", errors.New("empty file path"))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	// The file holds replay records (signed replies) and order state:
	// nothing for other users to read.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fail("creating the directory of "+path, err)
	}
	bdb, err := openBolt(path, opts.Timeout)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fail("opening "+path, fmt.Errorf("%w after %v: the file is locked by another process, "+
			"usually another running Caddy (use 'caddy reload' to change its config) or a tool holding it open", err, opts.Timeout))
	}
	if err != nil {
		return nil, fail("opening "+path, err)
	}
	if err := bdb.Update(initBuckets); err != nil {
		_ = bdb.Close()
		return nil, fail("opening "+path, err)
	}
	db := &Backend{
		bolt:  bdb,
		path:  path,
		log:   opts.Logger,
		group: committer{db: bdb, delay: opts.BatchDelay},
		stop:  make(chan struct{}),
	}
	if opts.SweepInterval > 0 {
		db.sweeping.Add(1)
		go db.sweepLoop(opts.SweepInterval)
	}
	return db, nil
}

// openBolt opens the file with the options every commit depends on.
//
// The freelist (the file's free pages) is not written to the file
// (NoFreelistSync): bbolt would otherwise write the whole list with every
// commit, a page per 512 free pages, and a file whose records expire has
// thousands (measured on a file of 60k records, a third swept: a third
// fewer pages and a third less CPU per committed request). On open bbolt
// rebuilds it by walking the tree instead, about 30ms for a 135MB file
// whose pages are cached, and one read of the file when they are not.
// This costs no safety: the freelist is derived from the tree, which
// commits keep consistent with their two fdatasyncs (pages, then the meta
// page that makes them current) whatever the setting; a crash leaves the
// last committed tree, from which the next open derives the free pages.
// A file written so opens in bbolt tools and in builds that write the
// freelist (bbolt writes it then, on open).
//
// The walk also checks the tree, and bbolt's checker panics (in a
// goroutine of its own, so nothing here can recover it) on a page it
// cannot follow: a file damaged on disk stops Caddy at start, naming the
// page, where with a synced freelist the first transaction to read the
// damaged page would have panicked instead, later.
func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// The map freelist stays fast as the file fragments, which a
		// store of expiring records does.
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
	})
}

func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyFormat); {
	case v == nil:
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
	case string(v) != formatVersion:
		return fmt.Errorf("file format %q is not supported (want %q); it was written by another version of this module: "+
			"move the file away to start with an empty state", v, formatVersion)
	}
	for _, name := range append([][]byte{bucketOrders, bucketRequests}, outboxBuckets...) {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the sweeper and closes the file, releasing its lock. It
// waits for running transactions. Calling it again returns the first
// result.
func (db *Backend) Close() error {
	db.closeOnce.Do(func() {
		close(db.stop)
		db.sweeping.Wait()
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fail("closing "+db.path, err)
		}
	})
	return db.closeErr
}

func fail(op string, err error) error { return &store.Error{Backend: "bbolt", Op: op, Err: err} }

// positive applies store.CheckDuration to a lease or TTL of op.
func positive(op, what string, d time.Duration) error {
	if err := store.CheckDuration(what, d); err != nil {
		return fail(op, err)
	}
	return nil
}

// closed reports whether Close was called, for the operations that may not
// touch the file.
func (db *Backend) closed() bool {
	select {
	case <-db.stop:
		return true
	default:
		return false
	}
}

// examine decides a Claim from the stored record v, if it is live.
func examine(v []byte, hash store.BodyHash, now time.Time) (res store.ClaimResult, live bool, err error) {
	if v == nil {
		return res, false, nil
	}
	r, err := parseRecord(v)
	if err != nil {
		return res, false, err
	}
	if !r.live(now) {
		return res, false, nil
	}
	if r.hash != hash {
		return store.ClaimResult{Status: store.Mismatch}, true, nil
	}
	res.Reply, err = store.DecodeReply(r.reply)
	if err != nil {
		return store.ClaimResult{}, false, err
	}
	res.Status = store.Done
	return res, true, nil
}

// readDone decides a Claim from the file alone: Done or Mismatch if it
// holds a live done record for k.
func (db *Backend) readDone(k []byte, hash store.BodyHash) (res store.ClaimResult, live bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		res, live, err = examine(tx.Bucket(bucketRequests).Get(k), hash, time.Now())
		return err
	})
	return res, live, err
}

// fillPercent is how full bbolt fills the pages it splits, in the
// buckets that grow with traffic (orders, requests). Its default, half,
// suits keys that arrive in random order; ids that grow, as merchants'
// order numbers and request ids often do, are inserted at the right edge
// of the tree, where half-filled pages stay half empty: twice the pages
// to read and write. At 0.9, measured with storetest.Bench (first-time
// path, 32 writers): with increasing ids 0.75 -> 0.53 pages written per
// request; with random ids no change.
const fillPercent = 0.9

// writable returns the bucket for writing in tx, set up as above.
func writable(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = fillPercent
	return b
}

// testHookClaimRead, if set, runs in Claim between its first read of the
// file and taking the claim table's lock.
var testHookClaimRead func()

// Claim implements store.Backend. It writes nothing to the file: the claim
// is kept in memory (see claimTable).
func (db *Backend) Claim(ctx context.Context, key store.RequestKey, hash store.BodyHash, token string, lease time.Duration) (store.ClaimResult, error) {
	if err := positive("claim", "lease", lease); err != nil {
		return store.ClaimResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.ClaimResult{}, fail("claim", err)
	}
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return store.ClaimResult{}, fail("claim", err)
	}
	// Replays, the common answer, need only a read transaction, which
	// waits for no writer and takes no lock of ours.
	ended := db.claims.ended.Load()
	res, live, err := db.readDone(k, hash)
	if err != nil {
		return store.ClaimResult{}, fail("claim", err)
	}
	if live {
		return res, nil
	}
	if testHookClaimRead != nil {
		testHookClaimRead()
	}

	ks := string(k)
	db.claims.mu.Lock()
	defer db.claims.mu.Unlock()
	if c := db.claims.get(ks); c != nil && c.live(time.Now()) {
		if c.token == token && !c.committing {
			return store.ClaimResult{Status: store.Claimed}, nil
		}
		// Whatever its body: Mismatch is only said against a done record.
		return store.ClaimResult{Status: store.InFlight}, nil
	}
	// No live claim. Its done record may have been written since the read
	// above, by a commit that ended in between: if any commit ended
	// since (claimTable.ended), read again. With the lock held and no
	// live claim, no done record of k can appear until ours is in place.
	if db.claims.ended.Load() != ended {
		res, live, err = db.readDone(k, hash)
		if err != nil {
			return store.ClaimResult{}, fail("claim", err)
		}
		if live {
			return res, nil
		}
	}
	// Replaces an expired claim, if any: taken over, its owner's Finish
	// and CommitSuccess now fail with ErrNotOwner.
	db.claims.put(ks, &heldClaim{hash: hash, token: token, expires: time.Now().Add(lease)})
	return store.ClaimResult{Status: store.Claimed}, nil
}

// Release implements store.Backend. It writes nothing to the file. A claim
// whose Finish or CommitSuccess is under way is not released.
func (db *Backend) Release(ctx context.Context, key store.RequestKey, token string) error {
	if err := ctx.Err(); err != nil {
		return fail("release", err)
	}
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return fail("release", err)
	}
	if db.closed() {
		return fail("release", bolterrors.ErrDatabaseNotOpen)
	}
	db.claims.release(string(k), token)
	return nil
}

// Finish implements store.Backend. A claim whose lease ended but that nobody
// took over can still be finished (see claimTable.begin).
func (db *Backend) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	if err := positive("finish", "ttl", ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail("finish", err)
	}
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return fail("finish", err)
	}
	enc := store.EncodeReply(reply)
	// Marked committing, the claim cannot be taken over while the record
	// is written, even if its lease ends during the fsync.
	c := db.claims.begin(string(k), token)
	if c == nil {
		return store.ErrNotOwner
	}
	err = db.group.write(func(tx *bolt.Tx) error {
		return writable(tx, bucketRequests).Put(k, encodeRecord(c.hash, time.Now().Add(ttl), enc))
	})
	db.claims.end(string(k), c, err == nil)
	if err != nil {
		return fail("finish", err)
	}
	return nil
}

// FinishUnlock implements store.UnlockingWriter: Finish, then on success
// the order lock released in the same call. The lock is in memory, so
// this is what the Store would otherwise do in a background step of its
// own (a goroutine, a context and a timer per request).
func (db *Backend) FinishUnlock(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration, okey store.OrderKey, lockToken string) error {
	if err := db.Finish(ctx, key, token, reply, ttl); err != nil {
		return err
	}
	db.locks.release(okey, lockToken)
	return nil
}

// CommitSuccessUnlock implements store.UnlockingWriter as FinishUnlock
// does for CommitSuccess.
func (db *Backend) CommitSuccessUnlock(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration, lockToken string) error {
	if err := db.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl); err != nil {
		return err
	}
	db.locks.release(okey, lockToken)
	return nil
}

// LockOrder implements store.Backend. The lock is in-process: bbolt's file
// lock already keeps other processes out of the file.
func (db *Backend) LockOrder(ctx context.Context, key store.OrderKey, token string, lease time.Duration) error {
	if err := positive("lock order", "lease", lease); err != nil {
		return err
	}
	return db.locks.acquire(ctx, key, token, lease)
}

// UnlockOrder implements store.Backend.
func (db *Backend) UnlockOrder(ctx context.Context, key store.OrderKey, token string) error {
	if err := ctx.Err(); err != nil {
		return fail("unlock order", err)
	}
	db.locks.release(key, token)
	return nil
}

// GetOrder implements store.Backend.
func (db *Backend) GetOrder(ctx context.Context, key store.OrderKey) (*store.Order, error) {
	if err := ctx.Err(); err != nil {
		return nil, fail("get order", err)
	}
	k, err := joinKey(key.ClientID, key.MerchantBizNo)
	if err != nil {
		return nil, fail("get order", err)
	}
	var o *store.Order
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOrders).Get(k)
		if v == nil {
			return nil
		}
		var err error
		o, err = store.DecodeOrder(v)
		return err
	})
	if err != nil {
		return nil, fail("get order", err)
	}
	return o, nil
}

// CommitSuccess implements store.Backend. Ownership is checked before the
// order, so a caller whose claim was taken over gets ErrNotOwner even if
// the order also moved on.
func (db *Backend) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	if err := positive("commit success", "ttl", ttl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail("commit success", err)
	}
	ok, err := joinKey(okey.ClientID, okey.MerchantBizNo)
	if err != nil {
		return fail("commit success", err)
	}
	rk, err := joinKey(rkey.ClientID, rkey.RequestID)
	if err != nil {
		return fail("commit success", err)
	}
	order := store.EncodeOrder(next)
	enc := store.EncodeReply(reply)
	// As in Finish: the claim stays ours, and blocks its key, until the
	// write is over.
	c := db.claims.begin(string(rk), token)
	if c == nil {
		return store.ErrNotOwner
	}
	var result error
	err = db.group.write(func(tx *bolt.Tx) error {
		// It may run more than once (see committer): start from nothing each time.
		result = nil
		requests, orders := writable(tx, bucketRequests), writable(tx, bucketOrders)
		var stored *store.Order
		if v := orders.Get(ok); v != nil {
			if stored, err = store.DecodeOrder(v); err != nil {
				return err
			}
		}
		if !store.SameVersion(stored, prev) {
			result = store.ErrConflict
			return nil
		}
		if err := orders.Put(ok, order); err != nil {
			return err
		}
		return requests.Put(rk, encodeRecord(c.hash, time.Now().Add(ttl), enc))
	})
	db.claims.end(string(rk), c, err == nil && result == nil)
	if err != nil {
		return fail("commit success", err)
	}
	return result
}

// GetRequest implements store.Backend.
func (db *Backend) GetRequest(ctx context.Context, key store.RequestKey) (*store.RequestRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, fail("get request", err)
	}
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return nil, fail("get request", err)
	}
	ended := db.claims.ended.Load()
	rec, err := db.readRecord(k)
	if err != nil {
		return nil, fail("get request", err)
	}
	if rec != nil {
		return rec, nil
	}
	// As in Claim: a claim's done record may have been written since the
	// read, so under the lock read the file again if no claim is live and
	// a commit ended since.
	db.claims.mu.Lock()
	defer db.claims.mu.Unlock()
	if c := db.claims.get(string(k)); c != nil && c.live(time.Now()) {
		return &store.RequestRecord{BodyHash: c.hash, ExpiresAt: c.expires}, nil
	}
	if db.claims.ended.Load() == ended {
		return nil, nil
	}
	rec, err = db.readRecord(k)
	if err != nil {
		return nil, fail("get request", err)
	}
	return rec, nil
}

// readRecord returns the live done record of k in the file, or nil.
func (db *Backend) readRecord(k []byte) (*store.RequestRecord, error) {
	var rec *store.RequestRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRequests).Get(k)
		if v == nil {
			return nil
		}
		r, err := parseRecord(v)
		if err != nil {
			return err
		}
		if !r.live(time.Now()) {
			return nil
		}
		reply, err := store.DecodeReply(r.reply)
		if err != nil {
			return err
		}
		rec = &store.RequestRecord{BodyHash: r.hash, Done: true, Reply: reply, ExpiresAt: time.Unix(0, r.expires)}
		return nil
	})
	return rec, err
}

// Interface guard.
var (
	_ store.Backend         = (*Backend)(nil)
	_ store.ReplyReader     = (*Backend)(nil)
	_ store.UnlockingWriter = (*Backend)(nil)
)

// StoredReply implements store.ReplyReader: one read transaction, which
// waits for no writer and takes no lock of ours. Done records are only
// written once final (claims are in memory), so a live one of the same
// body is the answer Claim would replay.
func (db *Backend) StoredReply(ctx context.Context, key store.RequestKey, hash store.BodyHash) (*store.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fail("stored reply", err)
	}
	k, err := joinKey(key.ClientID, key.RequestID)
	if err != nil {
		return nil, fail("stored reply", err)
	}
	res, _, err := db.readDone(k, hash)
	if err != nil {
		return nil, fail("stored reply", err)
	}
	if res.Status != store.Done {
		return nil, nil
	}
	return res.Reply, nil
}
