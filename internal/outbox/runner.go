package outbox

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// Runner defaults.
const (
	DefaultWorkers         = 16
	DefaultCallbackWorkers = 4
	DefaultLeaseTTL        = 30 * time.Second
	DefaultPollInterval    = time.Second
)

// storeTimeout bounds every store operation of the outbox: a hung store
// makes Submit answer 503 (or 202 once the entry is durable) and the
// runner try again later, never wait for ever.
const storeTimeout = 5 * time.Second

// RunnerOptions tunes a Runner; zero fields take the defaults.
type RunnerOptions struct {
	// Workers bounds the lanes delivered at once.
	Workers int
	// CallbackWorkers bounds the callbacks sent at once.
	CallbackWorkers int
	// LeaseTTL is a lane lease's time to live; it is renewed every third
	// of it while a worker holds the lane, and it is how long a crashed
	// instance's lanes wait before another instance resumes them. It must
	// exceed the time of one store operation by far.
	LeaseTTL time.Duration
	// PollInterval is the longest the runner goes without looking for due
	// lanes and callbacks (it also looks when woken, and at the earliest
	// due time it knows).
	PollInterval time.Duration
	// Observer receives attempts, final states, callbacks, operator
	// actions, queue stats and troubles. Nil is NopObserver.
	Observer Observer
}

// Runner delivers the outbox of one client_id in one store: it finds due
// lanes, leases them, sends their head entries through the Sender, records
// the outcomes, sends the callbacks, and carries out operator actions. The
// glue keeps one per (store, client_id) in the process, shared across
// config generations; a reload hands it the new generation with Update.
// It is safe for concurrent use.
//
// Invariants, and what keeps them:
//   - One attempt at a time per lane, in order: within the process the
//     active set (a lane has at most one worker), across processes the
//     lane lease; a worker sends only the lane's head, and only after
//     reading the lane under the lease.
//   - Nothing is written for a lane whose lease was lost: the store
//     refuses writes under a lost lease (ErrLeaseLost), and the renewer
//     cuts the attempt off as soon as it learns of the loss.
//   - A final state is written (Complete) before anyone is told of it:
//     waiters and the Observer hear of it after the write returned.
type Runner struct {
	ob       *store.Outbox
	clientID string // fixed: the runner's identity
	opts     RunnerOptions
	obs      Observer
	// jitter returns a number in [0, 1) for the backoff; tests replace it.
	jitter func() float64

	mu      sync.Mutex
	cfg     *Config // the current generation, with defaults
	sender  Sender
	started bool
	stopped bool
	ctx     context.Context // ends at Stop
	cancel  context.CancelFunc
	active  map[store.LaneKey]bool      // lanes one of our workers is on
	waiters map[string]map[*waiter]bool // by requestId: Submit calls waiting for a final state

	wg        sync.WaitGroup
	wake      chan struct{} // the dispatcher: look for due lanes now
	wakeCalls chan struct{} // the callback sender: look for due callbacks now
}

// waiter is one Submit call waiting for an entry's final state.
type waiter struct{ ch chan *store.Entry }

