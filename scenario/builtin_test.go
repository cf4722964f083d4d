package scenario

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/statemachine"
)

// builtinDef is a built-in's state machine definition, as New starts from.
func builtinDef(name string) (statemachine.Scenario, bool) {
	b, ok := builtins[name]
	if !ok {
		return statemachine.Scenario{}, false
	}
	return b.machine(), true
}

func mustBuiltin(t testing.TB, name string) *statemachine.Machine {
	t.Helper()
	s, ok := builtinDef(name)
	if !ok {
		t.Fatalf("builtinDef(%q): not found", name)
	}
	m, err := statemachine.New(s)
	if err != nil {
		t.Fatalf("statemachine.New(%q): %v", name, err)
	}
	return m
}

// pickupQueue is a custom scenario written in the README's scenario syntax:
//
//	scenario pickup_queue {
//	    statuses CALL_NUM TO_PICK_UP CANCELLED FINISHED
//	    end CANCELLED FINISHED
//	    repeatable CALL_NUM
//	    only_from CANCELLED CALL_NUM
//	    next_must_be TO_PICK_UP FINISHED
//	}
func pickupQueue() statemachine.Scenario {
	return statemachine.Scenario{
		Name:       "pickup_queue",
		Statuses:   []string{"CALL_NUM", "TO_PICK_UP", "CANCELLED", "FINISHED"},
		End:        []string{"CANCELLED", "FINISHED"},
		Repeatable: []string{"CALL_NUM"},
		OnlyFrom:   map[string][]string{"CANCELLED": {"CALL_NUM"}},
		NextMustBe: map[string]string{"TO_PICK_UP": "FINISHED"},
	}
}

func st(status string, ms int64) *statemachine.State {
	return &statemachine.State{Status: status, ModifyTime: ms}
}

type decideCase struct {
	current *statemachine.State
	next    string
	at      int64
	want    statemachine.Verdict
	reason  string // substring of statemachine.Decision.Reason; "" means Reason must be empty
}

// singleTicketed covers every rule that can apply to a scenario with the
// one status TICKETED (gift_card, auto_deduct_voucher): rules 5–9 need two
// statuses and cannot occur.
func singleTicketed(name string) []decideCase {
	return []decideCase{
		{nil, "USED", 0, statemachine.Reject, "orderStatus: not a status of scenario " + name},                             // 1
		{st("TICKETED", 100), "", 100, statemachine.Reject, "orderStatus: not a status of scenario " + name},               // 1
		{st("TICKETED", 100), "ticketed", 100, statemachine.Reject, "orderStatus: not a status of scenario"},               // 1: case matters
		{nil, "TICKETED", 0, statemachine.Forward, ""},                                                                     // 2
		{nil, "TICKETED", 100, statemachine.Forward, ""},                                                                   // 2
		{st("TICKETED", 100), "TICKETED", 99, statemachine.Reject, "orderModifyTime: older than the last accepted update"}, // 3
		{st("TICKETED", 100), "TICKETED", 100, statemachine.AlreadyCurrent, ""},                                            // 4: equal time is not older
		{st("TICKETED", 100), "TICKETED", 101, statemachine.AlreadyCurrent, ""},                                            // 4: no second gift card
		{st("TICKETED", 100), "TICKETED", 0, statemachine.AlreadyCurrent, ""},                                              // 4: time absent
		{st("TICKETED", 0), "TICKETED", 5, statemachine.AlreadyCurrent, ""},                                                // 4: stored time unknown
	}
}

