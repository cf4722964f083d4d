// Package scenario is the catalog of order-sync scenarios. A scenario is
// three things kept together: its state machine (package statemachine),
// the rule that selects it for a request (merchantBizType, and extInfo
// values with match_ext), and the JSON Schemas its requests must satisfy
// besides the base schema (package schema). The built-ins of
// docs/SPEC.md §6 and the scenarios an operator configures are built
// the same way, by New, from the same Config.
package scenario

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/schema"
	"github.com/caddy-alipay/ordersync/statemachine"
)

// giftCard is enabled even when the configuration does not list it
// (README, "Scenarios and their state machines").
const giftCard = "gift_card"

// Config enables a built-in scenario or defines a custom one. It is the
// `scenario` block of the Caddyfile and the handler's JSON config; errors
// name its options as the Caddyfile spells them.
type Config struct {
	// Name is a built-in scenario name or the name of a custom one.
	Name string `json:"name"`
	// MerchantBizType selects requests with this merchantBizType.
	MerchantBizType string `json:"merchant_biz_type,omitempty"`
	// MatchExt additionally requires these extInfo values.
	MatchExt map[string]string `json:"match_ext,omitempty"`
	// SchemaFile is an extra JSON Schema the request must satisfy.
	SchemaFile string `json:"schema_file,omitempty"`
	// Statuses, End, Repeatable, OnlyFrom and NextMustBe describe the
	// state machine; for a built-in they replace its values when set.
	Statuses   []string            `json:"statuses,omitempty"`
	End        []string            `json:"end,omitempty"`
	Repeatable []string            `json:"repeatable,omitempty"`
	OnlyFrom   map[string][]string `json:"only_from,omitempty"`
	NextMustBe map[string]string   `json:"next_must_be,omitempty"`
}

// Scenario is one enabled scenario. It is immutable and safe for concurrent
// use.
type Scenario struct {
	name    string
	match   rule
	machine *statemachine.Machine
	schemas []*schema.Schema
}

// rule selects the scenario of a request: its merchantBizType, and every
// ext key with that string value in extInfo.
type rule struct {
	merchantBizType string
	ext             map[string]string
}

func (r *rule) matches(req *message.Request) bool {
	if req.MerchantBizType != r.merchantBizType {
		return false
	}
	for k, want := range r.ext {
		if got, ok := req.ExtString(k); !ok || got != want {
			return false
		}
	}
	return true
}

// Name is the scenario's name, as configured and as forwarded upstream.
func (s *Scenario) Name() string { return s.name }

// Machine is the scenario's state machine.
func (s *Scenario) Machine() *statemachine.Machine { return s.machine }

// Validate checks a decoded body (message.Document.Tree) against every
// schema of the scenario, the embedded one first, then the operator's
// schema_file. A scenario without a schema accepts anything. The error, if
// any, is a *message.FieldError.
func (s *Scenario) Validate(doc any) error {
	for _, sch := range s.schemas {
		if err := sch.Validate(doc); err != nil {
			return err
		}
	}
	return nil
}

// Catalog is the set of enabled scenarios, in the order Match tries them.
// It is immutable and safe for concurrent use.
type Catalog struct {
	scenarios []*Scenario
}

