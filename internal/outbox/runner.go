package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Runner defaults.
const (
	DefaultWorkers         = 16
	DefaultCallbackWorkers = 4
	DefaultLeaseTTL        = 30 * time.Second
	DefaultPollInterval    = time.Second
)

// RunnerOptions tunes a Runner; zero fields take the defaults.
type RunnerOptions struct {
	// Workers bounds the lanes delivered at once.
	Workers int
	// CallbackWorkers bounds the callbacks sent at once.
	CallbackWorkers int
	// LeaseTTL is a lane lease's time to live; it is renewed every third
	// of it while an attempt runs, and it is how long a crashed instance's
	// lanes wait before another instance resumes them. It must exceed the
	// time of one store operation by far.
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
type Runner struct {
	ob *store.Outbox
	// clientID is fixed: the runner's identity.
	clientID string
}

// NewRunner returns a stopped Runner for cfg.ClientID over ob, sending
// with sender. Errors name the option.
func NewRunner(ob *store.Outbox, cfg Config, sender Sender, opts RunnerOptions) (*Runner, error) {
	panic("not implemented yet")
}

// ClientID returns the client_id the runner delivers for.
func (r *Runner) ClientID() string { return r.clientID }

// Start starts delivery: the dispatcher, the workers it runs, and the
// callback sender. Starting a started runner does nothing; a stopped one
// cannot start again (make a new one).
func (r *Runner) Start() {
	panic("not implemented yet")
}

// Stop stops delivery and waits for it: attempts in flight are cut off
// (nothing is recorded for them: they are made again after a restart,
// with the same requestId), leases are released. Stop is idempotent.
func (r *Runner) Stop() {
	panic("not implemented yet")
}

// Update hands the runner a new configuration generation and its sender:
// attempts that start from now on use them; an attempt in flight ends with
// the ones it started with. cfg.ClientID must be the runner's. Nothing is
// restarted, nothing is delivered twice.
func (r *Runner) Update(cfg Config, sender Sender) error {
	panic("not implemented yet")
}

// Wake makes the runner look for due work now (a new entry in lane), not
// at its next poll. It never blocks; a stopped or not yet started runner
// ignores it.
func (r *Runner) Wake(lane store.LaneKey) {
	panic("not implemented yet")
}

// Entry returns the entry requestID, or nil (admin API, CLI show).
func (r *Runner) Entry(ctx context.Context, requestID string) (*store.Entry, error) {
	return r.ob.Entry(ctx, store.RequestKey{ClientID: r.clientID, RequestID: requestID})
}

// Lane returns the lane of merchantBizNo: accepted state, queued entries,
// version (admin API).
func (r *Runner) Lane(ctx context.Context, merchantBizNo string) (*store.Lane, error) {
	return r.ob.Lane(ctx, store.LaneKey{ClientID: r.clientID, MerchantBizNo: merchantBizNo})
}

// List returns up to limit entries in state ("" for all): queued ones
// oldest first, then final ones, the latest ended first (CLI list).
func (r *Runner) List(ctx context.Context, state store.EntryState, limit int) ([]*store.Entry, error) {
	return r.ob.List(ctx, r.clientID, state, limit)
}

// Stats returns the client's queue depth, oldest queued entry and pending
// callbacks.
func (r *Runner) Stats(ctx context.Context) (store.OutboxStats, error) {
	return r.ob.Stats(ctx, r.clientID)
}

// ErrRefused is matched (errors.Is) by the error of an operator action the
// order's state machine does not allow; the error's text says why.
var ErrRefused = errors.New("refused by the order's state machine")

// Retry is the operator's retry (CLI outbox retry): a queued entry is made
// due now; a failed or expired one is queued again at its lane's tail,
// attempts and reply cleared and max_age counting anew, if the lane's
// state machine still allows its status after the lane's accepted state
// and queued entries (else an error matching ErrRefused). A succeeded
// entry is store.ErrWrongState; an unknown one store.ErrEntryNotFound. It
// returns the entry as changed and the action taken, and tells the
// Observer.
func (r *Runner) Retry(ctx context.Context, requestID string) (*store.Entry, OperatorAction, error) {
	panic("not implemented yet")
}

// Drop is the operator's drop (CLI outbox drop): a queued entry ends as
// failed with lastError "dropped by operator", leaves its lane (unblocking
// it), and gets its callback. A final entry is store.ErrWrongState; an
// unknown one store.ErrEntryNotFound. It returns the entry as changed and
// tells the Observer.
func (r *Runner) Drop(ctx context.Context, requestID string) (*store.Entry, error) {
	panic("not implemented yet")
}
