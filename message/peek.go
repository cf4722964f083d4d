package message

// PeekString returns the value of the member name of body, a JSON object,
// without decoding body: the top-level member, when its name is written
// without escapes and its value is a string without escapes. ok is false
// when it cannot tell that way (no such member, another kind of value, an
// escape, a body that is not an object).
//
// It is for a lookup that an exact check confirms, never for a decision
// on its own: it does not validate body, and on a body Decode refuses it
// may return anything. On a body Decode accepts (valid JSON, no duplicate
// names) a value it returns is the member's value as Decode reads it:
// only top-level members are compared, nested values are skipped whole,
// and a string without escapes reads the same either way.
func PeekString(body []byte, name string) (value string, ok bool) {
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipWS(body, i)
		if i >= len(body) || body[i] != '"' {
			return "", false // '}' (not found) or not JSON
		}
		ks, ke, kesc, next := scanString(body, i)
		if next < 0 {
			return "", false
		}
		i = skipWS(body, next)
		if i >= len(body) || body[i] != ':' {
			return "", false
		}
		i = skipWS(body, i+1)
		if !kesc && string(body[ks:ke]) == name {
			if i >= len(body) || body[i] != '"' {
				return "", false
			}
			vs, ve, vesc, next := scanString(body, i)
			if next < 0 || vesc {
				return "", false
			}
			return string(body[vs:ve]), true
		}
		if i = skipValue(body, i); i < 0 {
			return "", false
		}
		i = skipWS(body, i)
		if i >= len(body) || body[i] != ',' {
			return "", false
		}
		i++
	}
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString reads the string whose opening quote is at b[i]: its content
// is b[start:end], esc says it has a backslash escape, and next is the
// index after the closing quote (-1 if there is none).
func scanString(b []byte, i int) (start, end int, esc bool, next int) {
	start = i + 1
	for j := start; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++ // the escaped byte cannot end the string
		case '"':
			return start, j, esc, j + 1
		}
	}
	return 0, 0, false, -1
}

// skipValue returns the index after the value that starts at b[i], -1
// if it does not end. It only finds the value's end; it checks nothing.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		_, _, _, next := scanString(b, i)
		return next
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				_, _, _, next := scanString(b, i)
				if next < 0 {
					return -1
				}
				i = next
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
		return -1
	}
	// A number or a literal: up to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
