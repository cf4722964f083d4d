// Package redisstore keeps the gateway's state in Redis, so that any number
// of Caddy instances behind a load balancer share one view of every order
// and every requestId.
//
// Every state change is one Lua script run by the server (EVALSHA, falling
// back to EVAL when the server's script cache is cold), so a change is
// either applied whole or not at all and no two instances can interleave
// inside one. Leases are Redis key expiries (PX): the server's clock ends a
// claim or an order lock, never a client's, so clock skew between instances
// cannot make two of them believe they hold the same thing.
//
// # Key layout
//
// With the default prefix "alipay_order_sync:":
//
//	<prefix>order:{<clientId>:<merchantBizNo>}   hash: s, m, r (status, modifyTime, requestId), o (the order)
//	<prefix>lock:{<clientId>:<merchantBizNo>}    string: the lock holder's token, PX = lock lease
//	<prefix>req:{<clientId>:<requestId>}         hash: h (body hash), d (0 in flight, 1 done), t (claim token), r (reply); PX = lease or TTL
//
// In the parts between the braces '%', ':', '{' and '}' are percent-escaped,
// so that ids containing ':' cannot collide ("a:b"+"c" vs "a"+"b:c") and ids
// containing braces cannot break the hash tag. An order's two keys share a
// hash tag and so a Redis Cluster slot.
//
// The egress outbox (store.OutboxBackend) has keys of its own, all of one
// client under one hash tag:
//
//	<prefix>ob:{<clientId>}:e:<requestId>          hash: v (the entry), w (write id); PEXPIREAT = end of retention
//	<prefix>ob:{<clientId>}:l:<merchantBizNo>      hash: v (the lane), w (write id)
//	<prefix>ob:{<clientId>}:lease:<merchantBizNo>  string: the lane lease holder's token, PX = lease
//	<prefix>ob:{<clientId>}:due                    sorted set: lanes by their head's next attempt
//	<prefix>ob:{<clientId>}:cb                     sorted set: pending callbacks by their next attempt
//	<prefix>ob:{<clientId>}:cbc:<requestId>        string: a callback's claim, PX = claim lease
//	<prefix>ob:{<clientId>}:st:<state>             sorted set: entries by state
//
// (see outbox.go). Only the Client-Id is escaped; the ids after the tag are
// verbatim.
//
// # Deployment
//
// CommitSuccess writes an order key and a request key in one script, and
// ClaimOrder (claim, lock and read: the first-time path's first round trip)
// touches a request key and an order's keys. On a standalone server (or a
// Sentinel-managed primary) that is atomic; on Redis Cluster the keys may
// live in different slots and the script would be refused, so only standalone and Sentinel-style deployments are supported
// for now. Order keys, outbox lanes and queued outbox entries never expire:
// run the server with a maxmemory-policy that does not evict them
// (noeviction; a volatile-* policy may evict final outbox entries and
// replay records before their time), and with
// persistence (AOF) if losing a few writes on a crash is unacceptable —
// a reply is acknowledged once the server applied the write, not once it
// reached disk.
//
// The Store type is the Caddy module http.alipay_order_sync.stores.redis;
// Backend is the plain Go API it wraps.
package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-alipay/ordersync/store"
)

// DefaultKeyPrefix is the key prefix used when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "alipay_order_sync:"

// Defaults for Options. They are shorter than go-redis's own (5s) because a
// caller of the gateway is waiting: an unreachable Redis must turn into an
// UNKNOWN_EXCEPTION answer quickly, not after the caller gave up.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultReadTimeout = 2 * time.Second
)

// Lock polling backoff: short enough that a released lock is picked up
// promptly, jittered so that instances waiting on one order do not retry
// in lockstep.
const (
	lockMinBackoff = 5 * time.Millisecond
	lockMaxBackoff = 50 * time.Millisecond
)