// ticketRefundUse covers coupon_with_code and movie_ticket: TICKETED, then
// REFUNDED or USED, both end statuses.
func ticketRefundUse(name string) []decideCase {
	return []decideCase{
		{nil, "CANCELLED", 0, statemachine.Reject, "orderStatus: not a status of scenario " + name},                              // 1
		{st("USED", 100), "FINISHED", 200, statemachine.Reject, "not a status of scenario " + name},                              // 1 before 5
		{nil, "TICKETED", 100, statemachine.Forward, ""},                                                                         // 2
		{nil, "USED", 100, statemachine.Forward, ""},                                                                             // 2: start at an end status
		{nil, "REFUNDED", 0, statemachine.Forward, ""},                                                                           // 2
		{st("TICKETED", 100), "USED", 50, statemachine.Reject, "orderModifyTime: older"},                                         // 3
		{st("USED", 100), "TICKETED", 50, statemachine.Reject, "orderModifyTime: older"},                                         // 3 before 5
		{st("REFUNDED", 100), "REFUNDED", 99, statemachine.Reject, "orderModifyTime: older"},                                     // 3 before 4
		{st("TICKETED", 100), "TICKETED", 100, statemachine.AlreadyCurrent, ""},                                                  // 4
		{st("REFUNDED", 100), "REFUNDED", 200, statemachine.AlreadyCurrent, ""},                                                  // 4: even for an end status
		{st("USED", 100), "USED", 0, statemachine.AlreadyCurrent, ""},                                                            // 4
		{st("REFUNDED", 100), "USED", 200, statemachine.Reject, "orderStatus: REFUNDED is an end status; nothing may follow it"}, // 5
		{st("USED", 100), "REFUNDED", 200, statemachine.Reject, "orderStatus: USED is an end status; nothing may follow it"},     // 5 before 8
		{st("USED", 100), "TICKETED", 200, statemachine.Reject, "orderStatus: USED is an end status"},                            // 5 before 8
		{st("REFUNDED", 0), "TICKETED", 0, statemachine.Reject, "orderStatus: REFUNDED is an end status"},                        // 5
		{st("TICKETED", 100), "REFUNDED", 100, statemachine.Forward, ""},                                                         // 9
		{st("TICKETED", 100), "USED", 200, statemachine.Forward, ""},                                                             // 9: skips REFUNDED
		{st("TICKETED", 100), "USED", 0, statemachine.Forward, ""},                                                               // 9: time absent
	}
}

