package message

import "unicode/utf8"

// MaxResultMessageLen is the cap on resultMessage: at most 256 characters
// (docs/SPEC.md §5). It is defined here, the lowest package whose
// errors end up in resultMessage, so that every package bounding a message
// (this one, schema, the envelope) uses the same number.
const MaxResultMessageLen = 256

// maxRuleLen keeps room for a useful field path even when a rule (a custom
// schema's errorMessage) is long.
const maxRuleLen = 160

// FieldError is a request body that broke one rule. Field is the path as
// the spec writes it (requestId, amount.currency, extInfo.product_id, or
// "body" for the document as a whole); Rule says what is wrong. Neither
// ever contains the offending value, so Error() is safe for resultMessage
// and logs. Decode and package schema both report *FieldError.
type FieldError struct {
	Field string
	Rule  string
}

// Error returns "Field: Rule", at most MaxResultMessageLen bytes.
func (e *FieldError) Error() string {
	return Truncate(e.Field+": "+e.Rule, MaxResultMessageLen)
}

// NewFieldError bounds both parts so the joined message fits, shortening
// the path first: the rule is the part a caller can act on.
func NewFieldError(field, rule string) *FieldError {
	rule = Truncate(rule, maxRuleLen)
	if room := MaxResultMessageLen - len(": ") - len(rule); len(field) > room {
		field = Truncate(field, room)
	}
	return &FieldError{Field: field, Rule: rule}
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut
// with "...".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	if n <= len(mark) {
		return mark[:max(n, 0)]
	}
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
