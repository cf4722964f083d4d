package message

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// SetString sets a top-level string member, replacing what the body had.
// It is for fields the gateway supplies itself before validation, such as
// the requestId the egress handler derives for an order posted without
// one.
func (d *Document) SetString(key, value string) {
	d.tree[key] = value
	if key == "extInfo" {
		d.ext = span{} // no longer the object of the body
	}
}

// String returns a top-level string member and whether there is one, for
// reading fields before validation (e.g. to derive a requestId).
func (d *Document) String(key string) (string, bool) {
	s, ok := d.tree[key].(string)
	return s, ok
}

// Canonical returns the document in the form of the JSON Canonicalization
// Scheme of RFC 8785 (members sorted by name, no whitespace, strings in
// their minimal form) except for numbers, which keep their literal as
// written. Two bodies that are the same JSON value (key order, whitespace
// and string escapes aside) have the same canonical bytes, which makes them
// what the gateway signs and sends when it serializes an order itself.
//
// Numbers are not reformatted because JCS prints them through a float64:
// 0.30000000000000000001 would become 0.3 and 1e400 the largest float64,
// so the bytes sent would say something the body did not, and two bodies
// that differ would hash alike. The price is that two spellings of one
// number (2.5 and 2.50) are different bodies; a client that re-posts what
// it posted writes its numbers the same way again.
func (d *Document) Canonical() ([]byte, error) {
	var buf bytes.Buffer
	if err := writeTree(jsontext.NewEncoder(&buf), d.tree); err != nil {
		return nil, err
	}
	v := jsontext.Value(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))) // the encoder ends a top-level value with one
	if err := v.Canonicalize(jsontext.CanonicalizeRawInts(false), jsontext.CanonicalizeRawFloats(false)); err != nil {
		return nil, err
	}
	return v, nil
}

// writeTree writes a decoded tree back as JSON tokens.
func writeTree(enc *jsontext.Encoder, v any) error {
	switch v := v.(type) {
	case map[string]any:
		if err := enc.WriteToken(jsontext.BeginObject); err != nil {
			return err
		}
		for k, e := range v {
			if err := enc.WriteToken(jsontext.String(k)); err != nil {
				return err
			}
			if err := writeTree(enc, e); err != nil {
				return err
			}
		}
		return enc.WriteToken(jsontext.EndObject)
	case []any:
		if err := enc.WriteToken(jsontext.BeginArray); err != nil {
			return err
		}
		for _, e := range v {
			if err := writeTree(enc, e); err != nil {
				return err
			}
		}
		return enc.WriteToken(jsontext.EndArray)
	case string:
		return enc.WriteToken(jsontext.String(v))
	case json.Number:
		return enc.WriteValue(jsontext.Value(v))
	case bool:
		return enc.WriteToken(jsontext.Bool(v))
	case nil:
		return enc.WriteToken(jsontext.Null)
	}
	return fmt.Errorf("message: cannot encode %T", v)
}
