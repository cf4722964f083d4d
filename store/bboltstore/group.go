package bboltstore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds the writes that share one transaction, so that
// one commit never holds the writes behind it for long. It is bbolt's own
// default for Batch.
const maxBatch = 1000

// committer is group commit: it runs concurrent writes in shared
// transactions, so that many writes pay for one commit (its page writes
// and its two fdatasyncs) and none waits on a timer.
//
// A write that finds no commit under way leads: it lets the goroutines
// that are ready to run go first (gather), or sleeps for delay if set,
// and then commits itself together with whatever has queued. Writes that
// arrive while a commit is under way queue, and when it ends the first of
// them leads the next commit for all of them. So a lone write on an idle
// process is committed without delay; under load each commit takes every
// write that arrived during the one before (the busier the disk, the
// bigger the batch) and those the busy CPU was about to make. (bbolt's
// own Batch instead closes a batch after a fixed delay: it delays a lone
// write by that much, idles the CPU meanwhile, and splits the writes that
// wait for one slow commit into several batches, each with its commit.)
//
// Invariants, under mu:
//   - leading is true from the moment a goroutine is chosen to commit the
//     queue until the queue is found empty after a commit; so the queue is
//     never left non-empty without a leader, and only one commit of ours
//     runs at a time.
//   - A write is committed, or refused, exactly once: it is in exactly one
//     batch, and is answered when that batch's transaction has committed
//     (on disk: bbolt syncs before Update returns) or failed.
//
// As with bbolt's Batch, a write's function may run more than once: when
// one function of a batch fails, the transaction is rolled back, the
// failing write is told to run alone (errSolo) and the others run again
// together. Functions must therefore report only through their return
// value or state they reset on every run.
type committer struct {
	db    *bolt.DB
	delay time.Duration

	mu      sync.Mutex
	queue   []*pending
	leading bool
}

// pending is one write waiting for its commit.
type pending struct {
	fn func(*bolt.Tx) error
	// done receives errLead once if this write is to lead the next commit,
	// and then its result (nil, errSolo, or a transaction's error).
	done chan error
}

var (
	// errLead hands the leadership to a queued write.
	errLead = errors.New("lead the next commit")
	// errSolo tells a write to run in a transaction of its own: its
	// function failed inside a shared one.
	errSolo = errors.New("run alone")
)

// write runs fn in a transaction shared with concurrent writes and returns
// once that transaction is committed: fn's changes are on disk if write
// returns nil. A non-nil result of fn rolls its changes back and is
// returned.
func (c *committer) write(fn func(*bolt.Tx) error) error {
	p := &pending{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()

	if !lead {
		if err := <-p.done; err != errLead {
			return c.result(p, err)
		}
	}
	// Leading: p is at the head of the queue, so in the batch taken.
	if c.delay > 0 {
		time.Sleep(c.delay)
	} else {
		c.gather()
	}
	c.mu.Lock()
	n := min(len(c.queue), maxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	c.commit(batch)

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- errLead
	} else {
		c.leading = false
		c.queue = nil // drop the consumed backing array
	}
	c.mu.Unlock()
	return c.result(p, <-p.done)
}

// maxGather bounds how long a leader lets other goroutines run before it
// commits (gather).
const maxGather = time.Millisecond

// gather lets the goroutines that can run now run first, for as long as
// that brings more writes to the queue (and at most maxGather), so that
// the writes they are about to make share this commit. On an idle
// process it returns at once: nothing else is runnable, and the queue
// does not grow. On a busy one (the gateway at saturation, where the CPU
// and not the disk is the bottleneck, and a commit's fdatasyncs cost more
// CPU than the rest of a write) it waits for the requests in progress to
// reach their commit, the way a timer would, but without idling a CPU
// that has work, and without a timer's delay when there is none. Measured
// on the load run's first-time path (32 connections, one CPU for Caddy),
// bbolt's 1ms timer committed 9 requests per commit, committing at once
// 1.4, and gather 13, with the lowest CPU per request of the three.
func (c *committer) gather() {
	deadline := time.Now().Add(maxGather)
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	for {
		runtime.Gosched()
		c.mu.Lock()
		m := len(c.queue)
		c.mu.Unlock()
		if m == n || m >= maxBatch || time.Now().After(deadline) {
			return
		}
		n = m
	}
}

// result turns what a write was told into its result.
func (c *committer) result(p *pending, err error) error {
	if err == errSolo {
		return c.db.Update(func(tx *bolt.Tx) error { return safely(p.fn, tx) })
	}
	return err
}

// commit runs batch in one transaction and answers every write in it.
func (c *committer) commit(batch []*pending) {
	for len(batch) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, p := range batch {
				if err := safely(p.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			// Rolled back: the failing write runs alone, the others again.
			batch[failed].done <- errSolo
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, p := range batch {
			p.done <- err
		}
		return
	}
}

// safely runs fn, turning a panic into an error so that one write cannot
// take the whole batch (and the process) down with it.
func safely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a write: %v", p)
		}
	}()
	return fn(tx)
}
