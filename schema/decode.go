package schema

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting so a hostile body cannot drive the recursive
// parser (or the validator walking its result) arbitrarily deep. Real order
// bodies nest two or three levels.
const maxDepth = 512

// maxExponent and maxNumberLen bound number literals. The validator turns
// numbers into big.Rat values, and an exponent such as 1e-999999 or a
// literal of thousands of digits costs milliseconds per keyword; nothing
// legitimate in an order body comes near either bound.
const (
	maxExponent  = 400
	maxNumberLen = 256
)

// Rules of the errors returned by Decode, always on the pseudo-field "body"
// so the handler can put err.Error() in resultMessage unchanged.
const (
	ruleNotJSON    = "not valid JSON"
	ruleNotObject  = "must be a JSON object"
	ruleTrailing   = "unexpected data after the JSON object"
	ruleNotUTF8    = "not valid UTF-8"
	ruleTooDeep    = "nested too deeply"
	ruleSurrogate  = "unpaired UTF-16 surrogate in a \\u escape"
	ruleNumberSize = "number out of range"
)

// syntaxError is the parser's internal error; publicError turns it into a
// fresh *FieldError, so no caller can alter an error another request gets.
type syntaxError string

func (e syntaxError) Error() string { return "body: " + string(e) }

const (
	errNotJSON    = syntaxError(ruleNotJSON)
	errNotUTF8    = syntaxError(ruleNotUTF8)
	errTooDeep    = syntaxError(ruleTooDeep)
	errSurrogate  = syntaxError(ruleSurrogate)
	errNumberSize = syntaxError(ruleNumberSize)
)

// Decode parses raw as exactly one JSON object and returns it in the shape
// jsonschema/v6 validates: map[string]any, []any, string, json.Number, bool
// and nil.
//
// It is stricter than encoding/json because the body is also forwarded and
// signed: a duplicate key, invalid UTF-8 or an unpaired surrogate escape
// could be read one way here and another way by the upstream, so they are
// rejected instead of being resolved silently. Errors are *FieldError values
// on the field "body"; they may name a key but never quote a value.
func Decode(raw []byte) (any, error) {
	// One copy of the whole body; every key, string and number without
	// escapes is then a substring of it, allocation-free, and nothing
	// aliases the caller's buffer.
	p := parser{data: string(raw)}
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, bodyError(ruleNotJSON)
	}
	if c := p.data[p.pos]; c != '{' {
		// Anything that starts like a JSON value is well-formed enough for
		// the more useful message; the rest is simply not JSON.
		if strings.IndexByte(`["-0123456789tfn`, c) >= 0 {
			return nil, bodyError(ruleNotObject)
		}
		return nil, bodyError(ruleNotJSON)
	}
	v, err := p.object(0)
	if err != nil {
		return nil, publicError(err)
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, bodyError(ruleTrailing)
	}
	return v, nil
}

func bodyError(rule string) *FieldError { return &FieldError{Field: "body", Rule: rule} }

// decodeAny is Decode without the top-level object requirement, for schema
// documents (a schema may be a bare true or false).
func decodeAny(raw []byte) (any, error) {
	p := parser{data: string(raw)}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, publicError(err)
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, bodyError(ruleTrailing)
	}
	return v, nil
}

// publicError turns the parser's internal errors into *FieldError.
func publicError(err error) error {
	switch e := err.(type) {
	case *dupKeyError:
		return e.fieldError()
	case syntaxError:
		return bodyError(string(e))
	}
	return err
}

// dupKeyError reports a repeated object key. path is built while the error
// unwinds through the enclosing containers, so the happy path pays nothing
// for it.
type dupKeyError struct{ path []string }

func (e *dupKeyError) fieldError() *FieldError {
	segs := make([]string, len(e.path))
	for i, s := range e.path {
		segs[len(e.path)-1-i] = s
	}
	// strconv.Quote escapes control and invalid bytes, so a hostile key
	// cannot inject anything into a log line or the reply.
	return newFieldError("body", "duplicate key "+strconv.Quote(truncate(strings.Join(segs, "."), 100)))
}

func (e *dupKeyError) Error() string { return e.fieldError().Error() }

