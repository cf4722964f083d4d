package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// setUsage is the help text of send's --set flag.
const setUsage = `before signing, set a top-level field of the body: NAME=VALUE sets a string,
NAME:=JSON any JSON value (e.g. orderModifyTime:=1742977600000); repeatable.
Only that field's bytes change; a field the body lacks is added at its end`

// setFields applies send's --set assignments to body. It edits the
// bytes in place rather than decoding and re-encoding, so that everything
// but the named fields stays byte for byte what the file holds: "change one
// field" then means one field, which is what a replay test needs.
func setFields(body []byte, sets []string) ([]byte, error) {
	for _, set := range sets {
		name, value, err := parseSet(set)
		if err != nil {
			return nil, err
		}
		if body, err = setField(body, name, value); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// parseSet splits NAME=VALUE (a string) or NAME:=JSON (a raw value) and
// returns the name and the value as JSON.
func parseSet(set string) (name string, value []byte, err error) {
	i := strings.IndexByte(set, '=')
	if i <= 0 {
		return "", nil, fmt.Errorf("--set %q: want NAME=VALUE or NAME:=JSON, e.g. --set tradeNo=T2", set)
	}
	name, raw := set[:i], set[i+1:]
	if strings.HasSuffix(name, ":") {
		name = strings.TrimSuffix(name, ":")
		if !json.Valid([]byte(raw)) {
			return "", nil, fmt.Errorf("--set %s:=: the value is not valid JSON (use %s=VALUE for a string)", name, name)
		}
		value = []byte(strings.TrimSpace(raw))
	} else {
		value, _ = json.Marshal(raw) // a string always marshals
	}
	if name == "" {
		return "", nil, fmt.Errorf("--set %q: the field name is empty", set)
	}
	return name, value, nil
}

// setField replaces the value of every top-level member called name
// with value, or appends the member when there is none.
func setField(body []byte, name string, value []byte) ([]byte, error) {
	errNotObject := fmt.Errorf("--set %s: BODY_FILE is not a JSON object", name)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNotObject
	}
	type span struct{ start, end int64 }
	var found []span
	members := 0
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, errNotObject
		}
		members++
		// raw is the value's exact bytes and ends at the decoder's offset.
		if key == name {
			end := dec.InputOffset()
			found = append(found, span{end - int64(len(raw)), end})
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errNotObject
	}
	closing := dec.InputOffset() - 1 // the object's '}'
	if _, err := dec.Token(); err == nil || !errors.Is(err, io.EOF) {
		return nil, errNotObject
	}

	var out bytes.Buffer
	if len(found) == 0 {
		out.Write(body[:closing])
		if members > 0 {
			out.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		out.Write(key)
		out.WriteByte(':')
		out.Write(value)
		out.Write(body[closing:])
		return out.Bytes(), nil
	}
	last := int64(0)
	for _, s := range found {
		out.Write(body[last:s.start])
		out.Write(value)
		last = s.end
	}
	out.Write(body[last:])
	return out.Bytes(), nil
}
