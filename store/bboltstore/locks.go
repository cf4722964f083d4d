package bboltstore

import (
	"context"
	"sync"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// lockTable holds the order locks of one database file. It lives in the
// DB, which is shared by every handler using the file and survives config
// reloads, so the old and the new config serialize on the same locks.
//
// A lock is handed directly to the longest waiter when released, rather
// than freed for whoever grabs it first: requests for one order are then
// served in arrival order, and a waiter cannot be starved by newcomers.
// An entry exists only while the lock is held or waited for.
type lockTable struct {
	mu    sync.Mutex
	locks map[store.OrderKey]*orderLock
	seq   uint64 // last holder id handed out; ids are never reused
}

type orderLock struct {
	holder  uint64 // 0 when free
	expires time.Time
	queue   []*lockWaiter // FIFO
}

type lockWaiter struct {
	lease   time.Duration
	granted uint64        // holder id once the lock was handed over
	ready   chan struct{} // buffered; signalled once when granted
}

func (lt *lockTable) acquire(ctx context.Context, key store.OrderKey, lease time.Duration) (func(), error) {
	// A request whose deadline already passed must not take the lock.
	if ctx.Err() != nil {
		return nil, store.ErrLockTimeout
	}
	lt.mu.Lock()
	if lt.locks == nil {
		lt.locks = make(map[store.OrderKey]*orderLock)
	}
	l := lt.locks[key]
	if l == nil {
		l = &orderLock{}
		lt.locks[key] = l
	}
	now := time.Now()
	lt.expire(l, now)
	if l.holder == 0 {
		id := lt.grant(l, lease, now)
		lt.mu.Unlock()
		return lt.unlocker(key, id), nil
	}

	w := &lockWaiter{lease: lease, ready: make(chan struct{}, 1)}
	l.queue = append(l.queue, w)
	// The timer is for the holder's lease: nobody unlocks a lock whose
	// holder died, so a waiter must notice the expiry itself.
	timer := time.NewTimer(time.Until(l.expires))
	defer timer.Stop()
	for {
		lt.mu.Unlock()
		select {
		case <-w.ready:
		case <-timer.C:
		case <-ctx.Done():
		}
		lt.mu.Lock()
		if w.granted == 0 {
			lt.expire(l, time.Now())
		}
		if w.granted != 0 {
			// Granted, possibly just as ctx ended: the lock is ours and
			// the caller's unlock will pass it on.
			lt.mu.Unlock()
			return lt.unlocker(key, w.granted), nil
		}
		if ctx.Err() != nil {
			l.queue = deleteWaiter(l.queue, w)
			lt.forget(key, l)
			lt.mu.Unlock()
			return nil, store.ErrLockTimeout
		}
		timer.Reset(time.Until(l.expires))
	}
}

// grant makes a new holder of the free lock l. Called with mu held.
func (lt *lockTable) grant(l *orderLock, lease time.Duration, now time.Time) uint64 {
	lt.seq++
	l.holder, l.expires = lt.seq, now.Add(lease)
	return l.holder
}

// handOff releases l: to the first waiter if any, else to nobody. Called
// with mu held.
func (lt *lockTable) handOff(l *orderLock, now time.Time) {
	l.holder = 0
	if len(l.queue) == 0 {
		return
	}
	w := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	w.granted = lt.grant(l, w.lease, now)
	w.ready <- struct{}{}
}

// expire hands l on if its holder's lease has ended. Called with mu held.
func (lt *lockTable) expire(l *orderLock, now time.Time) {
	if l.holder != 0 && !now.Before(l.expires) {
		lt.handOff(l, now)
	}
}

// forget drops l's entry when nobody holds or waits for it, so that the
// table only ever holds live locks. Called with mu held.
func (lt *lockTable) forget(key store.OrderKey, l *orderLock) {
	if l.holder == 0 && len(l.queue) == 0 && lt.locks[key] == l {
		delete(lt.locks, key)
	}
}

// unlocker returns the caller's unlock. It releases only the holding it
// was made for, so calling it twice, or after the lease passed the lock to
// someone else, is harmless.
func (lt *lockTable) unlocker(key store.OrderKey, id uint64) func() {
	return func() {
		lt.mu.Lock()
		defer lt.mu.Unlock()
		l := lt.locks[key]
		if l == nil || l.holder != id {
			return
		}
		lt.handOff(l, time.Now())
		lt.forget(key, l)
	}
}

// sweep drops locks whose holder never unlocked and that nobody waits for:
// they are expired, but only a waiter would have noticed.
func (lt *lockTable) sweep(now time.Time) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for key, l := range lt.locks {
		lt.expire(l, now)
		lt.forget(key, l)
	}
}

// size is the number of live entries, for tests.
func (lt *lockTable) size() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.locks)
}

func deleteWaiter(q []*lockWaiter, w *lockWaiter) []*lockWaiter {
	for i, x := range q {
		if x == w {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			return q[:len(q)-1]
		}
	}
	return q
}
