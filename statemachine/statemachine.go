// Package statemachine decides whether an AlipayHK order-sync notification
// is a legal step in its scenario's order lifecycle (docs/SPEC.md §6).
//
// A scenario is plain data — the built-ins of the spec (package scenario
// holds them), or one written in the Caddyfile — so that scenarios AlipayHK documents later, or documents
// differently, need configuration rather than code. New compiles a Scenario
// into a Machine once at provisioning time; Machine.Decide then runs on
// every request, and its accepting path does not allocate.
//
// The package knows nothing about storage, locking or HTTP: the caller
// loads the order's State under its lock, asks Decide, and stores the new
// State only once the upstream has accepted the update.
package statemachine

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Scenario is a state machine described as data, as it comes from the
// configuration or from the built-ins of package scenario. Option names in errors are those of the
// Caddyfile scenario block (statuses, end, repeatable, only_from,
// next_must_be).
type Scenario struct {
	// Name identifies the scenario in errors and in rejection reasons.
	Name string
	// Statuses lists every status of the scenario in lifecycle order; an
	// order may skip forward through them but never go back.
	Statuses []string
	// End lists terminal statuses: nothing may follow them.
	End []string
	// Repeatable lists statuses that may be re-sent and are forwarded to
	// the upstream again each time (Queue Up's CALL_NUM).
	Repeatable []string
	// OnlyFrom maps a status to the only statuses it may follow.
	OnlyFrom map[string][]string
	// NextMustBe maps a status to the only status allowed after it.
	NextMustBe map[string]string
}

// Machine is a compiled Scenario. It is immutable and safe for concurrent
// use; the caller is responsible for serializing decisions about one order.
type Machine struct {
	name     string
	statuses []string
	index    map[string]int

	// Per-status rules indexed by position in statuses, so that Decide
	// needs two map lookups and nothing else.
	end        []bool
	repeatable []bool
	nextMust   []int    // index of the only allowed next status, or -1
	onlyFrom   [][]bool // onlyFrom[next][current]; nil row = no rule

	// Reasons that do not depend on the current status are built once, so
	// a rejection for them costs no allocation either.
	notAStatus     string
	onlyFromReason []string
}

// State is what the caller stored about an order after its last accepted
// update.
type State struct {
	// Status is the order's current status.
	Status string
	// ModifyTime is the orderModifyTime of that update in epoch
	// milliseconds; 0 means unknown.
	ModifyTime int64
}

// Applied is the state after an accepted change to status at modifyTime.
// An update without an orderModifyTime (0) keeps the last known one, so
// that the staleness check still holds after it.
func Applied(state *State, status string, modifyTime int64) *State {
	next := &State{Status: status, ModifyTime: modifyTime}
	if modifyTime == 0 && state != nil {
		next.ModifyTime = state.ModifyTime
	}
	return next
}

// Verdict is the outcome of Decide.
type Verdict int

const (
	// Forward means the update is a transition (or a repeatable re-send):
	// forward it to the upstream.
	Forward Verdict = iota + 1
	// AlreadyCurrent means the update re-sends the order's current,
	// non-repeatable status: answer with the stored SUCCESS reply and do
	// not call the upstream, so that a retry cannot issue twice.
	AlreadyCurrent
	// Reject means the update breaks the scenario's rules: answer
	// ORDER_STATUS_INVALID with the Decision's Reason.
	Reject
)

