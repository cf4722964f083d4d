package bboltstore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// claimTable holds the in-flight claims of one database file, keyed by the
// request's key (joinKey). It lives in the Backend, which is shared by every
// handler using the file and survives config reloads, so every handler
// sees every claim.
//
// Claims are not written to the file: bbolt's lock keeps every other
// process out of it, and a claim cannot outlive the Backend that made it
// anyway (its owner runs in this process), so a durable claim would cost
// an fsync per new request and protect nothing. Only done records, written
// by Finish and CommitSuccess, go to disk.
//
// Invariants, all kept under mu:
//
//   - A claim is added (Claim) only after reading, under mu, that the file
//     holds no live done record for its key; and a done record is written
//     only by the owner of a claim, which is marked committing throughout
//     the write and removed once it is on disk. So while a claim that is
//     not committing exists, the file holds no live done record for its
//     key, and once it is removed the done record is visible to every
//     read that starts later.
//   - A committing claim is neither taken over (even if its lease ends
//     during the fsync), released nor swept: only its committer ends it.
//   - An entry exists only while its claim is live or committing, or until
//     the next sweep after its lease ended.
//   - ended counts the writes of done records that ended (end), written
//     or not (a commit whose fdatasync failed may have left its record
//     readable), and is incremented under mu as the claim stops being
//     committing. So a reader that loads it, then reads the file, then
//     under mu finds the count unchanged and no live claim for its key
//     knows that no done record of that key was written after its read
//     began: a write that ended since would have moved the count, and one
//     still under way would have its claim in the table. Claim and
//     GetRequest use this to read the file once instead of twice for a
//     new requestId.
type claimTable struct {
	mu     sync.Mutex
	claims map[string]*heldClaim
	ended  atomic.Uint64
}

type heldClaim struct {
	hash    store.BodyHash
	token   string
	expires time.Time // lease end
	// committing is set while the owner's Finish or CommitSuccess writes
	// the done record.
	committing bool
}

// live reports whether c still blocks its key: until its lease ends, and
// for as long as its done record is being written.
func (c *heldClaim) live(now time.Time) bool { return c.committing || now.Before(c.expires) }

// get returns the claim of k, or nil. Called with mu held.
func (t *claimTable) get(k string) *heldClaim { return t.claims[k] }

// put makes c the claim of k, replacing any expired one. Called with mu
// held.
func (t *claimTable) put(k string, c *heldClaim) {
	if t.claims == nil {
		t.claims = make(map[string]*heldClaim)
	}
	t.claims[k] = c
}

// release drops the claim of k if token holds it and no commit is under
// way. Releasing a claim that is not held is not an error.
func (t *claimTable) release(k, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.claims[k]; c != nil && c.token == token && !c.committing {
		delete(t.claims, k)
	}
}

// begin marks the claim of k held by token as committing and returns it,
// or returns nil if token does not hold it (taken over, released, swept,
// or already being committed by another call with the same token). A
// claim whose lease ended but that nobody took over is still its owner's:
// finishing it harms nobody, and refusing would turn an upstream's success
// into an answer the caller must retry. Every non-nil result must be
// passed to end.
func (t *claimTable) begin(k, token string) *heldClaim {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.claims[k]
	if c == nil || c.token != token || c.committing {
		return nil
	}
	c.committing = true
	return c
}

// end closes a commit opened by begin. If the done record was written the
// claim is dropped; otherwise (a storage error, or ErrConflict) its owner
// keeps it, with the lease it had, to Release or Finish it.
func (t *claimTable) end(k string, c *heldClaim, written bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.committing = false
	t.ended.Add(1)
	if written && t.claims[k] == c {
		delete(t.claims, k)
	}
}

// sweep drops the claims whose lease ended and that are not being
// committed, and returns how many.
func (t *claimTable) sweep(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, c := range t.claims {
		if !c.live(now) {
			delete(t.claims, k)
			n++
		}
	}
	return n
}

// size is the number of entries, for tests.
func (t *claimTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.claims)
}
