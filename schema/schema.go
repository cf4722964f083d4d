// Package schema checks AlipayHK order-sync request bodies: a strict JSON
// decode, then JSON Schema (draft 2020-12) validation against the embedded
// base schema, the built-in scenario schemas and operators' custom ones.
//
// Every failure is a *FieldError naming the field as the spec writes it
// (docs/SPEC.md §4: amount.currency, extInfo.product_id) and the rule it broke, in at most
// 256 bytes and without the offending value, because the message goes back
// to the caller as resultMessage and into logs.
//
// Schemas may carry an "errorMessage" annotation, a string or an object
// keyed by keyword ({"pattern": "must be ..."}), to override the default
// rule text for violations raised by that subschema.
package schema

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/currency"
)

// FormatISO4217 is the custom "format" for ISO 4217 currency codes. It is
// asserted (not just annotated) in every schema, custom ones included.
const FormatISO4217 = "iso4217"

// FormatEpochMillis is the custom "format" for epoch-millisecond times: a
// plain integer literal (no fraction, no exponent) from 0 to 253402300799999
// (9999-12-31T23:59:59.999Z). It replaces "type": "integer" with minimum and
// maximum, which the validator evaluates through big.Rat on every request,
// and it is stricter: 1.0 and 1e3 are not epoch milliseconds any SDK sends.
const FormatEpochMillis = "epoch-millis"

// GiftCard is the built-in scenario whose schema is embedded.
const GiftCard = "gift_card"

// schemaBase prefixes the URLs schemas are registered under. It is never
// fetched: external references are refused (see noLoader).
const schemaBase = "https://github.com/caddy-alipay/ordersync/schema/"

//go:embed schemas/*.json
var embedded embed.FS

// Validator holds compiled schemas; build it with New. It is safe for
// concurrent use: AddScenario is meant for configuration time, but calling
// it while other goroutines validate is also safe.
type Validator struct {
	base *compiled

	mu        sync.Mutex                             // serializes AddScenario
	scenarios atomic.Pointer[map[string][]*compiled] // copy-on-write: validation never locks
}

// compiled is one schema plus the documents it came from, which are needed
// to read errorMessage annotations when translating errors.
type compiled struct {
	sch  *jsonschema.Schema
	docs map[string]any
}

// New compiles the embedded schemas: base.json and gift_card.json.
func New() (*Validator, error) {
	base, err := compileEmbedded("base.json")
	if err != nil {
		return nil, err
	}
	gift, err := compileEmbedded("gift_card.json")
	if err != nil {
		return nil, err
	}
	v := &Validator{base: base}
	m := map[string][]*compiled{GiftCard: {gift}}
	v.scenarios.Store(&m)
	return v, nil
}

func compileEmbedded(file string) (*compiled, error) {
	raw, err := embedded.ReadFile("schemas/" + file)
	if err != nil {
		return nil, fmt.Errorf("schemas/%s: %w", file, err)
	}
	c, err := compile(schemaBase+file, raw)
	if err != nil {
		return nil, fmt.Errorf("schemas/%s: %w", file, err)
	}
	return c, nil
}

// AddScenario adds a schema for the named scenario, as read from an
// operator's schema_file; source (the file path) prefixes any error. A
// request must satisfy every schema of its scenario, so for a built-in
// scenario the file adds to the embedded schema rather than replacing it.
// A schema that does not compile, or names a format that is not checked,
// is an error, never "no validation".
// Schemas must be self-contained: references to other files or URLs are
// refused so that loading a config never reads the network.
func (v *Validator) AddScenario(name string, schemaJSON []byte, source string) error {
	if name == "" {
		return fmt.Errorf("%s: scenario name is empty", source)
	}
	c, err := compile(schemaBase+"scenarios/"+url.PathEscape(name)+".json", schemaJSON)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.scenarios.Load()
	m := make(map[string][]*compiled, len(old)+1)
	for k, list := range old {
		m[k] = list
	}
	// A fresh slice, so readers of the old map never see it change.
	m[name] = append(append([]*compiled(nil), old[name]...), c)
	v.scenarios.Store(&m)
	return nil
}

// HasScenario reports whether at least one schema applies to the scenario.
func (v *Validator) HasScenario(name string) bool {
	return len((*v.scenarios.Load())[name]) > 0
}

// ValidateBase checks doc (from Decode) against the base fields of every
// request. The error, if any, is a *FieldError.
func (v *Validator) ValidateBase(doc any) error {
	return v.base.validate(doc)
}

// ValidateScenario checks doc against every schema of the scenario, in the
// order they were added. A scenario without a schema accepts anything.
func (v *Validator) ValidateScenario(name string, doc any) error {
	for _, c := range (*v.scenarios.Load())[name] {
		if err := c.validate(doc); err != nil {
			return err
		}
	}
	return nil
}

