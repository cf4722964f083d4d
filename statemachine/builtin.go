package statemachine

import "sort"

// builtins builds each built-in scenario afresh, so that every call to
// Builtin hands out slices and maps that no other caller shares: a caller
// that overrides statuses from its configuration must not change what the
// next caller gets.
var builtins = map[string]func() Scenario{
	// Gift Card: one status. Re-sending it is AlreadyCurrent, which is what
	// keeps a retried notification from issuing a second card.
	"gift_card": func() Scenario {
		return Scenario{Name: "gift_card", Statuses: []string{"TICKETED"}}
	},
	"auto_deduct_voucher": func() Scenario {
		return Scenario{Name: "auto_deduct_voucher", Statuses: []string{"TICKETED"}}
	},
	// REFUNDED and USED are both end statuses, so a used coupon cannot be
	// refunded through this API and a refunded one cannot be used.
	"coupon_with_code": func() Scenario {
		return Scenario{
			Name:     "coupon_with_code",
			Statuses: []string{"TICKETED", "REFUNDED", "USED"},
			End:      []string{"REFUNDED", "USED"},
		}
	},
	"movie_ticket": func() Scenario {
		return Scenario{
			Name:     "movie_ticket",
			Statuses: []string{"TICKETED", "REFUNDED", "USED"},
			End:      []string{"REFUNDED", "USED"},
		}
	},
	// The spec marks no status of Queue Up as (End), so none is declared
	// here: after CANCELLED a later status such as FINISHED is still a
	// forward step. An operator who wants CANCELLED and FINISHED terminal
	// can say so with `end` in the scenario block.
	"queue_up": func() Scenario {
		return Scenario{
			Name:       "queue_up",
			Statuses:   []string{"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "CANCELLED", "FINISHED"},
			Repeatable: []string{"CALL_NUM"}, // re-sent on every number call
			OnlyFrom:   map[string][]string{"CANCELLED": {"CALL_NUM"}},
		}
	},
	"self_pick": func() Scenario {
		return Scenario{
			Name:       "self_pick",
			Statuses:   []string{"PENDING", "ORDER_TAKEN", "TO_PICK_UP", "FINISHED", "CLOSED", "REFUNDED"},
			End:        []string{"FINISHED", "CLOSED", "REFUNDED"},
			NextMustBe: map[string]string{"TO_PICK_UP": "FINISHED"},
		}
	},
}

// Builtin returns the built-in scenario with the given name
// (docs/SPEC.md §6) and whether there is one. The result is the caller's own
// copy and may be modified freely.
func Builtin(name string) (Scenario, bool) {
	build, ok := builtins[name]
	if !ok {
		return Scenario{}, false
	}
	return build(), true
}

// BuiltinNames returns the names of the built-in scenarios, sorted, for
// listing them in configuration errors and documentation.
func BuiltinNames() []string {
	names := make([]string, 0, len(builtins))
	for name := range builtins {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
