package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// maxDepth bounds nesting so a hostile body cannot drive the recursive
// tree builder (or the validator walking its result) arbitrarily deep. Real
// order bodies nest two or three levels; jsontext's own limit is 10000.
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

func bodyError(rule string) *FieldError { return &FieldError{Field: "body", Rule: rule} }

// Document is a request body decoded once, strictly. It holds the tree the
// JSON Schema validator walks (Tree) and what the typed Request needs that
// the tree lacks: the raw bytes of extInfo, which are forwarded as received.
// A Document is not safe for concurrent modification (SetString).
type Document struct {
	src  string         // the one copy of the body; the tree's strings share it
	tree map[string]any // map[string]any, []any, string, json.Number, bool, nil
	ext  span           // extInfo's raw bytes in src, when it is an object
}

// span is a byte range of Document.src; the zero span is "absent".
type span struct{ start, end int }

// Decode parses raw as exactly one JSON object.
//
// It is stricter than encoding/json because the body is also forwarded and
// signed: a duplicate key, invalid UTF-8 or an unpaired surrogate escape
// could be read one way here and another way by the upstream, so they are
// rejected instead of being resolved silently; so are nesting deeper than
// 512 levels and numbers with more than 256 characters or an exponent over
// 400. Errors are *FieldError values on the field "body"; they may name a
// key but never quote a value.
//
// The grammar, UTF-8, escapes and duplicate names are checked by the
// jsontext tokenizer; this function builds the tree from its tokens in the
// same pass and adds the bounds and the rule names above.
func Decode(raw []byte) (*Document, error) {
	d := getDecoder(raw)
	defer d.release()
	switch d.dec.PeekKind() {
	case '{':
	case '[', '"', '0', 't', 'f', 'n':
		// Well-formed enough to say what is wrong with it.
		return nil, bodyError(ruleNotObject)
	default:
		return nil, bodyError(ruleNotJSON)
	}
	_, at, err := d.next() // the '{' PeekKind saw
	if err != nil {
		return nil, err
	}
	tree, err := d.object(at, 0, nil)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return &Document{src: d.src, tree: tree, ext: d.ext}, nil
}