// NewRunner returns a stopped Runner for cfg.ClientID over ob, sending
// with sender. Errors name the option.
func NewRunner(ob *store.Outbox, cfg Config, sender Sender, opts RunnerOptions) (*Runner, error) {
	if ob == nil {
		return nil, errors.New("store: no outbox")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if sender == nil {
		return nil, errors.New("outbox: no sender")
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.CallbackWorkers <= 0 {
		opts.CallbackWorkers = DefaultCallbackWorkers
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	obs := opts.Observer
	if obs == nil {
		obs = NopObserver{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{
		ob:        ob,
		clientID:  c.ClientID,
		opts:      opts,
		obs:       obs,
		jitter:    rand.Float64,
		cfg:       &c,
		sender:    sender,
		ctx:       ctx,
		cancel:    cancel,
		active:    map[store.LaneKey]bool{},
		waiters:   map[string]map[*waiter]bool{},
		wake:      make(chan struct{}, 1),
		wakeCalls: make(chan struct{}, 1),
	}, nil
}

// ClientID returns the client_id the runner delivers for.
func (r *Runner) ClientID() string { return r.clientID }

// Start starts delivery: the dispatcher, the workers it runs, and the
// callback sender. Starting a started runner does nothing; a stopped one
// cannot start again (make a new one).
func (r *Runner) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return
	}
	r.started = true
	r.wg.Add(2)
	go r.dispatch()
	go r.sendCallbacks()
}

// Stop stops delivery and waits for it: attempts in flight are cut off
// (nothing is recorded for them: they are made again later, with the same
// requestId and body), an outcome being written is written, leases are
// released. Stop is idempotent.
func (r *Runner) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Update hands the runner a new configuration generation and its sender:
// attempts that start from now on use them; an attempt in flight ends with
// the ones it started with. cfg.ClientID must be the runner's. Nothing is
// restarted, nothing is delivered twice.
func (r *Runner) Update(cfg Config, sender Sender) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if c.ClientID != r.clientID {
		return errors.New("client_id: a runner delivers for one client_id; this one is another's")
	}
	if sender == nil {
		return errors.New("outbox: no sender")
	}
	r.mu.Lock()
	r.cfg, r.sender = &c, sender
	r.mu.Unlock()
	r.signal(r.wake)
	r.signal(r.wakeCalls)
	return nil
}

// Wake makes the runner look for due work now (a new entry in lane), not
// at its next poll. It never blocks; a stopped or not yet started runner
// ignores it.
func (r *Runner) Wake(lane store.LaneKey) { r.signal(r.wake) }

// signal pokes a loop without blocking: one pending poke is enough.
func (r *Runner) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// current returns the configuration and sender attempts start with now.
func (r *Runner) current() (*Config, Sender) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, r.sender
}

// await registers a waiter for requestID's final state. Register before
// reading the entry, so that a final state written in between is not
// missed; call the returned func when done.
func (r *Runner) await(requestID string) (<-chan *store.Entry, func()) {
	w := &waiter{ch: make(chan *store.Entry, 1)}
	r.mu.Lock()
	set := r.waiters[requestID]
	if set == nil {
		set = map[*waiter]bool{}
		r.waiters[requestID] = set
	}
	set[w] = true
	r.mu.Unlock()
	return w.ch, func() {
		r.mu.Lock()
		if set := r.waiters[requestID]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(r.waiters, requestID)
			}
		}
		r.mu.Unlock()
	}
}

// notify tells the waiters of e that it is final. Called after the final
// state is durable.
func (r *Runner) notify(e *store.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for w := range r.waiters[e.RequestID] {
		select {
		case w.ch <- e:
		default: // told already
		}
	}
}

// storeCtx bounds one store operation. The final writes of a worker use
// a context Stop does not cancel (see Stop), the rest ctx.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storeTimeout)
}

// dispatch finds due lanes and starts a worker for each, within the
// worker bound: when woken (a new entry, a worker done, an operator's
// change), at the earliest due time the store reported, and at least every
// PollInterval (entries of other instances, retries, expiries).
func (r *Runner) dispatch() {
	defer r.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastStats time.Time
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
		}
		next := r.poll()
		if now := time.Now(); now.Sub(lastStats) >= r.opts.PollInterval {
			lastStats = now
			r.reportStats()
		}
		sleep := r.opts.PollInterval
		if !next.IsZero() {
			sleep = min(sleep, max(time.Until(next), time.Millisecond))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(sleep)
	}
}

// poll starts workers for due lanes; it returns the next due time the
// store knows of (zero: none, or unknown).
func (r *Runner) poll() time.Time {
	r.mu.Lock()
	free := r.opts.Workers - len(r.active)
	r.mu.Unlock()
	if free <= 0 {
		return time.Time{} // a worker that ends wakes the dispatcher
	}
	ctx, cancel := storeCtx(r.ctx)
	due, err := r.ob.Due(ctx, r.clientID, time.Now(), free)
	cancel()
	if err != nil {
		if r.ctx.Err() == nil {
			r.obs.Trouble(TroubleDue, store.LaneKey{}, err)
		}
		return time.Time{}
	}
	for _, lane := range due.Lanes {
		r.mu.Lock()
		if r.active[lane] || len(r.active) >= r.opts.Workers || r.ctx.Err() != nil {
			r.mu.Unlock()
			continue
		}
		r.active[lane] = true
		r.wg.Add(1)
		r.mu.Unlock()
		go r.work(lane)
	}
	return due.Next
}

