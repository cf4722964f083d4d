package message

import (
	"encoding/json"
	"strings"
)

// objectIter walks the members of a JSON object given as text that
// json.Valid accepted, yielding each key (unescaped) and the raw text of its
// value. Validity is what lets the skipping below stay this simple; the
// bounds checks only keep a wrong caller from panicking.
type objectIter struct {
	s string
	i int
}

// newObjectIter starts at the object's '{', after optional whitespace.
func newObjectIter(s string) (objectIter, bool) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return objectIter{}, false
	}
	return objectIter{s: s, i: i + 1}, true
}

// next returns the next member, or more == false at the closing brace.
func (it *objectIter) next() (key, val string, more bool) {
	s := it.s
	i := skipSpace(s, it.i)
	if i < len(s) && s[i] == ',' {
		i = skipSpace(s, i+1)
	}
	if i >= len(s) || s[i] != '"' {
		it.i = len(s)
		return "", "", false
	}
	ke := skipString(s, i)
	key = s[i+1 : max(i+1, ke-1)]
	if strings.IndexByte(key, '\\') >= 0 {
		// Rare: an escaped key still has to match exactly once unescaped.
		var k string
		if json.Unmarshal([]byte(s[i:ke]), &k) == nil {
			key = k
		}
	}
	i = skipSpace(s, ke)
	if i < len(s) && s[i] == ':' {
		i = skipSpace(s, i+1)
	}
	ve := skipValue(s, i)
	val = s[i:ve]
	it.i = ve
	return key, val, true
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the closing quote of the string
// starting at s[i].
func skipString(s string, i int) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(s)
}

// skipValue returns the index just after the value starting at s[i].
func skipValue(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		return skipString(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i = skipString(s, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(s)
	}
	// number, true, false, null
	for i < len(s) {
		switch s[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
