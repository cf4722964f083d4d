// Package schema checks AlipayHK order-sync request bodies, as decoded by
// message.Decode, against JSON Schema (draft 2020-12): the embedded base
// schema every request must satisfy, and the schemas of scenarios (package
// scenario holds which scenario has which).
//
// Every failure is a *message.FieldError naming the field as the spec
// writes it (docs/SPEC.md §4: amount.currency, extInfo.product_id) and the rule it broke, in
// at most message.MaxResultMessageLen bytes and without the offending
// value, because the message goes back to the caller as resultMessage and
// into logs.
//
// Schemas may carry an "errorMessage" annotation, a string or an object
// keyed by keyword ({"pattern": "must be ..."}), to override the default
// rule text for violations raised by that subschema.
package schema

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/currency"

	"github.com/caddy-alipay/ordersync/message"
)

// FormatISO4217 is the custom "format" for ISO 4217 currency codes. It is
// asserted (not just annotated) in every schema, custom ones included.
const FormatISO4217 = "iso4217"

// FormatEpochMillis is the custom "format" for epoch-millisecond times
// (message.ParseEpochMillis: a plain integer literal from 0 to
// 9999-12-31T23:59:59.999Z). It replaces "type": "integer" with minimum and
// maximum, which the validator evaluates through big.Rat on every request,
// and it is stricter: 1.0 and 1e3 are not epoch milliseconds any SDK sends.
const FormatEpochMillis = "epoch-millis"

// FormatNoControl is the custom "format" of the ids that reach a header or
// a store key: no control character (U+0000 to U+001F, U+007F). It is the
// pattern ^[^\x00-\x1f\x7f]*$ as a loop over the bytes: the base schema
// applies it to six fields of every request, and a regular expression
// match per field cost more than the rest of their checks together.
const FormatNoControl = "no-control-chars"

// schemaBase prefixes the URLs schemas are registered under. It is never
// fetched: external references are refused (see noLoader).
const schemaBase = "https://github.com/caddy-alipay/ordersync/schema/"

//go:embed schemas/base.json
var baseJSON []byte

// Schema is one compiled schema plus the documents it came from, which are
// needed to read errorMessage annotations when translating errors. It is
// immutable and safe for concurrent use.
type Schema struct {
	sch  *jsonschema.Schema
	docs map[string]any
}

// Base returns the schema of the fields every request has
// (schemas/base.json), compiled once per process.
var Base = sync.OnceValues(func() (*Schema, error) {
	s, err := compile(schemaBase+"base.json", baseJSON)
	if err != nil {
		return nil, fmt.Errorf("schemas/base.json: %w", err)
	}
	return s, nil
})

// Compile compiles a scenario's schema (an embedded one, or an operator's
// schema_file). A schema that does not compile, or names a format that is
// not checked, is an error, never "no validation". Schemas must be
// self-contained: references to other files or URLs are refused so that
// loading a config never reads the network. The scenario name only places
// the schema under a URL of its own, for its internal references.
func Compile(scenario string, raw []byte) (*Schema, error) {
	if scenario == "" {
		return nil, errors.New("scenario name is empty")
	}
	return compile(schemaBase+"scenarios/"+url.PathEscape(scenario)+".json", raw)
}

// Validate checks doc (a message.Document's Tree). The error, if any, is a
// *message.FieldError.
func (s *Schema) Validate(doc any) error {
	if err := s.sch.Validate(doc); err != nil {
		return s.translate(err)
	}
	return nil
}

// compile builds one schema with its own compiler, so a schema that fails
// leaves nothing half-registered behind.
func compile(loc string, raw []byte) (*Schema, error) {
	doc, err := message.DecodeValue(raw)
	if err != nil {
		var fe *message.FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("schema %s", fe.Rule)
		}
		return nil, err
	}
	if name, ok := unknownFormat(doc); ok {
		return nil, fmt.Errorf("unknown format %q (known: iso4217, epoch-millis, no-control-chars and the JSON Schema formats)", name)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation by default; the currency
	// check (and any format in a custom schema) must actually reject.
	comp.AssertFormat()
	comp.RegisterFormat(&jsonschema.Format{Name: FormatISO4217, Validate: validateISO4217})
	comp.RegisterFormat(&jsonschema.Format{Name: FormatEpochMillis, Validate: validateEpochMillis})
	comp.RegisterFormat(&jsonschema.Format{Name: FormatNoControl, Validate: validateNoControl})
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
	return &Schema{sch: sch, docs: docs}, nil
}

// knownFormats are the formats the compiler asserts: jsonschema/v6's
// built-in ones and ours. JSON Schema says to ignore an unknown format, but
// here a typo ("date_time") would silently switch a check off, so
// Compile refuses it instead.
var knownFormats = map[string]bool{
	FormatISO4217: true, FormatEpochMillis: true, FormatNoControl: true, "regex": true,
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

var (
	errControlChar = ruleError("must not contain control characters")
	errNotISO4217  = ruleError("not an ISO 4217 code")
	errNotEpochInt = ruleError(message.ErrNotEpochInt.Error())
	errEpochRange  = ruleError(message.ErrEpochRange.Error())
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

// validateNoControl implements FormatNoControl. Non-strings are left to the
// "type" keyword.
func validateNoControl(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return errControlChar
		}
	}
	return nil
}

// validateEpochMillis implements FormatEpochMillis. Non-numbers are left to
// the "type" keyword. Decoded bodies hold json.Number; the other number
// types are what a document built in Go may hold.
func validateEpochMillis(v any) error {
	var literal string
	switch n := v.(type) {
	case json.Number:
		literal = string(n)
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			return errNotEpochInt
		}
		if n < 0 || n > message.MaxEpochMillis {
			return errEpochRange
		}
		return nil
	case int:
		literal = strconv.Itoa(n)
	case int64:
		literal = strconv.FormatInt(n, 10)
	default:
		return nil
	}
	if _, err := message.ParseEpochMillis(literal); err != nil {
		return ruleError(err.Error())
	}
	return nil
}