// String returns the verdict's name for logs.
func (v Verdict) String() string {
	switch v {
	case Forward:
		return "forward"
	case AlreadyCurrent:
		return "already_current"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Decision is the outcome of Decide with, for Reject, a reason suitable
// for resultMessage: it names the field and the rule and echoes no value
// other than status names the scenario itself defines.
type Decision struct {
	Verdict Verdict
	Reason  string
}

// New validates s and compiles it. Errors are phrased for the person who
// wrote the Caddyfile: they name the scenario, the option and the status,
// e.g. `scenario queue_up: only_from: unknown status "FOO"`. Besides
// unknown and duplicate statuses, New refuses rules that contradict each
// other or could never let an update through, since such a rule is a
// mistake that would otherwise only show up as rejected orders in
// production.
func New(s Scenario) (*Machine, error) {
	if s.Name == "" {
		return nil, errors.New("scenario: name is empty")
	}
	fail := func(option, format string, args ...any) error {
		return fmt.Errorf("scenario %s: %s: %s", s.Name, option, fmt.Sprintf(format, args...))
	}
	if len(s.Statuses) == 0 {
		return nil, fail("statuses", "at least one status is required")
	}

	n := len(s.Statuses)
	m := &Machine{
		name:           s.Name,
		statuses:       append([]string(nil), s.Statuses...),
		index:          make(map[string]int, n),
		end:            make([]bool, n),
		repeatable:     make([]bool, n),
		nextMust:       make([]int, n),
		onlyFrom:       make([][]bool, n),
		notAStatus:     "orderStatus: not a status of scenario " + s.Name,
		onlyFromReason: make([]string, n),
	}
	for i, st := range m.statuses {
		if st == "" {
			return nil, fail("statuses", "a status is empty")
		}
		if _, dup := m.index[st]; dup {
			return nil, fail("statuses", "%q is listed twice", st)
		}
		m.index[st] = i
		m.nextMust[i] = -1
	}
	lookup := func(option, st string) (int, error) {
		i, ok := m.index[st]
		if !ok {
			return 0, fail(option, "unknown status %q", st)
		}
		return i, nil
	}

	// Listing a status twice in end or repeatable means the same thing as
	// listing it once, so it is accepted.
	for _, st := range s.End {
		i, err := lookup("end", st)
		if err != nil {
			return nil, err
		}
		m.end[i] = true
	}
	for _, st := range s.Repeatable {
		i, err := lookup("repeatable", st)
		if err != nil {
			return nil, err
		}
		m.repeatable[i] = true
	}

	// Map options are checked in sorted order so that a configuration with
	// several mistakes always reports the same one first.
	for _, st := range sortedKeys(s.OnlyFrom) {
		to, err := lookup("only_from", st)
		if err != nil {
			return nil, err
		}
		froms := s.OnlyFrom[st]
		if len(froms) == 0 {
			return nil, fail("only_from", "%q needs at least one status it may follow", st)
		}
		row := make([]bool, n)
		for _, f := range froms {
			from, err := lookup("only_from", f)
			if err != nil {
				return nil, err
			}
			switch {
			case from == to:
				return nil, fail("only_from", "%q cannot follow itself; use repeatable for re-sends", st)
			case m.end[from]:
				return nil, fail("only_from", "%q cannot follow %q, an end status", st, f)
			case from > to:
				return nil, fail("only_from", "%q cannot follow %q, which comes after it in statuses", st, f)
			}
			row[from] = true
		}
		m.onlyFrom[to] = row
		m.onlyFromReason[to] = "orderStatus: " + st + " may only follow " + orList(m.statuses, row)
	}

	for _, st := range sortedKeys(s.NextMustBe) {
		from, err := lookup("next_must_be", st)
		if err != nil {
			return nil, err
		}
		next := s.NextMustBe[st]
		to, err := lookup("next_must_be", next)
		if err != nil {
			return nil, err
		}
		switch {
		case m.end[from]:
			return nil, fail("next_must_be", "%q is an end status; nothing may follow it", st)
		case to == from:
			return nil, fail("next_must_be", "%q cannot be followed by itself; use repeatable for re-sends", st)
		case to < from:
			return nil, fail("next_must_be", "%q cannot be followed by %q, which comes before it in statuses", st, next)
		case m.onlyFrom[to] != nil && !m.onlyFrom[to][from]:
			return nil, fail("next_must_be", "%q must be followed by %q, but only_from does not let %q follow %q", st, next, next, st)
		}
		m.nextMust[from] = to
	}
	return m, nil
}

// Name returns the scenario's name.
func (m *Machine) Name() string { return m.name }

// Has reports whether status is one of the scenario's statuses.
func (m *Machine) Has(status string) bool {
	_, ok := m.index[status]
	return ok
}

// Statuses returns the scenario's statuses in order. The slice is the
// caller's own copy.
func (m *Machine) Statuses() []string {
	return append([]string(nil), m.statuses...)
}

// Decide judges an update to status next, carrying orderModifyTime
// nextModifyTime (epoch ms; 0 = absent), for an order whose stored state is
// current (nil for an order the gateway has not seen). Rules apply in this
// order, the first that matches wins:
//
//  1. next is not a status of the scenario: Reject.
//  2. new order: Forward.
//  3. both times known and next older than current: Reject (equal is fine).
//  4. next is the current status: Forward if repeatable, else AlreadyCurrent.
//  5. the current status is an end status: Reject.
//  6. the current status has next_must_be and next is not it: Reject.
//  7. next has only_from and the current status is not listed: Reject.
//  8. next comes before the current status: Reject.
//  9. otherwise Forward; skipping statuses is allowed.
func (m *Machine) Decide(current *State, next string, nextModifyTime int64) Decision {
	ni, ok := m.index[next]
	if !ok {
		return Decision{Verdict: Reject, Reason: m.notAStatus}
	}
	// A new order may start at any status, even one that has only_from or
	// that would normally need a predecessor: the spec says notifications
	// can start anywhere, and the gateway may have been deployed in the
	// middle of an order's life, so the earlier updates never passed here.
	if current == nil {
		return Decision{Verdict: Forward}
	}
	if nextModifyTime != 0 && current.ModifyTime != 0 && nextModifyTime < current.ModifyTime {
		return Decision{Verdict: Reject, Reason: "orderModifyTime: older than the last accepted update"}
	}
	ci, ok := m.index[current.Status]
	if !ok {
		// The stored status is not (or no longer) part of the scenario:
		// the operator changed its statuses after the order was stored.
		// There is no position to compare against, so the order restarts
		// as if it were new rather than being stuck for ever; the time
		// check above still applies.
		return Decision{Verdict: Forward}
	}
	if ni == ci {
		if m.repeatable[ci] {
			return Decision{Verdict: Forward}
		}
		return Decision{Verdict: AlreadyCurrent}
	}
	cur := m.statuses[ci]
	if m.end[ci] {
		return Decision{Verdict: Reject, Reason: "orderStatus: " + cur + " is an end status; nothing may follow it"}
	}
	if must := m.nextMust[ci]; must >= 0 && must != ni {
		return Decision{Verdict: Reject, Reason: "orderStatus: after " + cur + " only " + m.statuses[must] + " is allowed"}
	}
	if row := m.onlyFrom[ni]; row != nil && !row[ci] {
		return Decision{Verdict: Reject, Reason: m.onlyFromReason[ni]}
	}
	if ni < ci {
		return Decision{Verdict: Reject, Reason: "orderStatus: cannot go back from " + cur + " to " + m.statuses[ni]}
	}
	return Decision{Verdict: Forward}
}

// orList names the statuses marked in set, in scenario order, as
// "A", "A or B" or "A, B or C".
func orList(statuses []string, set []bool) string {
	var names []string
	for i, in := range set {
		if in {
			names = append(names, statuses[i])
		}
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