func (r *Runner) reportStats() {
	ctx, cancel := storeCtx(r.ctx)
	defer cancel()
	s, err := r.ob.Stats(ctx, r.clientID)
	if err != nil {
		if r.ctx.Err() == nil {
			r.obs.Trouble(TroubleStats, store.LaneKey{}, err)
		}
		return
	}
	r.obs.Queue(r.clientID, s)
}

// errLeaseLost and errLeaseUnsure are the causes of a worker's context
// ending because of its lease: the store said it is lost, or it could not
// be renewed and would expire before the next try.
var (
	errLeaseLost   = errors.New("lane lease lost")
	errLeaseUnsure = errors.New("lane lease could not be renewed before it would expire")
)

// work delivers one lane while it holds its lease: its head entries in
// order, as long as they are due.
func (r *Runner) work(lane store.LaneKey) {
	defer r.wg.Done()
	defer func() {
		// Lease released (below, deferred later so it runs first), then the
		// lane leaves the active set, then the dispatcher looks again: a
		// lane that got a new entry meanwhile is found at once.
		r.mu.Lock()
		delete(r.active, lane)
		r.mu.Unlock()
		r.signal(r.wake)
	}()
	asked := time.Now() // the lease runs from no earlier than this
	ctx, cancel := storeCtx(r.ctx)
	lease, err := r.ob.LeaseLane(ctx, lane, r.opts.LeaseTTL)
	cancel()
	if errors.Is(err, store.ErrLaneLeased) {
		return // another instance delivers it
	}
	if err != nil {
		if r.ctx.Err() == nil {
			r.obs.Trouble(TroubleLease, lane, err)
		}
		return
	}
	wctx, stop := context.WithCancelCause(r.ctx)
	renewed := r.keepLease(wctx, stop, lease, asked)
	defer func() {
		stop(nil)
		<-renewed
		ctx, cancel := storeCtx(context.Background()) // released even at Stop
		defer cancel()
		if err := lease.Release(ctx); err != nil {
			r.obs.Trouble(TroubleRelease, lane, err)
		}
	}()
	for wctx.Err() == nil && r.deliverHead(wctx, lease) {
	}
	if cause := context.Cause(wctx); cause == errLeaseLost || cause == errLeaseUnsure {
		r.obs.Trouble(TroubleLeaseLost, lane, cause)
	}
}

// keepLease renews the lease every third of its TTL until ctx ends. When
// the store says it is lost, or when renewals fail (the store is
// unreachable) until the lease would expire before the next try, it ends
// ctx, which cuts off the attempt in flight: after the expiry another
// instance may deliver the lane, and two attempts of one lane must never
// be in flight at once. A single failed renewal is tried again at the next
// tick. lastOK is when the lease was last known to run from (taken or
// renewed: the time the request was made, which is no later than the
// store's). The returned channel closes when it is done.
func (r *Runner) keepLease(ctx context.Context, stop context.CancelCauseFunc, lease *store.LaneLease, lastOK time.Time) <-chan struct{} {
	done := make(chan struct{})
	ttl, every := r.opts.LeaseTTL, r.opts.LeaseTTL/3
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			asked := time.Now()
			// No renewal waits past the lease's own end.
			deadline := asked.Add(storeTimeout)
			if end := lastOK.Add(ttl); end.Before(deadline) {
				deadline = end
			}
			rctx, cancel := context.WithDeadline(ctx, deadline)
			err := lease.Renew(rctx, ttl)
			cancel()
			switch {
			case err == nil:
				lastOK = asked
			case errors.Is(err, store.ErrLeaseLost):
				stop(errLeaseLost)
				return
			case ctx.Err() != nil:
				return
			default:
				r.obs.Trouble(TroubleRenew, lease.Lane(), err)
				if time.Now().Add(every).After(lastOK.Add(ttl)) {
					stop(errLeaseUnsure)
					return
				}
			}
		}
	}()
	return done
}

