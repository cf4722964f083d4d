package outbox

import (
	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// laneCheck is the state check of a status against a lane, the one rule
// Submit and the operator's requeue both apply.
type laneCheck struct {
	Verdict statemachine.Verdict
	// Reason explains a Reject, for resultMessage; Label is its metric
	// label (ReasonTransition or ReasonScenarioChanged).
	Reason string
	Label  Reason
	// Last is the lane's last queued entry, nil when nothing is queued: an
	// AlreadyCurrent with Last set is a re-post of what Last will send, and
	// is answered with Last; without it, with the lane's accepted state.
	Last *store.Entry
}

// checkLane judges the status (and orderModifyTime, epoch ms, 0 when
// absent) of a new entry of scenario sc against lane: its accepted state
// (AlipayHK's last S), then each queued entry in order applied as if
// AlipayHK had accepted it. The queue is never judged entry by entry: each
// entry was checked against everything before it when it was queued, so
// the state after the last one is the strictest.
//
// An order belongs to one scenario: a lane whose accepted state or queued
// entries are of another one refuses the entry, as ingress refuses an
// order that changes scenario.
func checkLane(sc *scenario.Scenario, lane *store.Lane, status string, modifyTime int64) laneCheck {
	name := sc.Name()
	if a := lane.Accepted; a != nil && a.Scenario != name {
		return scenarioChanged(a.Scenario)
	}
	state := orderflow.OrderState(lane.Accepted)
	var last *store.Entry
	for _, q := range lane.Queued {
		if q.Scenario != name {
			return scenarioChanged(q.Scenario)
		}
		state = statemachine.Applied(state, q.OrderStatus, q.OrderModifyTime)
		last = q
	}
	d := sc.Machine().Decide(state, status, modifyTime)
	c := laneCheck{Verdict: d.Verdict, Reason: d.Reason, Last: last}
	if d.Verdict == statemachine.Reject {
		c.Label = ReasonTransition
	}
	return c
}

func scenarioChanged(other string) laneCheck {
	return laneCheck{
		Verdict: statemachine.Reject,
		Reason:  "merchantBizNo: order belongs to scenario " + other,
		Label:   ReasonScenarioChanged,
	}
}