// New builds the catalog from the configured scenarios, adding gift_card
// when it is not configured. A built-in takes its state machine, match rule
// and schema from the built-in table, each replaced by what the Config sets
// (a schema_file adds to the embedded schema instead: a request must
// satisfy both). Every mistake is an error naming the scenario and the
// option: an unknown scenario without statuses, a state machine whose rules
// contradict each other (statemachine.New), a missing merchant_biz_type, a
// schema_file that cannot be read or compiled, two scenarios with the same
// match rule (one of them could never be selected).
func New(configs []Config) (*Catalog, error) {
	if !slices.ContainsFunc(configs, func(c Config) bool { return c.Name == giftCard }) {
		configs = append(configs[:len(configs):len(configs)], Config{Name: giftCard})
	}
	c := &Catalog{}
	seen := map[string]bool{}
	for _, cfg := range configs {
		if cfg.Name == "" {
			return nil, errors.New("scenario: name is empty")
		}
		if seen[cfg.Name] {
			return nil, fmt.Errorf("scenario %s: configured twice", cfg.Name)
		}
		seen[cfg.Name] = true
		s, err := build(cfg)
		if err != nil {
			return nil, err
		}
		for _, other := range c.scenarios {
			if other.match.merchantBizType == s.match.merchantBizType && maps.Equal(other.match.ext, s.match.ext) {
				return nil, fmt.Errorf("scenario %s: merchant_biz_type and match_ext are the same as scenario %s's, so one of them could never match; add a match_ext condition to tell them apart", s.name, other.name)
			}
		}
		c.scenarios = append(c.scenarios, s)
	}
	// A scenario with more match_ext conditions is more specific and wins
	// over one that only names the merchantBizType. Equally specific rules
	// that could both match one request are tried in configuration order.
	slices.SortStableFunc(c.scenarios, func(a, b *Scenario) int {
		return len(b.match.ext) - len(a.match.ext)
	})
	return c, nil
}

func build(cfg Config) (*Scenario, error) {
	b, isBuiltin := builtins[cfg.Name]
	def := statemachine.Scenario{Name: cfg.Name}
	if isBuiltin {
		def = b.machine()
	} else if len(cfg.Statuses) == 0 {
		return nil, fmt.Errorf("scenario %s: not a built-in scenario (%s), so it needs statuses", cfg.Name, strings.Join(builtinNames(), ", "))
	}
	if len(cfg.Statuses) > 0 {
		def.Statuses = cfg.Statuses
	}
	if cfg.End != nil {
		def.End = cfg.End
	}
	if cfg.Repeatable != nil {
		def.Repeatable = cfg.Repeatable
	}
	if cfg.OnlyFrom != nil {
		def.OnlyFrom = cfg.OnlyFrom
	}
	if cfg.NextMustBe != nil {
		def.NextMustBe = cfg.NextMustBe
	}
	machine, err := statemachine.New(def)
	if err != nil {
		return nil, err
	}
	s := &Scenario{name: cfg.Name, machine: machine, match: rule{merchantBizType: cfg.MerchantBizType, ext: cfg.MatchExt}}
	if cfg.MerchantBizType == "" && len(cfg.MatchExt) == 0 && b.match != nil {
		s.match = *b.match
	}
	if s.match.merchantBizType == "" {
		return nil, fmt.Errorf("scenario %s: merchant_biz_type is required (AlipayHK does not publish it for this scenario)", cfg.Name)
	}
	if b.schema != nil {
		sch, err := b.schema()
		if err != nil {
			return nil, err
		}
		s.schemas = append(s.schemas, sch)
	}
	if cfg.SchemaFile != "" {
		raw, err := os.ReadFile(cfg.SchemaFile)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: schema_file: %v", cfg.Name, err)
		}
		sch, err := schema.Compile(cfg.Name, raw)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: schema_file: %s: %v", cfg.Name, cfg.SchemaFile, err)
		}
		s.schemas = append(s.schemas, sch)
	}
	return s, nil
}

// Match returns the scenario of a request: the first, most specific one
// whose rule holds, or nil when no enabled scenario matches.
func (c *Catalog) Match(req *message.Request) *Scenario {
	for _, s := range c.scenarios {
		if s.match.matches(req) {
			return s
		}
	}
	return nil
}

// Lookup returns the enabled scenario called name, or nil. The egress
// outbox stores each entry's scenario by name, and an operator's requeue
// judges the entry by that scenario's state machine as configured now.
func (c *Catalog) Lookup(name string) *Scenario {
	for _, s := range c.scenarios {
		if s.name == name {
			return s
		}
	}
	return nil
}