func (c *compiled) validate(doc any) error {
	if err := c.sch.Validate(doc); err != nil {
		return c.translate(err)
	}
	return nil
}

// compile builds one schema with its own compiler, so a schema that fails
// leaves nothing half-registered behind.
func compile(loc string, raw []byte) (*compiled, error) {
	doc, err := decodeAny(raw)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("schema %s", fe.Rule)
		}
		return nil, err
	}
	if name, ok := unknownFormat(doc); ok {
		return nil, fmt.Errorf("unknown format %q (known: iso4217, epoch-millis and the JSON Schema formats)", name)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation by default; the currency
	// check (and any format in a custom schema) must actually reject.
	comp.AssertFormat()
	comp.RegisterFormat(&jsonschema.Format{Name: FormatISO4217, Validate: validateISO4217})
	comp.RegisterFormat(&jsonschema.Format{Name: FormatEpochMillis, Validate: validateEpochMillis})
	comp.UseLoader(noLoader{})
	if err := comp.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := comp.Compile(loc)
	if err != nil {
		return nil, err
	}
	docs := map[string]any{loc: doc}
	// Errors name schema locations by the document's own $id when it has
	// one, so index the document under that too.
	if obj, ok := doc.(map[string]any); ok {
		if id, ok := obj["$id"].(string); ok {
			if u, err := url.Parse(id); err == nil && u.IsAbs() {
				u.Fragment = ""
				docs[u.String()] = doc
			}
		}
	}
	return &compiled{sch: sch, docs: docs}, nil
}

// knownFormats are the formats the compiler asserts: jsonschema/v6's
// built-in ones and ours. JSON Schema says to ignore an unknown format, but
// here a typo ("date_time") would silently switch a check off, so
// AddScenario refuses it instead.
var knownFormats = map[string]bool{
	FormatISO4217: true, FormatEpochMillis: true, "regex": true,
	"date-time": true, "date": true, "time": true, "duration": true, "period": true,
	"email": true, "hostname": true, "ipv4": true, "ipv6": true,
	"uri": true, "uri-reference": true, "iri": true, "iri-reference": true, "uri-template": true,
	"uuid": true, "json-pointer": true, "relative-json-pointer": true, "semver": true,
}

// unknownFormat finds a "format" keyword naming a format nobody checks.
// Keywords whose values are data, not schemas, are skipped.
func unknownFormat(node any) (string, bool) {
	switch n := node.(type) {
	case map[string]any:
		if f, ok := n["format"].(string); ok && !knownFormats[f] {
			return f, true
		}
		for k, v := range n {
			switch k {
			case "enum", "const", "default", "examples", "errorMessage":
				continue
			}
			if name, ok := unknownFormat(v); ok {
				return name, true
			}
		}
	case []any:
		for _, v := range n {
			if name, ok := unknownFormat(v); ok {
				return name, true
			}
		}
	}
	return "", false
}

// noLoader refuses every external reference.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("external schema references are not supported (%s); put the definitions in $defs", u)
}

// ruleError is an error from one of our formats whose text is a complete,
// value-free rule, so translation can show it as is.
type ruleError string

func (e ruleError) Error() string { return string(e) }

const (
	errNotISO4217  = ruleError("not an ISO 4217 code")
	errNotEpochInt = ruleError("must be an integer (epoch milliseconds)")
	errEpochRange  = ruleError("must be between 0 and 253402300799999 (epoch milliseconds)")
	maxEpochMillis = 253402300799999 // 9999-12-31T23:59:59.999Z
	maxEpochDigits = 15
)

// validateISO4217 accepts upper-case codes known to ISO 4217. currency.ParseISO
// alone is case-insensitive, and the spec's codes are upper case.
func validateISO4217(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil // "type" reports non-strings
	}
	if len(s) != 3 {
		return errNotISO4217
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return errNotISO4217
		}
	}
	if _, err := currency.ParseISO(s); err != nil {
		return errNotISO4217
	}
	return nil
}

// validateEpochMillis implements FormatEpochMillis. Non-numbers are left to
// the "type" keyword.
func validateEpochMillis(v any) error {
	switch n := v.(type) {
	case json.Number:
		return checkEpochLiteral(string(n))
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			return errNotEpochInt
		}
		if n < 0 || n > maxEpochMillis {
			return errEpochRange
		}
	case int:
		return checkEpochLiteral(strconv.Itoa(n))
	case int64:
		return checkEpochLiteral(strconv.FormatInt(n, 10))
	}
	return nil
}

func checkEpochLiteral(s string) error {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return errNotEpochInt
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return errNotEpochInt
		}
	}
	if neg && strings.Trim(digits, "0") != "" {
		return errEpochRange
	}
	if len(digits) > maxEpochDigits {
		return errEpochRange
	}
	if n, err := strconv.ParseInt(digits, 10, 64); err != nil || n > maxEpochMillis {
		return errEpochRange
	}
	return nil
}