// Options configures Open.
type Options struct {
	// Addr is the server's host:port. Required.
	Addr string
	// Username and Password authenticate with AUTH (Username empty means
	// the default user).
	Username string
	Password string
	// DB is the database number selected on every connection.
	DB int
	// KeyPrefix starts every key; DefaultKeyPrefix when empty. Instances
	// that must share state must use the same prefix and DB. A prefix
	// containing '{' would make it the Cluster hash tag of every key.
	KeyPrefix string
	// TLS, when non-nil, makes every connection use TLS with this config.
	TLS *tls.Config
	// DialTimeout bounds one connection attempt (DefaultDialTimeout if 0).
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound one command's socket I/O
	// (DefaultReadTimeout if 0; WriteTimeout follows ReadTimeout if 0).
	// Context deadlines apply as well.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// PoolSize is the maximum number of connections (go-redis's default,
	// 10 per CPU, if 0).
	PoolSize int
}

// Backend is a store.Backend on one Redis server. It is safe for
// concurrent use; Close it when done.
type Backend struct {
	rdb    *redis.Client
	prefix string
}

// Open returns a Backend for opts. It does not contact the server: the
// first operation connects (and a server that is down is reported by the
// operations, until it is back).
func Open(opts Options) (*Backend, error) {
	if opts.Addr == "" {
		return nil, fail("open", errors.New("address is required"))
	}
	if opts.DB < 0 {
		return nil, fail("open", fmt.Errorf("db must be >= 0, got %d", opts.DB))
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = opts.ReadTimeout
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:         opts.Addr,
		Username:     opts.Username,
		Password:     opts.Password,
		DB:           opts.DB,
		TLSConfig:    opts.TLS,
		DialTimeout:  opts.DialTimeout,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		PoolSize:     opts.PoolSize,
		// go-redis retries a dial 5 times by default; with a refused
		// connection that only delays the error the caller must see.
		DialerRetries: 2,
		// Let the request's deadline cut a slow command short instead of
		// waiting for the socket timeouts.
		ContextTimeoutEnabled: true,
		ClientName:            "alipay_order_sync",
	})
	return &Backend{rdb: rdb, prefix: opts.KeyPrefix}, nil
}

// Close closes the connections. Operations after Close fail.
func (c *Backend) Close() error {
	if err := c.rdb.Close(); err != nil {
		return fail("close", err)
	}
	return nil
}

// Claim implements store.Backend.
func (c *Backend) Claim(ctx context.Context, key store.RequestKey, hash store.BodyHash, token string, lease time.Duration) (store.ClaimResult, error) {
	ms, err := millis("claim", "lease", lease)
	if err != nil {
		return store.ClaimResult{}, err
	}
	res, err := claimScript.Run(ctx, c.rdb, []string{c.requestKey(key)}, hex.EncodeToString(hash[:]), token, ms).Slice()
	if err != nil {
		return store.ClaimResult{}, fail("claim", err)
	}
	cr, _, _, err := parseClaim(res)
	return cr, err
}

// ClaimOrder implements store.OrderClaimer: Claim, LockOrder's first try
// and GetOrder in one script.
func (c *Backend) ClaimOrder(ctx context.Context, rkey store.RequestKey, hash store.BodyHash, token string, okey store.OrderKey, lockToken string, lease time.Duration) (store.ClaimResult, bool, *store.Order, error) {
	ms, err := millis("claim", "lease", lease)
	if err != nil {
		return store.ClaimResult{}, false, nil, err
	}
	keys := []string{c.requestKey(rkey), c.lockKey(okey), c.orderKey(okey)}
	res, err := claimScript.Run(ctx, c.rdb, keys, hex.EncodeToString(hash[:]), token, ms, lockToken).Slice()
	if err != nil {
		return store.ClaimResult{}, false, nil, fail("claim", err)
	}
	return parseClaim(res)
}

// parseClaim reads claimScript's reply.
func parseClaim(res []any) (cr store.ClaimResult, locked bool, order *store.Order, err error) {
	if len(res) == 0 {
		return cr, false, nil, fail("claim", errors.New("empty script reply"))
	}
	code, _ := res[0].(int64)
	switch code {
	case claimNew:
		cr.Status = store.Claimed
		if len(res) < 2 {
			return cr, false, nil, nil
		}
		l, _ := res[1].(int64)
		if l != 1 {
			return cr, false, nil, nil
		}
		if len(res) > 2 {
			blob, _ := res[2].(string)
			if order, err = store.DecodeOrder([]byte(blob)); err != nil {
				return store.ClaimResult{}, false, nil, fail("claim", err)
			}
		}
		return cr, true, order, nil
	case claimInFlight:
		return store.ClaimResult{Status: store.InFlight}, false, nil, nil
	case claimMismatch:
		return store.ClaimResult{Status: store.Mismatch}, false, nil, nil
	case claimDone:
		if len(res) < 2 {
			return cr, false, nil, fail("claim", errors.New("done record without a reply"))
		}
		blob, _ := res[1].(string)
		reply, err := store.DecodeReply([]byte(blob))
		if err != nil {
			return store.ClaimResult{}, false, nil, fail("claim", err)
		}
		return store.ClaimResult{Status: store.Done, Reply: reply}, false, nil, nil
	}
	return cr, false, nil, fail("claim", fmt.Errorf("unexpected script reply %v", res[0]))
}