type parser struct {
	data string
	pos  int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if p.pos >= len(p.data) {
		return nil, errNotJSON
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, errNotJSON
}

func (p *parser) literal(lit string) error {
	if p.data[p.pos:min(len(p.data), p.pos+len(lit))] != lit {
		return errNotJSON
	}
	p.pos += len(lit)
	return nil
}

func (p *parser) object(depth int) (any, error) {
	if depth >= maxDepth {
		return nil, errTooDeep
	}
	p.pos++ // '{'
	p.skipSpace()
	// Order bodies carry about a dozen top-level keys; sizing the map once
	// avoids rehashing on the hot path.
	hint := 0
	if depth == 0 {
		hint = 16
	}
	m := make(map[string]any, hint)
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, errNotJSON
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, &dupKeyError{path: []string{key}}
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, errNotJSON
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			if d, ok := err.(*dupKeyError); ok {
				d.path = append(d.path, key)
			}
			return nil, err
		}
		m[key] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errNotJSON
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return m, nil
		default:
			return nil, errNotJSON
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	if depth >= maxDepth {
		return nil, errTooDeep
	}
	p.pos++ // '['
	p.skipSpace()
	a := []any{}
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			if d, ok := err.(*dupKeyError); ok {
				d.path = append(d.path, strconv.Itoa(len(a)))
			}
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errNotJSON
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			return a, nil
		default:
			return nil, errNotJSON
		}
	}
}

// number checks the RFC 8259 grammar and keeps the literal as json.Number,
// so no precision is lost before the validator sees it.
func (p *parser) number() (any, error) {
	d := p.data
	start := p.pos
	i := p.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, errNotJSON
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, errNotJSON
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, errNotJSON
		}
		exp := 0
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			if exp <= maxExponent {
				exp = exp*10 + int(d[i]-'0')
			}
			i++
		}
		if exp > maxExponent {
			return nil, errNumberSize
		}
	}
	if i-start > maxNumberLen {
		return nil, errNumberSize
	}
	p.pos = i
	return json.Number(d[start:i]), nil
}

// str parses a JSON string starting at the opening quote. Strings without
// escapes, the usual case, are substrings of the input.
func (p *parser) str() (string, error) {
	d := p.data
	p.pos++ // opening quote
	start := p.pos
	i := p.pos
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return d[start:i], nil
		case c == '\\':
			return p.strSlow(start, i)
		case c < 0x20:
			return "", errNotJSON
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(d[i:])
			if r == utf8.RuneError && size == 1 {
				return "", errNotUTF8
			}
			i += size
		}
	}
	return "", errNotJSON
}

// strSlow finishes a string that contains escapes; esc is the index of the
// first backslash.
func (p *parser) strSlow(start, esc int) (string, error) {
	d := p.data
	var buf strings.Builder
	buf.Grow(esc - start + 16)
	buf.WriteString(d[start:esc])
	i := esc
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return buf.String(), nil
		case c == '\\':
			if i+1 >= len(d) {
				return "", errNotJSON
			}
			switch d[i+1] {
			case '"', '\\', '/':
				buf.WriteByte(d[i+1])
				i += 2
			case 'b':
				buf.WriteByte('\b')
				i += 2
			case 'f':
				buf.WriteByte('\f')
				i += 2
			case 'n':
				buf.WriteByte('\n')
				i += 2
			case 'r':
				buf.WriteByte('\r')
				i += 2
			case 't':
				buf.WriteByte('\t')
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					return "", errNotJSON
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// Only a high surrogate followed by an escaped low
					// surrogate makes a character.
					if r >= 0xDC00 || i+1 >= len(d) || d[i] != '\\' || d[i+1] != 'u' {
						return "", errSurrogate
					}
					r2, ok := hex4(d, i+2)
					if !ok {
						return "", errNotJSON
					}
					if r2 < 0xDC00 || r2 > 0xDFFF {
						return "", errSurrogate
					}
					r = utf16.DecodeRune(r, r2)
					i += 6
				}
				buf.WriteRune(r)
			default:
				return "", errNotJSON
			}
		case c < 0x20:
			return "", errNotJSON
		case c < utf8.RuneSelf:
			buf.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(d[i:])
			if r == utf8.RuneError && size == 1 {
				return "", errNotUTF8
			}
			buf.WriteString(d[i : i+size])
			i += size
		}
	}
	return "", errNotJSON
}

func hex4(d string, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
