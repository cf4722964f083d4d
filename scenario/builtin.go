package scenario

import (
	"embed"
	"fmt"
	"sort"
	"sync"

	"github.com/caddy-alipay/ordersync/schema"
	"github.com/caddy-alipay/ordersync/statemachine"
)

// builtin is a scenario of docs/SPEC.md §6: its state machine, the match
// rule AlipayHK publishes for it (if any), and its embedded schema (if any).
type builtin struct {
	// machine builds the state machine definition afresh on every call, so
	// a configuration that overrides statuses never changes what the next
	// caller gets.
	machine func() statemachine.Scenario
	// match is the published rule. A built-in with one is enabled without
	// configuration; the others need a scenario block naming their
	// merchantBizType, since AlipayHK does not publish it.
	match *rule
	// schema is the embedded schema every request of the scenario must
	// satisfy besides the base schema.
	schema func() (*schema.Schema, error)
}

var builtins = map[string]builtin{
	// Gift Card: one status. Re-sending it is AlreadyCurrent, which is what
	// keeps a retried notification from issuing a second card. The only
	// scenario whose merchantBizType AlipayHK publishes.
	"gift_card": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{Name: "gift_card", Statuses: []string{"TICKETED"}}
		},
		match:  &rule{merchantBizType: "ALIPAY_COUPON", ext: map[string]string{"benefit_issue_mode": "SALE"}},
		schema: embeddedSchema("gift_card"),
	},
	"auto_deduct_voucher": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{Name: "auto_deduct_voucher", Statuses: []string{"TICKETED"}}
		},
	},
	// REFUNDED and USED are both end statuses, so a used coupon cannot be
	// refunded through this API and a refunded one cannot be used.
	"coupon_with_code": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{
				Name:     "coupon_with_code",
				Statuses: []string{"TICKETED", "REFUNDED", "USED"},
				End:      []string{"REFUNDED", "USED"},
			}
		},
	},
	"movie_ticket": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{
				Name:     "movie_ticket",
				Statuses: []string{"TICKETED", "REFUNDED", "USED"},
				End:      []string{"REFUNDED", "USED"},
			}
		},
	},
	// The spec marks no status of Queue Up as (End), so none is declared
	// here: after CANCELLED a later status such as FINISHED is still a
	// forward step. An operator who wants CANCELLED and FINISHED terminal
	// can say so with `end` in the scenario block.
	"queue_up": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{
				Name:       "queue_up",
				Statuses:   []string{"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "CANCELLED", "FINISHED"},
				Repeatable: []string{"CALL_NUM"}, // re-sent on every number call
				OnlyFrom:   map[string][]string{"CANCELLED": {"CALL_NUM"}},
			}
		},
	},
	"self_pick": {
		machine: func() statemachine.Scenario {
			return statemachine.Scenario{
				Name:       "self_pick",
				Statuses:   []string{"PENDING", "ORDER_TAKEN", "TO_PICK_UP", "FINISHED", "CLOSED", "REFUNDED"},
				End:        []string{"FINISHED", "CLOSED", "REFUNDED"},
				NextMustBe: map[string]string{"TO_PICK_UP": "FINISHED"},
			}
		},
	},
}

//go:embed schemas/*.json
var embedded embed.FS

// embeddedSchema compiles schemas/<name>.json once per process: compiled
// schemas are immutable, and every handler and every config reload would
// otherwise compile it again.
func embeddedSchema(name string) func() (*schema.Schema, error) {
	return sync.OnceValues(func() (*schema.Schema, error) {
		file := "schemas/" + name + ".json"
		raw, err := embedded.ReadFile(file)
		if err == nil {
			var s *schema.Schema
			if s, err = schema.Compile(name, raw); err == nil {
				return s, nil
			}
		}
		return nil, fmt.Errorf("scenario %s: embedded %s: %w", name, file, err)
	})
}

// builtinNames returns the names of the built-in scenarios, sorted, for
// configuration errors.
func builtinNames() []string {
	names := make([]string, 0, len(builtins))
	for name := range builtins {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