// Release implements store.Backend.
func (c *Backend) Release(ctx context.Context, key store.RequestKey, token string) error {
	if err := releaseScript.Run(ctx, c.rdb, []string{c.requestKey(key)}, token).Err(); err != nil {
		return fail("release", err)
	}
	return nil
}

// Finish implements store.Backend.
func (c *Backend) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	return c.finish(ctx, []string{c.requestKey(key)}, token, reply, ttl)
}

// FinishUnlock implements store.UnlockingWriter: Finish and UnlockOrder in
// one script.
func (c *Backend) FinishUnlock(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration, okey store.OrderKey, lockToken string) error {
	return c.finish(ctx, []string{c.requestKey(key), c.lockKey(okey)}, token, reply, ttl, lockToken)
}

func (c *Backend) finish(ctx context.Context, keys []string, token string, reply store.Reply, ttl time.Duration, lockToken ...any) error {
	ms, err := millis("finish", "ttl", ttl)
	if err != nil {
		return err
	}
	args := append([]any{token, store.EncodeReply(reply), ms}, lockToken...)
	ok, err := finishScript.Run(ctx, c.rdb, keys, args...).Int()
	if err != nil {
		return fail("finish", err)
	}
	if ok != 1 {
		return store.ErrNotOwner
	}
	return nil
}

// LockOrder implements store.Backend. The lock is a key holding the
// holder's token with PX = lease; UnlockOrder deletes it only if it still
// holds that token, so a holder whose lease ran out never releases the lock
// of the instance that took over.
func (c *Backend) LockOrder(ctx context.Context, key store.OrderKey, token string, lease time.Duration) error {
	ms, err := millis("lock order", "lease", lease)
	if err != nil {
		return err
	}
	k := c.lockKey(key)
	backoff := lockMinBackoff
	for {
		got, err := lockScript.Run(ctx, c.rdb, []string{k}, token, ms).Int()
		if err != nil {
			if ctx.Err() != nil {
				return store.ErrLockTimeout
			}
			return fail("lock order", err)
		}
		if got == 1 {
			return nil
		}
		wait := backoff/2 + mrand.N(backoff/2+1)
		if backoff *= 2; backoff > lockMaxBackoff {
			backoff = lockMaxBackoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return store.ErrLockTimeout
		case <-t.C:
		}
	}
}

// UnlockOrder implements store.Backend.
func (c *Backend) UnlockOrder(ctx context.Context, key store.OrderKey, token string) error {
	if err := unlockScript.Run(ctx, c.rdb, []string{c.lockKey(key)}, token).Err(); err != nil {
		return fail("unlock order", err)
	}
	return nil
}

// GetOrder implements store.Backend.
func (c *Backend) GetOrder(ctx context.Context, key store.OrderKey) (*store.Order, error) {
	blob, err := c.rdb.HGet(ctx, c.orderKey(key), "o").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fail("get order", err)
	}
	o, err := store.DecodeOrder(blob)
	if err != nil {
		return nil, fail("get order", err)
	}
	return o, nil
}

// CommitSuccess implements store.Backend. The claim is checked before the
// order, so a caller whose claim expired gets ErrNotOwner even if the order
// also moved on.
func (c *Backend) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	return c.commit(ctx, okey, prev, next, rkey, token, reply, ttl, "")
}

// CommitSuccessUnlock implements store.UnlockingWriter: CommitSuccess and
// UnlockOrder in one script.
func (c *Backend) CommitSuccessUnlock(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration, lockToken string) error {
	return c.commit(ctx, okey, prev, next, rkey, token, reply, ttl, lockToken)
}

