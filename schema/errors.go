package schema

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/caddy-alipay/ordersync/message"
)

// candidate is one translated violation, with what is needed to pick the
// most relevant one deterministically.
type candidate struct {
	field string
	depth int
	rank  int
	rule  string
}

// Ranks order violations on the same field: a missing or mistyped field
// explains every other complaint about it.
const (
	rankRequired = iota
	rankType
	rankValue
	rankCombined
)

// translate turns a jsonschema validation error into the single most
// relevant *message.FieldError: the shallowest field first, then by path, so the
// answer does not depend on the validator's map iteration order.
func (c *Schema) translate(err error) error {
	verr, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return message.NewFieldError("body", "failed validation")
	}
	var cands []candidate
	c.collect(verr, &cands)
	if len(cands) == 0 {
		return message.NewFieldError("body", "failed validation")
	}
	best := slices.MinFunc(cands, func(a, b candidate) int {
		return cmp.Or(
			cmp.Compare(a.depth, b.depth),
			cmp.Compare(a.field, b.field),
			cmp.Compare(a.rank, b.rank),
			cmp.Compare(a.rule, b.rule),
		)
	})
	return message.NewFieldError(best.field, best.rule)
}

// collect walks the error tree. Wrappers (the root, groups, allOf, $ref) are
// transparent; anyOf/oneOf are reported as one violation because their
// branches are alternatives, and blaming one branch would mislead.
func (c *Schema) collect(e *jsonschema.ValidationError, out *[]candidate) {
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		for _, cause := range e.Causes {
			c.collect(cause, out)
		}
		if len(e.Causes) > 0 {
			return
		}
	case *kind.AnyOf:
		*out = append(*out, c.alternatives(e, "anyOf", "does not match any allowed form"))
		return
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			*out = append(*out, c.alternatives(e, "oneOf", "does not match any allowed form"))
		} else {
			*out = append(*out, c.leaf(e, nil, "oneOf", rankCombined, "matches more than one allowed form"))
		}
		return
	case *kind.Required:
		for _, name := range k.Missing {
			*out = append(*out, c.leaf(e, []string{name}, "required", rankRequired, "required"))
		}
		return
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			*out = append(*out, c.leaf(e, []string{name}, "additionalProperties", rankValue, "not allowed"))
		}
		return
	case *kind.Dependency:
		for _, name := range k.Missing {
			*out = append(*out, c.leaf(e, []string{name}, "dependencies", rankRequired,
				"required when "+sanitize(k.Prop, 64)+" is present"))
		}
		return
	case *kind.DependentRequired:
		for _, name := range k.Missing {
			*out = append(*out, c.leaf(e, []string{name}, "dependentRequired", rankRequired,
				"required when "+sanitize(k.Prop, 64)+" is present"))
		}
		return
	case *kind.PropertyNames:
		*out = append(*out, c.leaf(e, []string{k.Property}, "propertyNames", rankValue, "not an allowed property name"))
		return
	}
	kw := ""
	if p := e.ErrorKind.KeywordPath(); len(p) > 0 {
		kw = p[0]
	}
	rank, rule := defaultRule(e.ErrorKind)
	*out = append(*out, c.leaf(e, nil, kw, rank, rule))
}

// leaf builds a candidate at the error's instance location (plus extra path
// segments), using the schema's errorMessage for keyword kw when it has one.
func (c *Schema) leaf(e *jsonschema.ValidationError, extra []string, kw string, rank int, rule string) candidate {
	if msg, ok := c.customMessage(e.SchemaURL, kw); ok {
		rule = msg
	}
	loc := e.InstanceLocation
	if len(extra) > 0 {
		loc = append(slices.Clip(loc), extra...)
	}
	return candidate{field: fieldPath(loc), depth: len(loc), rank: rank, rule: rule}
}

// alternatives describes a failed anyOf/oneOf. The common case, "one of
// these properties must be present", is recognised from the branches'
// errors: each branch names exactly one property directly under the object
// being checked.
func (c *Schema) alternatives(e *jsonschema.ValidationError, kw, fallback string) candidate {
	base := e.InstanceLocation
	var names []string
	for _, branch := range e.Causes {
		name, ok := branchProperty(branch, len(base))
		if !ok {
			names = nil
			break
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	rule := fallback
	var extra []string
	if types := branchTypes(e); len(types) >= 2 {
		rule = "must be " + strings.Join(types, " or ")
	} else if len(names) >= 2 {
		extra = names[:1]
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = sanitize(n, 64)
		}
		rule = "one of " + strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1] + " is required"
	}
	return c.leaf(e, extra, kw, rankCombined, rule)
}

// branchTypes recognises the other common shape, a choice of types for one
// value ({"anyOf":[{"type":"string"},{"type":"null"}]}): every branch failed
// only on "type" at the value itself.
func branchTypes(e *jsonschema.ValidationError) []string {
	var types []string
	for _, branch := range e.Causes {
		for len(branch.Causes) == 1 {
			if _, ok := branch.ErrorKind.(*kind.Reference); !ok {
				break
			}
			branch = branch.Causes[0]
		}
		t, ok := branch.ErrorKind.(*kind.Type)
		if !ok || len(branch.Causes) > 0 || !slices.Equal(branch.InstanceLocation, e.InstanceLocation) {
			return nil
		}
		for _, w := range t.Want {
			if w = article(w); !slices.Contains(types, w) {
				types = append(types, w)
			}
		}
	}
	return types
}