var decideCases = map[string][]decideCase{
	"gift_card":           singleTicketed("gift_card"),
	"auto_deduct_voucher": singleTicketed("auto_deduct_voucher"),
	"coupon_with_code":    ticketRefundUse("coupon_with_code"),
	"movie_ticket":        ticketRefundUse("movie_ticket"),
	"queue_up": {
		{nil, "TICKETED", 0, statemachine.Reject, "orderStatus: not a status of scenario queue_up"},                        // 1
		{st("CALL_NUM", 100), "call_num", 200, statemachine.Reject, "not a status of scenario queue_up"},                   // 1
		{nil, "CALL_NUM", 100, statemachine.Forward, ""},                                                                   // 2
		{nil, "CANCELLED", 100, statemachine.Forward, ""},                                                                  // 2: only_from does not bind a new order
		{nil, "FINISHED", 100, statemachine.Forward, ""},                                                                   // 2
		{st("CALL_NUM", 100), "CALL_NUM", 99, statemachine.Reject, "orderModifyTime: older than the last accepted update"}, // 3: even repeatable
		{st("NUMBER_PASSED", 100), "CALL_NUM", 99, statemachine.Reject, "orderModifyTime: older"},                          // 3 before 8
		{st("CALL_NUM", 100), "CALL_NUM", 100, statemachine.Forward, ""},                                                   // 4: repeatable, equal time
		{st("CALL_NUM", 100), "CALL_NUM", 150, statemachine.Forward, ""},                                                   // 4: repeatable, newer time
		{st("CALL_NUM", 100), "CALL_NUM", 0, statemachine.Forward, ""},                                                     // 4: repeatable, time absent
		{st("NUMBER_ARRIVED", 100), "NUMBER_ARRIVED", 150, statemachine.AlreadyCurrent, ""},                                // 4
		{st("CANCELLED", 100), "CANCELLED", 150, statemachine.AlreadyCurrent, ""},                                          // 4
		{st("FINISHED", 100), "FINISHED", 150, statemachine.AlreadyCurrent, ""},                                            // 4
		// 5 and 6: the spec declares no end status and no next_must_be for Queue Up.
		{st("CANCELLED", 100), "FINISHED", 150, statemachine.Forward, ""},                                                                // no end: FINISHED still follows
		{st("NUMBER_ARRIVED", 100), "CANCELLED", 150, statemachine.Reject, "orderStatus: CANCELLED may only follow CALL_NUM"},            // 7
		{st("NUMBER_PASSED", 100), "CANCELLED", 150, statemachine.Reject, "orderStatus: CANCELLED may only follow CALL_NUM"},             // 7
		{st("FINISHED", 100), "CANCELLED", 150, statemachine.Reject, "orderStatus: CANCELLED may only follow CALL_NUM"},                  // 7 before 8
		{st("NUMBER_ARRIVED", 100), "CALL_NUM", 150, statemachine.Reject, "orderStatus: cannot go back from NUMBER_ARRIVED to CALL_NUM"}, // 8
		{st("FINISHED", 100), "NUMBER_PASSED", 150, statemachine.Reject, "orderStatus: cannot go back from FINISHED to NUMBER_PASSED"},   // 8
		{st("CALL_NUM", 100), "CANCELLED", 150, statemachine.Forward, ""},                                                                // 9: only_from satisfied, skipping
		{st("CALL_NUM", 100), "NUMBER_ARRIVED", 150, statemachine.Forward, ""},                                                           // 9
		{st("CALL_NUM", 100), "FINISHED", 150, statemachine.Forward, ""},                                                                 // 9: skipping
		{st("NUMBER_ARRIVED", 100), "NUMBER_PASSED", 0, statemachine.Forward, ""},                                                        // 9
	},
	"self_pick": {
		{nil, "USED", 0, statemachine.Reject, "orderStatus: not a status of scenario self_pick"},                                     // 1
		{st("TO_PICK_UP", 100), "USED", 200, statemachine.Reject, "not a status of scenario self_pick"},                              // 1 before 6
		{nil, "PENDING", 100, statemachine.Forward, ""},                                                                              // 2
		{nil, "TO_PICK_UP", 100, statemachine.Forward, ""},                                                                           // 2
		{nil, "REFUNDED", 100, statemachine.Forward, ""},                                                                             // 2
		{st("PENDING", 100), "ORDER_TAKEN", 99, statemachine.Reject, "orderModifyTime: older"},                                       // 3
		{st("TO_PICK_UP", 100), "CLOSED", 99, statemachine.Reject, "orderModifyTime: older"},                                         // 3 before 6
		{st("PENDING", 100), "PENDING", 100, statemachine.AlreadyCurrent, ""},                                                        // 4
		{st("TO_PICK_UP", 100), "TO_PICK_UP", 100, statemachine.AlreadyCurrent, ""},                                                  // 4 before 6
		{st("FINISHED", 100), "FINISHED", 200, statemachine.AlreadyCurrent, ""},                                                      // 4 before 5
		{st("REFUNDED", 100), "REFUNDED", 200, statemachine.AlreadyCurrent, ""},                                                      // 4 before 5
		{st("FINISHED", 100), "REFUNDED", 200, statemachine.Reject, "orderStatus: FINISHED is an end status; nothing may follow it"}, // 5
		{st("CLOSED", 100), "REFUNDED", 200, statemachine.Reject, "orderStatus: CLOSED is an end status; nothing may follow it"},     // 5
		{st("REFUNDED", 100), "PENDING", 200, statemachine.Reject, "orderStatus: REFUNDED is an end status; nothing may follow it"},  // 5 before 8
		{st("TO_PICK_UP", 100), "CLOSED", 200, statemachine.Reject, "orderStatus: after TO_PICK_UP only FINISHED is allowed"},        // 6
		{st("TO_PICK_UP", 100), "REFUNDED", 200, statemachine.Reject, "orderStatus: after TO_PICK_UP only FINISHED is allowed"},      // 6
		{st("TO_PICK_UP", 100), "PENDING", 200, statemachine.Reject, "orderStatus: after TO_PICK_UP only FINISHED is allowed"},       // 6 before 8
		// 7: the spec declares no only_from for Self Pick.
		{st("ORDER_TAKEN", 100), "PENDING", 200, statemachine.Reject, "orderStatus: cannot go back from ORDER_TAKEN to PENDING"}, // 8
		{st("TO_PICK_UP", 100), "FINISHED", 200, statemachine.Forward, ""},                                                       // 9
		{st("PENDING", 100), "TO_PICK_UP", 200, statemachine.Forward, ""},                                                        // 9: skipping
		{st("PENDING", 100), "REFUNDED", 200, statemachine.Forward, ""},                                                          // 9: skipping to an end
		{st("ORDER_TAKEN", 100), "CLOSED", 100, statemachine.Forward, ""},                                                        // 9: equal time
		{st("ORDER_TAKEN", 0), "FINISHED", 100, statemachine.Forward, ""},                                                        // 9: stored time unknown
	},
}