// commit runs commitScript; a lockToken other than "" also unlocks.
func (c *Backend) commit(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration, lockToken string) error {
	ms, err := millis("commit success", "ttl", ttl)
	if err != nil {
		return err
	}
	blob := store.EncodeOrder(next)
	args := make([]any, 0, 12)
	args = append(args, token)
	if prev == nil {
		args = append(args, "0", "", "", "")
	} else {
		args = append(args, "1", prev.Status, strconv.FormatInt(prev.ModifyTime, 10), prev.RequestID)
	}
	args = append(args, next.Status, strconv.FormatInt(next.ModifyTime, 10), next.RequestID, blob, store.EncodeReply(reply), ms)
	keys := []string{c.orderKey(okey), c.requestKey(rkey)}
	if lockToken != "" {
		keys = append(keys, c.lockKey(okey))
		args = append(args, lockToken)
	}
	res, err := commitScript.Run(ctx, c.rdb, keys, args...).Int()
	if err != nil {
		return fail("commit success", err)
	}
	switch res {
	case commitOK:
		return nil
	case commitNotOwner:
		return store.ErrNotOwner
	case commitConflict:
		return store.ErrConflict
	}
	return fail("commit success", fmt.Errorf("unexpected script reply %d", res))
}

// GetRequest implements store.Backend. ExpiresAt is the server's remaining
// time to live added to this machine's clock, so it is approximate by the
// round trip.
func (c *Backend) GetRequest(ctx context.Context, key store.RequestKey) (*store.RequestRecord, error) {
	res, err := getRequestScript.Run(ctx, c.rdb, []string{c.requestKey(key)}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fail("get request", err)
	}
	if len(res) != 4 {
		return nil, fail("get request", fmt.Errorf("unexpected script reply of %d items", len(res)))
	}
	hashHex, _ := res[0].(string)
	done, _ := res[1].(string)
	blob, _ := res[2].(string)
	pttl, _ := res[3].(int64)
	var rec store.RequestRecord
	if n, err := hex.Decode(rec.BodyHash[:], []byte(hashHex)); err != nil || n != len(rec.BodyHash) {
		return nil, fail("get request", errors.New("malformed body hash"))
	}
	if done == "1" {
		reply, err := store.DecodeReply([]byte(blob))
		if err != nil {
			return nil, fail("get request", err)
		}
		rec.Done = true
		rec.Reply = reply
	}
	if pttl > 0 {
		rec.ExpiresAt = time.Now().Add(time.Duration(pttl) * time.Millisecond)
	}
	return &rec, nil
}

// Interface guards.
var (
	_ store.Backend         = (*Backend)(nil)
	_ store.OrderClaimer    = (*Backend)(nil)
	_ store.UnlockingWriter = (*Backend)(nil)
)

// keyEscaper makes the id parts of a key injective and brace-free: ':'
// separates the two ids, and '{' '}' would move the Cluster hash tag.
var keyEscaper = strings.NewReplacer("%", "%25", ":", "%3A", "{", "%7B", "}", "%7D")

func (c *Backend) orderKey(k store.OrderKey) string {
	return c.prefix + "order:{" + keyEscaper.Replace(k.ClientID) + ":" + keyEscaper.Replace(k.MerchantBizNo) + "}"
}

func (c *Backend) lockKey(k store.OrderKey) string {
	return c.prefix + "lock:{" + keyEscaper.Replace(k.ClientID) + ":" + keyEscaper.Replace(k.MerchantBizNo) + "}"
}

func (c *Backend) requestKey(k store.RequestKey) string {
	return c.prefix + "req:{" + keyEscaper.Replace(k.ClientID) + ":" + keyEscaper.Replace(k.RequestID) + "}"
}

// millis checks a lease or TTL of op (store.CheckDuration) and converts it
// for PX, rounding up: a sub-millisecond duration must not become 0, which
// Redis rejects.
func millis(op, what string, d time.Duration) (int64, error) {
	if err := store.CheckDuration(what, d); err != nil {
		return 0, fail(op, err)
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond), nil
}

// fail names the store and the operation. go-redis errors carry the
// address and the server's message but never the password.
func fail(op string, err error) error { return &store.Error{Backend: "redis", Op: op, Err: err} }