// branchProperty returns the single property, one level below depth, that a
// failed branch complains about.
func branchProperty(e *jsonschema.ValidationError, depth int) (string, bool) {
	var name string
	var walk func(*jsonschema.ValidationError) bool
	walk = func(e *jsonschema.ValidationError) bool {
		var n string
		switch k := e.ErrorKind.(type) {
		case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
			if len(e.Causes) > 0 {
				for _, cause := range e.Causes {
					if !walk(cause) {
						return false
					}
				}
				return true
			}
			return false
		case *kind.Required:
			if len(e.InstanceLocation) != depth || len(k.Missing) != 1 {
				return false
			}
			n = k.Missing[0]
		default:
			if len(e.InstanceLocation) != depth+1 {
				return false
			}
			n = e.InstanceLocation[depth]
		}
		if name != "" && name != n {
			return false
		}
		name = n
		return true
	}
	if !walk(e) || name == "" {
		return "", false
	}
	return name, true
}

// defaultRule is the message for a keyword when the schema gives none. It
// may quote the schema (a bound, a format name) but never the instance.
func defaultRule(k jsonschema.ErrorKind) (int, string) {
	switch k := k.(type) {
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = article(w)
		}
		return rankType, "must be " + strings.Join(want, " or ")
	case *kind.MinLength:
		if k.Want == 1 {
			return rankValue, "must not be empty"
		}
		return rankValue, fmt.Sprintf("shorter than %d characters", k.Want)
	case *kind.MaxLength:
		return rankValue, fmt.Sprintf("longer than %d characters", k.Want)
	case *kind.Pattern:
		return rankValue, "does not match the expected pattern"
	case *kind.Format:
		var re ruleError
		if errors.As(k.Err, &re) {
			return rankValue, string(re)
		}
		return rankValue, formatRule(k.Want)
	case *kind.Minimum:
		return rankValue, "must be at least " + ratString(k.Want)
	case *kind.Maximum:
		return rankValue, "must be at most " + ratString(k.Want)
	case *kind.ExclusiveMinimum:
		return rankValue, "must be greater than " + ratString(k.Want)
	case *kind.ExclusiveMaximum:
		return rankValue, "must be less than " + ratString(k.Want)
	case *kind.MultipleOf:
		return rankValue, "must be a multiple of " + ratString(k.Want)
	case *kind.Enum:
		return rankValue, "not one of the allowed values"
	case *kind.Const:
		return rankValue, "not the required value"
	case *kind.MinProperties:
		return rankValue, fmt.Sprintf("must have at least %d properties", k.Want)
	case *kind.MaxProperties:
		return rankValue, fmt.Sprintf("must have at most %d properties", k.Want)
	case *kind.MinItems:
		return rankValue, fmt.Sprintf("must have at least %d items", k.Want)
	case *kind.MaxItems:
		return rankValue, fmt.Sprintf("must have at most %d items", k.Want)
	case *kind.UniqueItems:
		return rankValue, "items must be unique"
	case *kind.AdditionalItems:
		return rankValue, "too many items"
	case *kind.Contains, *kind.MinContains, *kind.MaxContains:
		return rankValue, "does not contain the expected items"
	case *kind.Not:
		return rankValue, "matches a forbidden form"
	case *kind.FalseSchema:
		return rankValue, "not allowed"
	case *kind.ContentEncoding, *kind.ContentMediaType, *kind.ContentSchema:
		return rankValue, "invalid content"
	}
	return rankValue, "invalid"
}

// formatRule names a standard format; our own formats explain themselves
// through ruleError.
func formatRule(name string) string {
	switch name {
	case "date-time":
		return "not an RFC 3339 date-time"
	case "email":
		return "not an email address"
	}
	return "not a valid " + sanitize(name, 40)
}

// ratString shows a schema bound the way it was likely written: 10, 0.5.
func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return message.Truncate(r.RatString(), 40)
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func article(jsonType string) string {
	switch jsonType {
	case "object", "array", "integer":
		return "an " + jsonType
	case "null":
		return "null"
	}
	return "a " + jsonType
}

// fieldPath joins an instance location the way the spec writes fields.
// Keys come from the request, so they are made printable and bounded; a
// key is a name, not a value, and may be shown.
func fieldPath(loc []string) string {
	if len(loc) == 0 {
		return "body"
	}
	var b strings.Builder
	for i, seg := range loc {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(sanitize(seg, 64))
		if b.Len() > message.MaxResultMessageLen {
			break
		}
	}
	return b.String()
}

// sanitize replaces anything unprintable so request-supplied names cannot
// break a log line or the reply, and bounds the length.
func sanitize(s string, n int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r == utf8.RuneError || !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, s)
	}
	return message.Truncate(s, n)
}

// customMessage looks up the optional "errorMessage" annotation at the
// schema location that raised the error: either a string for any keyword of
// that subschema or an object keyed by keyword. jsonschema ignores unknown
// keywords, so the annotation is read from the schema document kept at
// compile time.
func (c *Schema) customMessage(schemaURL, kw string) (string, bool) {
	base, frag, _ := strings.Cut(schemaURL, "#")
	doc, ok := c.docs[base]
	if !ok {
		return "", false
	}
	node := doc
	if frag != "" {
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			tok, err := url.PathUnescape(tok)
			if err != nil {
				return "", false
			}
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch n := node.(type) {
			case map[string]any:
				node = n[tok]
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i < 0 || i >= len(n) {
					return "", false
				}
				node = n[i]
			default:
				return "", false
			}
		}
	}
	obj, ok := node.(map[string]any)
	if !ok {
		return "", false
	}
	// Operator text, but it still ends up in logs and replies: keep it to
	// one printable line (message.NewFieldError bounds its length).
	switch m := obj["errorMessage"].(type) {
	case string:
		return sanitize(m, message.MaxResultMessageLen), m != ""
	case map[string]any:
		if s, ok := m[kw].(string); ok && s != "" {
			return sanitize(s, message.MaxResultMessageLen), true
		}
	}
	return "", false
}