func checkDecision(t *testing.T, m *statemachine.Machine, c decideCase) {
	t.Helper()
	cur := "nil"
	if c.current != nil {
		cur = fmt.Sprintf("%s@%d", c.current.Status, c.current.ModifyTime)
	}
	got := m.Decide(c.current, c.next, c.at)
	if got.Verdict != c.want {
		t.Errorf("%s: %s -> %q@%d: verdict %v (%q), want %v", m.Name(), cur, c.next, c.at, got.Verdict, got.Reason, c.want)
		return
	}
	if c.reason == "" && got.Reason != "" {
		t.Errorf("%s: %s -> %q@%d: unexpected reason %q", m.Name(), cur, c.next, c.at, got.Reason)
	}
	if !strings.Contains(got.Reason, c.reason) {
		t.Errorf("%s: %s -> %q@%d: reason %q, want it to contain %q", m.Name(), cur, c.next, c.at, got.Reason, c.reason)
	}
	if got.Verdict == statemachine.Reject && got.Reason == "" {
		t.Errorf("%s: %s -> %q@%d: statemachine.Reject without a reason", m.Name(), cur, c.next, c.at)
	}
}

func TestDecideBuiltins(t *testing.T) {
	for _, name := range builtinNames() {
		cases, ok := decideCases[name]
		if !ok {
			t.Errorf("no decision table for built-in %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			m := mustBuiltin(t, name)
			for _, c := range cases {
				checkDecision(t, m, c)
			}
		})
	}
}

// TestDecideUnknownStoredStatus pins the choice for a stored status that the
// scenario no longer has (its statuses were reconfigured): the order starts
// afresh, but a stale update is still refused.
func TestDecideUnknownStoredStatus(t *testing.T) {
	m := mustBuiltin(t, "self_pick")
	checkDecision(t, m, decideCase{st("GONE", 100), "PENDING", 200, statemachine.Forward, ""})
	checkDecision(t, m, decideCase{st("", 0), "PENDING", 0, statemachine.Forward, ""})
	checkDecision(t, m, decideCase{st("GONE", 100), "PENDING", 99, statemachine.Reject, "orderModifyTime: older"})
}

