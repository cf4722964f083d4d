package bboltstore

import (
	"context"
	"sync"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// lockTable holds the order locks of one database file. It lives in the
// Backend, which is shared by every handler using the file and survives config
// reloads, so the old and the new config serialize on the same locks.
//
// A lock is handed directly to the longest waiter when released, rather
// than freed for whoever grabs it first: requests for one order are then
// served in arrival order, and a waiter cannot be starved by newcomers.
// An entry exists only while the lock is held or waited for.
type lockTable struct {
	mu    sync.Mutex
	locks map[store.OrderKey]*orderLock
}

type orderLock struct {
	holder  string // the holder's token; "" when free
	expires time.Time
	queue   []*lockWaiter // FIFO
}

type lockWaiter struct {
	token   string
	lease   time.Duration
	granted bool          // the lock was handed over to token
	ready   chan struct{} // buffered; signalled once when granted
}

// acquire waits for the lock of key until ctx ends and takes it for token.
// A token that already holds it has it.
func (lt *lockTable) acquire(ctx context.Context, key store.OrderKey, token string, lease time.Duration) error {
	// A request whose deadline already passed must not take the lock.
	if ctx.Err() != nil {
		return store.ErrLockTimeout
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
	if l.holder == "" || l.holder == token {
		l.holder, l.expires = token, now.Add(lease)
		lt.mu.Unlock()
		return nil
	}

	w := &lockWaiter{token: token, lease: lease, ready: make(chan struct{}, 1)}
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
		if !w.granted {
			lt.expire(l, time.Now())
		}
		if w.granted {
			// Granted, possibly just as ctx ended: the lock is ours and
			// the caller's unlock will pass it on.
			lt.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			l.queue = deleteWaiter(l.queue, w)
			lt.forget(key, l)
			lt.mu.Unlock()
			return store.ErrLockTimeout
		}
		timer.Reset(time.Until(l.expires))
	}
}

// handOff releases l: to the first waiter if any, else to nobody. Called
// with mu held.
func (lt *lockTable) handOff(l *orderLock, now time.Time) {
	l.holder = ""
	if len(l.queue) == 0 {
		return
	}
	w := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.holder, l.expires = w.token, now.Add(w.lease)
	w.granted = true
	w.ready <- struct{}{}
}

// expire hands l on if its holder's lease has ended. Called with mu held.
func (lt *lockTable) expire(l *orderLock, now time.Time) {
	if l.holder != "" && !now.Before(l.expires) {
		lt.handOff(l, now)
	}
}

// forget drops l's entry when nobody holds or waits for it, so that the
// table only ever holds live locks. Called with mu held.
func (lt *lockTable) forget(key store.OrderKey, l *orderLock) {
	if l.holder == "" && len(l.queue) == 0 && lt.locks[key] == l {
		delete(lt.locks, key)
	}
}

// release unlocks key if token holds it, so that unlocking twice, or after
// the lease passed the lock to someone else, is harmless.
func (lt *lockTable) release(key store.OrderKey, token string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	l := lt.locks[key]
	if l == nil || l.holder != token {
		return
	}
	lt.handOff(l, time.Now())
	lt.forget(key, l)
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