// deliverHead handles the lane's head entry once: expires it, or makes one
// attempt and records its outcome. It reports whether the worker should go
// on with the lane (the head ended and the next one may be due).
func (r *Runner) deliverHead(ctx context.Context, lease *store.LaneLease) bool {
	lane := lease.Lane()
	sctx, cancel := storeCtx(ctx)
	l, err := r.ob.Lane(sctx, lane)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			r.obs.Trouble(TroubleLaneRead, lane, err)
		}
		return false
	}
	if len(l.Queued) == 0 {
		return false
	}
	head := l.Queued[0]
	cfg, sender := r.current()
	now := time.Now()
	expiry := head.QueuedAt.Add(cfg.MaxAge)
	if !now.Before(expiry) {
		return r.expire(ctx, lease, head, cfg, now)
	}
	if head.NextAttemptAt.After(now) {
		return false // not due: the dispatcher comes back at its time
	}
	return r.attempt(ctx, lease, l, head, cfg, sender)
}

// expire ends the head entry as expired: max_age passed without a final
// answer. lastError keeps the last attempt's error, which says why.
func (r *Runner) expire(ctx context.Context, lease *store.LaneLease, head *store.Entry, cfg *Config, now time.Time) bool {
	c := store.Completion{
		State:     store.EntryExpired,
		At:        now,
		LastError: head.LastError,
		Callback:  cfg.Callback != nil,
		Retention: cfg.MaxAge,
	}
	if c.LastError == "" {
		c.LastError = "max_age passed before any attempt"
	}
	return r.complete(ctx, lease, head, c, EndedByExpiry)
}

// attempt sends the head entry once and records the outcome.
func (r *Runner) attempt(ctx context.Context, lease *store.LaneLease, l *store.Lane, head *store.Entry, cfg *Config, sender Sender) bool {
	number := head.Attempts + 1
	began := time.Now()
	header, err := signAttempt(cfg, head.Body, began)
	if err != nil {
		// The generation we read may have been replaced (and its signer
		// closed) just now: sign with the current one.
		if cfg2, sender2 := r.current(); cfg2 != cfg {
			cfg, sender = cfg2, sender2
			header, err = signAttempt(cfg, head.Body, began)
		}
	}
	var j judgement
	var rep Reply
	if err != nil {
		j = judgement{Outcome: OutcomeTransport, Error: "signing: " + err.Error()}
	} else {
		actx, cancel := context.WithTimeout(ctx, cfg.AttemptTimeout)
		var sendErr error
		rep, sendErr = sender.Send(actx, Attempt{
			Path:          cfg.Path,
			Header:        header,
			Body:          head.Body,
			ClientID:      cfg.ClientID,
			RequestID:     head.RequestID,
			MerchantBizNo: head.MerchantBizNo,
			Number:        number,
		})
		timedOut := errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			// Stopped, or the lease was lost: whatever AlipayHK said, it
			// is not ours to record. The entry is attempted again later.
			r.obs.Attempt(r.attemptEvent(head, number, OutcomeAborted, judgement{Error: "aborted: " + context.Cause(ctx).Error()}, rep, sendErr, time.Since(began), time.Time{}))
			return false
		}
		j = judge(cfg, rep, sendErr, timedOut)
	}
	latency := time.Since(began)
	now := time.Now()

	if j.Outcome.Final() {
		c := store.Completion{
			State:     store.EntrySucceeded,
			At:        now,
			Reply:     j.Reply,
			Attempted: true,
			Callback:  cfg.Callback != nil,
			Retention: cfg.MaxAge,
		}
		if j.Outcome == OutcomeFailed {
			c.State = store.EntryFailed
			c.LastError = "AlipayHK: " + quote(j.ResultCode) + " (F)"
		} else {
			acc := statemachine.Applied(orderflow.OrderState(l.Accepted), head.OrderStatus, head.OrderModifyTime)
			c.Accepted = &store.Order{
				Scenario:         head.Scenario,
				Status:           acc.Status,
				ModifyTime:       acc.ModifyTime,
				OrderID:          j.OrderID,
				DistributeResult: j.DistributeResult,
				RequestID:        head.RequestID,
				UpdatedAt:        now,
			}
		}
		r.obs.Attempt(r.attemptEvent(head, number, j.Outcome, j, rep, nil, latency, time.Time{}))
		return r.complete(ctx, lease, head, c, EndedByAlipayHK)
	}

	// Retry: full jitter, never past the expiry (the entry is due then,
	// and expired).
	next := now.Add(backoff(number, cfg.RetryInitial, cfg.RetryMax, r.jitter()))
	if expiry := head.QueuedAt.Add(cfg.MaxAge); next.After(expiry) {
		next = expiry
	}
	wctx, cancel := storeCtx(context.WithoutCancel(ctx))
	err = lease.RecordAttempt(wctx, head.RequestID, store.Attempt{At: now, NextAttemptAt: next, LastError: j.Error})
	cancel()
	if err != nil {
		r.obs.Trouble(TroubleRecordAttempt, lease.Lane(), err)
		next = time.Time{}
	}
	r.obs.Attempt(r.attemptEvent(head, number, j.Outcome, j, rep, nil, latency, next))
	return false
}