// TestBuiltinOverridesRefused: a configuration that overrides a built-in's
// rules so that they contradict each other is refused by statemachine.New,
// naming the scenario, the option and the status.
func TestBuiltinOverridesRefused(t *testing.T) {
	qu := func(edit func(*statemachine.Scenario)) statemachine.Scenario {
		s, _ := builtinDef("queue_up")
		edit(&s)
		return s
	}
	sp := func(edit func(*statemachine.Scenario)) statemachine.Scenario {
		s, _ := builtinDef("self_pick")
		edit(&s)
		return s
	}
	for _, c := range []struct {
		s    statemachine.Scenario
		want string // the whole error
	}{
		{qu(func(s *statemachine.Scenario) { s.End = []string{"FINISHED", "DONE"} }), `scenario queue_up: end: unknown status "DONE"`},
		{qu(func(s *statemachine.Scenario) { s.Repeatable = []string{"call_num"} }), `scenario queue_up: repeatable: unknown status "call_num"`},
		{qu(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"CANCELLED": {"FOO"}} }), `scenario queue_up: only_from: unknown status "FOO"`},
		{qu(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"FOO": {"CALL_NUM"}} }), `scenario queue_up: only_from: unknown status "FOO"`},
		{qu(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"CANCELLED": nil} }), `scenario queue_up: only_from: "CANCELLED" needs at least one status it may follow`},
		{qu(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"CANCELLED": {"CANCELLED"}} }), `scenario queue_up: only_from: "CANCELLED" cannot follow itself; use repeatable for re-sends`},
		{qu(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"CANCELLED": {"FINISHED"}} }), `scenario queue_up: only_from: "CANCELLED" cannot follow "FINISHED", which comes after it in statuses`},
		{qu(func(s *statemachine.Scenario) { s.End = []string{"CALL_NUM"} }), `scenario queue_up: only_from: "CANCELLED" cannot follow "CALL_NUM", an end status`},
		{sp(func(s *statemachine.Scenario) { s.NextMustBe = map[string]string{"TO_PICK_UP": "DONE"} }), `scenario self_pick: next_must_be: unknown status "DONE"`},
		{sp(func(s *statemachine.Scenario) { s.NextMustBe = map[string]string{"": "FINISHED"} }), `scenario self_pick: next_must_be: unknown status ""`},
		{sp(func(s *statemachine.Scenario) { s.NextMustBe = map[string]string{"FINISHED": "CLOSED"} }), `scenario self_pick: next_must_be: "FINISHED" is an end status; nothing may follow it`},
		{sp(func(s *statemachine.Scenario) { s.NextMustBe = map[string]string{"TO_PICK_UP": "TO_PICK_UP"} }), `scenario self_pick: next_must_be: "TO_PICK_UP" cannot be followed by itself; use repeatable for re-sends`},
		{sp(func(s *statemachine.Scenario) { s.NextMustBe = map[string]string{"TO_PICK_UP": "PENDING"} }), `scenario self_pick: next_must_be: "TO_PICK_UP" cannot be followed by "PENDING", which comes before it in statuses`},
		{sp(func(s *statemachine.Scenario) { s.OnlyFrom = map[string][]string{"FINISHED": {"PENDING"}} }), `scenario self_pick: next_must_be: "TO_PICK_UP" must be followed by "FINISHED", but only_from does not let "FINISHED" follow "TO_PICK_UP"`},
		// Several mistakes: map options are checked in sorted key order.
		{qu(func(s *statemachine.Scenario) {
			s.OnlyFrom = map[string][]string{"ZZZ": {"CALL_NUM"}, "AAA": {"CALL_NUM"}}
		}), `scenario queue_up: only_from: unknown status "AAA"`},
	} {
		m, err := statemachine.New(c.s)
		if err == nil {
			t.Errorf("statemachine.New(%+v) = %v, want error %q", c.s, m, c.want)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("statemachine.New(%+v):\n got  %q\n want %q", c.s, err, c.want)
		}
	}
}