// DecodeValue is Decode for any JSON value, not only an object: package
// schema reads schema documents (which may be a bare true or false) with
// the same strictness.
func DecodeValue(raw []byte) (any, error) {
	d := getDecoder(raw)
	defer d.release()
	tok, at, err := d.next()
	if err != nil {
		return nil, err
	}
	v, err := d.value(tok, at, 0, nil)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// Tree returns the document in the shape jsonschema/v6 validates:
// map[string]any, []any, string, json.Number, bool and nil. Callers must
// not modify it.
func (d *Document) Tree() any { return d.tree }

// decoder builds a tree from jsontext tokens. It is pooled: a
// jsontext.Decoder is a few hundred bytes of state that would otherwise be
// allocated per request.
type decoder struct {
	dec jsontext.Decoder
	in  bytes.Buffer // reading from a bytes.Buffer lets jsontext skip its own copy
	raw []byte       // the caller's body, read only while decoding
	src string       // the same bytes as in, copied once; strings are cut from it
	ext span         // where the top-level extInfo object is in src
	esc []byte       // scratch for unquoting strings with escapes
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func getDecoder(raw []byte) *decoder {
	d := decoders.Get().(*decoder)
	d.in = *bytes.NewBuffer(raw)
	d.dec.Reset(&d.in)
	d.raw = raw
	d.src = string(raw)
	d.ext = span{}
	return d
}

// release drops every reference to the body before pooling the decoder.
func (d *decoder) release() {
	d.in = bytes.Buffer{}
	d.dec.Reset(&d.in)
	d.raw, d.src = nil, ""
	if cap(d.esc) > 4<<10 {
		d.esc = nil // one odd body should not pin a large buffer in the pool
	}
	decoders.Put(d)
}

// end checks that nothing but whitespace follows the top-level value.
// jsontext would read a second value as a stream; a body has one.
func (d *decoder) end() error {
	rest := d.src[d.dec.InputOffset():]
	if strings.TrimLeft(rest, " \t\r\n") != "" {
		return bodyError(ruleTrailing)
	}
	return nil
}

// next reads the next token and returns where it starts in src. jsontext
// reports where a token ends (InputOffset) but not where it starts; the
// start is past the whitespace and the one ',' or ':' before it.
func (d *decoder) next() (jsontext.Token, int, error) {
	from := int(d.dec.InputOffset())
	tok, err := d.dec.ReadToken()
	if err != nil {
		return tok, 0, d.fail(err, from)
	}
	return tok, tokenStart(d.src, from), nil
}

func tokenStart(src string, i int) int {
	i = skipSpace(src, i)
	if i < len(src) && (src[i] == ',' || src[i] == ':') {
		i = skipSpace(src, i+1)
	}
	return i
}

func skipSpace(src string, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}

// value builds the value that starts with tok, read at start; self, when
// not nil, receives the value's byte range if it is an object.
func (d *decoder) value(tok jsontext.Token, start, depth int, self *span) (any, error) {
	switch tok.Kind() {
	case '{':
		return d.object(start, depth, self)
	case '[':
		return d.array(depth)
	case '"':
		return d.text(start), nil
	case '0':
		lit := d.src[start:d.dec.InputOffset()]
		if !numberInBounds(lit) {
			return nil, bodyError(ruleNumberSize)
		}
		return json.Number(lit), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	// An end delimiter where a value belongs: jsontext refuses that itself.
	return nil, bodyError(ruleNotJSON)
}

// object builds the object whose '{' was just read at start.
func (d *decoder) object(start, depth int, self *span) (map[string]any, error) {
	if depth >= maxDepth {
		return nil, bodyError(ruleTooDeep)
	}
	// Order bodies carry about a dozen top-level keys; sizing the map once
	// avoids rehashing on the hot path.
	hint := 0
	if depth == 0 {
		hint = 16
	}
	m := make(map[string]any, hint)
	for {
		tok, at, err := d.next() // a name (jsontext refuses a duplicate here) or '}'
		if err != nil {
			return nil, err
		}
		if tok.Kind() == '}' {
			break
		}
		key := d.text(at)
		var into *span
		if depth == 0 && key == "extInfo" {
			into = &d.ext
		}
		tok, at, err = d.next()
		if err != nil {
			return nil, err
		}
		v, err := d.value(tok, at, depth+1, into)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	if self != nil {
		*self = span{start, int(d.dec.InputOffset())}
	}
	return m, nil
}

// array builds the array whose '[' was just read.
func (d *decoder) array(depth int) ([]any, error) {
	if depth >= maxDepth {
		return nil, bodyError(ruleTooDeep)
	}
	a := []any{}
	for {
		tok, at, err := d.next()
		if err != nil {
			return nil, err
		}
		if tok.Kind() == ']' {
			return a, nil
		}
		v, err := d.value(tok, at, depth+1, nil)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
}

// text returns the string token just read at start. Strings without
// escapes, the usual case, are substrings of the body's one copy.
func (d *decoder) text(start int) string {
	end := int(d.dec.InputOffset())
	if strings.IndexByte(d.src[start:end], '\\') < 0 {
		return d.src[start+1 : end-1]
	}
	// Already validated by the tokenizer, so unquoting cannot fail. From
	// the []byte: jsontext would copy a string argument first.
	d.esc, _ = jsontext.AppendUnquote(d.esc[:0], d.raw[start:end])
	return string(d.esc)
}

// numberInBounds applies maxNumberLen and maxExponent to a literal the
// tokenizer accepted.
func numberInBounds(lit string) bool {
	if len(lit) > maxNumberLen {
		return false
	}
	i := strings.IndexAny(lit, "eE")
	if i < 0 {
		return true
	}
	exp := 0
	for _, c := range []byte(lit[i+1:]) {
		if c >= '0' && c <= '9' {
			exp = exp*10 + int(c-'0')
			if exp > maxExponent {
				return false
			}
		}
	}
	return true
}

// fail turns a tokenizer error into a *FieldError on "body"; from is where
// the failing read began. When the token there is a string, jsontext's
// error points at the offending bytes inside it, which tell the rules this
// package names apart from plain "not valid JSON".
func (d *decoder) fail(err error, from int) error {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return bodyError(ruleNotJSON) // io.EOF, io.ErrUnexpectedEOF
	}
	if errors.Is(se.Err, jsontext.ErrDuplicateName) {
		return duplicateKey(se.JSONPointer)
	}
	i := tokenStart(d.src, from)
	inString := i < len(d.src) && d.src[i] == '"'
	if inString && se.ByteOffset >= int64(i) && se.ByteOffset <= int64(len(d.src)) {
		at := d.src[se.ByteOffset:]
		if r, n := utf8.DecodeRuneInString(at); r == utf8.RuneError && n == 1 {
			return bodyError(ruleNotUTF8)
		}
		if unpairedSurrogate(at) {
			return bodyError(ruleSurrogate)
		}
	}
	return bodyError(ruleNotJSON)
}

// duplicateKey names the repeated key by its path, as field paths are
// written elsewhere (extInfo.product_id, a.1.k).
func duplicateKey(ptr jsontext.Pointer) *FieldError {
	var segs []string
	for tok := range ptr.Tokens() {
		segs = append(segs, tok)
	}
	// strconv.Quote escapes control and invalid bytes, so a hostile key
	// cannot inject anything into a log line or the reply.
	return NewFieldError("body", "duplicate key "+strconv.Quote(Truncate(strings.Join(segs, "."), 100)))
}

// unpairedSurrogate reports whether s starts with a \u escape of a UTF-16
// surrogate that does not form a pair. jsontext reports these as an
// invalid escape like any other; the contract's message names them, which
// needs this look at the escape the error points to. A high surrogate
// followed by a malformed escape stays "not valid JSON", as it always was.
func unpairedSurrogate(s string) bool {
	r, ok := hexEscape(s)
	if !ok || !utf16.IsSurrogate(r) {
		return false
	}
	if r >= 0xDC00 {
		return true // a low surrogate first
	}
	if !strings.HasPrefix(s[6:], `\u`) {
		return true // a high surrogate alone
	}
	_, ok = hexEscape(s[6:])
	return ok // a high surrogate followed by anything but a low one
}

// hexEscape decodes a leading \uXXXX.
func hexEscape(s string) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(s[2:6], 16, 16)
	return rune(n), err == nil
}