// complete writes the head's final state (popping it, moving the accepted
// state on S, scheduling its callback) and then tells the waiters and the
// Observer. It reports whether the worker should go on with the lane.
func (r *Runner) complete(ctx context.Context, lease *store.LaneLease, head *store.Entry, c store.Completion, by Ender) bool {
	// Written even if Stop comes now: AlipayHK's answer is in hand, and
	// recording it saves an attempt. The lease still guards the write.
	wctx, cancel := storeCtx(context.WithoutCancel(ctx))
	err := lease.Complete(wctx, head.RequestID, c)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotHead):
		// An operator dropped it meanwhile: the lane goes on without it.
		return true
	case err != nil:
		r.obs.Trouble(TroubleComplete, lease.Lane(), err)
		return false
	}
	final := *head
	final.State = c.State
	final.UpdatedAt = c.At
	final.LastError = c.LastError
	final.Reply = c.Reply
	final.ExpiresAt = c.At.Add(c.Retention)
	final.NextAttemptAt = time.Time{}
	if c.Attempted {
		final.Attempts++
	}
	r.notify(&final)
	r.obs.Final(FinalEvent{
		ClientID:      final.ClientID,
		RequestID:     final.RequestID,
		MerchantBizNo: final.MerchantBizNo,
		State:         final.State,
		By:            by,
		Attempts:      final.Attempts,
		Age:           c.At.Sub(final.CreatedAt),
		LastError:     final.LastError,
	})
	if c.Callback {
		r.signal(r.wakeCalls)
	}
	return true
}

func (r *Runner) attemptEvent(head *store.Entry, number int, o Outcome, j judgement, rep Reply, sendErr error, latency time.Duration, next time.Time) AttemptEvent {
	ev := AttemptEvent{
		ClientID:      head.ClientID,
		RequestID:     head.RequestID,
		MerchantBizNo: head.MerchantBizNo,
		Number:        number,
		Outcome:       o,
		ResultCode:    j.ResultCode,
		ResultStatus:  j.ResultStatus,
		Latency:       latency,
		NextAttemptAt: next,
	}
	if sendErr == nil {
		ev.HTTPStatus = rep.Status
	}
	if !o.Final() {
		ev.Error = j.Error
	}
	return ev
}

// backoff is the wait before attempt number+1, after attempt number
// failed: full jitter, jitter·min(retryMax, retryInitial·2^(number-1)),
// with jitter in [0, 1).
func backoff(number int, retryInitial, retryMax time.Duration, jitter float64) time.Duration {
	ceiling := retryInitial
	for i := 1; i < number && ceiling < retryMax; i++ {
		if ceiling > retryMax/2 {
			ceiling = retryMax // and no overflow on the way
			break
		}
		ceiling *= 2
	}
	ceiling = min(ceiling, retryMax)
	return time.Duration(jitter * float64(ceiling))
}
