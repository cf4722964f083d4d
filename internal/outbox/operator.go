package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

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

// refused is an ErrRefused with its reason.
type refused struct{ reason string }

func (e *refused) Error() string        { return "requeue refused: " + e.reason }
func (e *refused) Is(target error) bool { return target == ErrRefused }

// Retry is the operator's retry (CLI outbox retry): a queued entry is made
// due now; a failed or expired one is queued again at its lane's tail,
// attempts and reply cleared and max_age counting anew, if the lane's
// state machine still allows its status after the lane's accepted state
// and queued entries (else an error matching ErrRefused). A succeeded
// entry is store.ErrWrongState; an unknown one store.ErrEntryNotFound. It
// returns the entry as changed and the action taken, and tells the
// Observer.
func (r *Runner) Retry(ctx context.Context, requestID string) (*store.Entry, OperatorAction, error) {
	key := store.RequestKey{ClientID: r.clientID, RequestID: requestID}
	e, err := r.ob.Entry(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if e == nil {
		return nil, "", store.ErrEntryNotFound
	}
	lane := store.LaneKey{ClientID: r.clientID, MerchantBizNo: e.MerchantBizNo}
	switch e.State {
	case store.EntryQueued:
		e2, err := r.ob.Retry(ctx, key, time.Now())
		if err != nil {
			return nil, "", err
		}
		r.obs.Operator(OperatorEvent{ClientID: r.clientID, RequestID: requestID, MerchantBizNo: e.MerchantBizNo, Action: ActionRetry, From: store.EntryQueued, To: e2.State})
		r.Wake(lane)
		return e2, ActionRetry, nil
	case store.EntryFailed, store.EntryExpired:
	default:
		return nil, "", fmt.Errorf("%w: the entry is %s", store.ErrWrongState, e.State)
	}

	// Requeue: the same state check as a new entry's, against the lane as
	// it is now, and the lane's version the store compares.
	cfg, _ := r.current()
	sc := cfg.Scenarios.Lookup(e.Scenario)
	if sc == nil {
		return nil, "", &refused{"scenario " + e.Scenario + " of the entry is not enabled in the configuration"}
	}
	for {
		l, err := r.ob.Lane(ctx, lane)
		if err != nil {
			return nil, "", err
		}
		c := checkLane(sc, l, e.OrderStatus, e.OrderModifyTime)
		switch c.Verdict {
		case statemachine.Reject:
			return nil, "", &refused{c.Reason}
		case statemachine.AlreadyCurrent:
			return nil, "", &refused{"orderStatus: the order is at " + e.OrderStatus + " already (accepted or queued), and it is not repeatable"}
		}
		e2, err := r.ob.Requeue(ctx, key, l.Version, time.Now())
		if errors.Is(err, store.ErrConflict) {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			continue // the lane moved: judge again
		}
		if err != nil {
			return nil, "", err
		}
		r.obs.Operator(OperatorEvent{ClientID: r.clientID, RequestID: requestID, MerchantBizNo: e.MerchantBizNo, Action: ActionRequeue, From: e.State, To: e2.State})
		r.Wake(lane)
		return e2, ActionRequeue, nil
	}
}

// Drop is the operator's drop (CLI outbox drop): a queued entry ends as
// failed with lastError "dropped by operator", leaves its lane (unblocking
// it), and gets its callback. A final entry is store.ErrWrongState; an
// unknown one store.ErrEntryNotFound. It returns the entry as changed and
// tells the Observer.
func (r *Runner) Drop(ctx context.Context, requestID string) (*store.Entry, error) {
	cfg, _ := r.current()
	key := store.RequestKey{ClientID: r.clientID, RequestID: requestID}
	now := time.Now()
	e, err := r.ob.Drop(ctx, key, store.Drop{At: now, Callback: cfg.Callback != nil, Retention: cfg.MaxAge})
	if err != nil {
		return nil, err
	}
	r.notify(e)
	r.obs.Operator(OperatorEvent{ClientID: r.clientID, RequestID: requestID, MerchantBizNo: e.MerchantBizNo, Action: ActionDrop, From: store.EntryQueued, To: e.State})
	r.obs.Final(FinalEvent{
		ClientID:      r.clientID,
		RequestID:     requestID,
		MerchantBizNo: e.MerchantBizNo,
		State:         e.State,
		By:            EndedByOperator,
		Attempts:      e.Attempts,
		Age:           now.Sub(e.CreatedAt),
		LastError:     e.LastError,
	})
	r.Wake(store.LaneKey{ClientID: r.clientID, MerchantBizNo: e.MerchantBizNo})
	r.signal(r.wakeCalls)
	return e, nil
}