func TestBuiltins(t *testing.T) {
	want := []string{"auto_deduct_voucher", "coupon_with_code", "gift_card", "movie_ticket", "queue_up", "self_pick"}
	if got := builtinNames(); !slices.Equal(got, want) {
		t.Fatalf("builtinNames() = %v, want %v", got, want)
	}
	if _, ok := builtinDef("cinema"); ok {
		t.Error(`builtinDef("cinema") found`)
	}
	statuses := map[string][]string{
		"gift_card":           {"TICKETED"},
		"auto_deduct_voucher": {"TICKETED"},
		"coupon_with_code":    {"TICKETED", "REFUNDED", "USED"},
		"movie_ticket":        {"TICKETED", "REFUNDED", "USED"},
		"queue_up":            {"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "CANCELLED", "FINISHED"},
		"self_pick":           {"PENDING", "ORDER_TAKEN", "TO_PICK_UP", "FINISHED", "CLOSED", "REFUNDED"},
	}
	for _, name := range want {
		m := mustBuiltin(t, name)
		if m.Name() != name {
			t.Errorf("Name() = %q, want %q", m.Name(), name)
		}
		if got := m.Statuses(); !slices.Equal(got, statuses[name]) {
			t.Errorf("%s: Statuses() = %v, want %v", name, got, statuses[name])
		}
		for _, s := range statuses[name] {
			if !m.Has(s) {
				t.Errorf("%s: Has(%q) = false", name, s)
			}
		}
		if m.Has("NOPE") || m.Has("") {
			t.Errorf("%s: Has reports an unknown status", name)
		}
	}
}

// TestBuiltinIsACopy guards against a caller that overrides a built-in's
// options from its configuration changing the built-in for everyone else.
func TestBuiltinIsACopy(t *testing.T) {
	for _, name := range builtinNames() {
		orig, _ := builtinDef(name)
		s, _ := builtinDef(name)
		s.Name = "changed"
		s.Statuses[0] = "CHANGED"
		s.End = append(s.End[:0:0], "X")
		if len(s.Repeatable) > 0 {
			s.Repeatable[0] = "CHANGED"
		}
		for k, v := range s.OnlyFrom {
			v[0] = "CHANGED"
			s.OnlyFrom[k+"2"] = v
		}
		for k := range s.NextMustBe {
			s.NextMustBe[k] = "CHANGED"
		}
		if again, _ := builtinDef(name); !reflect.DeepEqual(again, orig) {
			t.Errorf("%s: changing a returned scenario changed the built-in:\n%+v\n%+v", name, again, orig)
		}
	}
}

// TestDecideProperties feeds random update sequences to every built-in
// (and pickupQueue) and checks, over the updates the machine lets
// through, the guarantees the contract makes rather than the rules one by
// one: never back, only repeatable re-sends forwarded, nothing after an end
// status, only_from and next_must_be obeyed, no stale update accepted.
func TestDecideProperties(t *testing.T) {
	scenarios := []statemachine.Scenario{pickupQueue()}
	for _, name := range builtinNames() {
		s, _ := builtinDef(name)
		scenarios = append(scenarios, s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range scenarios {
		m, err := statemachine.New(s)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string]int{}
		for i, x := range s.Statuses {
			pos[x] = i
		}
		end := setOf(s.End)
		repeatable := setOf(s.Repeatable)
		seen := map[statemachine.Verdict]int{}

		for range 3000 {
			var cur *statemachine.State
			ended := false
			clock := int64(1_700_000_000_000)
			for range 1 + rng.IntN(12) {
				next := s.Statuses[rng.IntN(len(s.Statuses))]
				if rng.IntN(20) == 0 {
					next = "NOT_A_STATUS"
				}
				var at int64
				switch rng.IntN(6) {
				case 0: // absent
				case 1: // stale
					at = clock - 1 - rng.Int64N(1000)
				case 2: // same instant
					at = clock
				default:
					clock += rng.Int64N(1000)
					at = clock
				}

				d := m.Decide(cur, next, at)
				seen[d.Verdict]++
				if d.Verdict == statemachine.Reject && d.Reason == "" {
					t.Fatalf("%s: statemachine.Reject without a reason", s.Name)
				}
				if d.Verdict != statemachine.Reject && d.Reason != "" {
					t.Fatalf("%s: %v with a reason %q", s.Name, d.Verdict, d.Reason)
				}
				if _, known := pos[next]; !known && d.Verdict != statemachine.Reject {
					t.Fatalf("%s: unknown status got %v", s.Name, d.Verdict)
				}
				if cur == nil {
					if _, known := pos[next]; known && d.Verdict != statemachine.Forward {
						t.Fatalf("%s: new order at %s got %v", s.Name, next, d.Verdict)
					}
				} else if d.Verdict != statemachine.Reject {
					if at != 0 && cur.ModifyTime != 0 && at < cur.ModifyTime {
						t.Fatalf("%s: stale update %s@%d accepted after %s@%d", s.Name, next, at, cur.Status, cur.ModifyTime)
					}
					from, to := pos[cur.Status], pos[next]
					switch d.Verdict {
					case statemachine.AlreadyCurrent:
						if to != from || repeatable[next] {
							t.Fatalf("%s: statemachine.AlreadyCurrent for %s after %s", s.Name, next, cur.Status)
						}
					case statemachine.Forward:
						if to < from {
							t.Fatalf("%s: went back from %s to %s", s.Name, cur.Status, next)
						}
						if to == from && !repeatable[next] {
							t.Fatalf("%s: re-send of non-repeatable %s forwarded", s.Name, next)
						}
						if ended && !(to == from && repeatable[next]) {
							t.Fatalf("%s: %s forwarded after end status %s", s.Name, next, cur.Status)
						}
						if only, ok := s.OnlyFrom[next]; ok && to != from && !slices.Contains(only, cur.Status) {
							t.Fatalf("%s: %s forwarded after %s despite only_from", s.Name, next, cur.Status)
						}
						if must, ok := s.NextMustBe[cur.Status]; ok && to != from && next != must {
							t.Fatalf("%s: %s forwarded after %s despite next_must_be", s.Name, next, cur.Status)
						}
					}
				}

				// What the gateway stores once the upstream said SUCCESS.
				if d.Verdict == statemachine.Forward {
					stored := at
					if stored == 0 && cur != nil {
						stored = cur.ModifyTime
					}
					cur = &statemachine.State{Status: next, ModifyTime: stored}
					ended = end[next]
				}
			}
		}
		// A property test that never rejects or never forwards proves little.
		for _, v := range []statemachine.Verdict{statemachine.Forward, statemachine.AlreadyCurrent, statemachine.Reject} {
			if seen[v] == 0 {
				t.Errorf("%s: random sequences never produced %v", s.Name, v)
			}
		}
	}
}

func setOf(list []string) map[string]bool {
	set := map[string]bool{}
	for _, x := range list {
		set[x] = true
	}
	return set
}

// TestDecideDoesNotAllocate keeps the per-request path free of garbage for
// the verdicts that need no formatted reason.
func TestDecideDoesNotAllocate(t *testing.T) {
	qu := mustBuiltin(t, "queue_up")
	sp := mustBuiltin(t, "self_pick")
	for _, c := range []struct {
		name string
		f    func() statemachine.Decision
	}{
		{"forward new", func() statemachine.Decision { return sp.Decide(nil, "PENDING", 1) }},
		{"forward", func() statemachine.Decision { return sp.Decide(st("ORDER_TAKEN", 1), "TO_PICK_UP", 2) }},
		{"forward repeatable", func() statemachine.Decision { return qu.Decide(st("CALL_NUM", 1), "CALL_NUM", 2) }},
		{"already current", func() statemachine.Decision { return sp.Decide(st("FINISHED", 1), "FINISHED", 2) }},
		{"reject unknown", func() statemachine.Decision { return sp.Decide(st("FINISHED", 1), "NOPE", 2) }},
		{"reject stale", func() statemachine.Decision { return sp.Decide(st("PENDING", 2), "FINISHED", 1) }},
		{"reject only_from", func() statemachine.Decision { return qu.Decide(st("NUMBER_ARRIVED", 1), "CANCELLED", 2) }},
	} {
		if n := testing.AllocsPerRun(100, func() { _ = c.f() }); n != 0 {
			t.Errorf("%s: %v allocations per Decide, want 0", c.name, n)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	sp := mustBuiltin(b, "self_pick")
	qu := mustBuiltin(b, "queue_up")
	for _, c := range []struct {
		name    string
		m       *statemachine.Machine
		current *statemachine.State
		next    string
	}{
		{"forward", sp, st("ORDER_TAKEN", 1), "TO_PICK_UP"},
		{"forward_new", sp, nil, "PENDING"},
		{"forward_repeatable", qu, st("CALL_NUM", 1), "CALL_NUM"},
		{"already_current", sp, st("TO_PICK_UP", 1), "TO_PICK_UP"},
		{"reject_back", sp, st("ORDER_TAKEN", 1), "PENDING"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.m.Decide(c.current, c.next, 2)
			}
		})
	}
}
