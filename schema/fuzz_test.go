package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/schema"
)

// fuzzSchemas are the base schema and the gift card's, as the handler
// applies them to a gift card request.
var fuzzSchemas = sync.OnceValues(func() ([2]*schema.Schema, error) {
	base, err := schema.Base()
	if err != nil {
		return [2]*schema.Schema{}, err
	}
	raw, err := os.ReadFile("../scenario/schemas/gift_card.json")
	if err != nil {
		return [2]*schema.Schema{}, err
	}
	gift, err := schema.Compile("gift_card", raw)
	return [2]*schema.Schema{base, gift}, err
})

// FuzzDecodeValidate feeds arbitrary bodies through the handler's sequence.
// Besides "no panic", it checks the decoder (message.Decode) against
// encoding/json as an oracle, that every error is a bounded *FieldError,
// and that whatever validates also yields a typed request and normalizes to
// valid JSON (the upstream never receives a broken body) with extInfo as
// received. Seed corpus: testdata/fuzz/FuzzDecodeValidate.
func FuzzDecodeValidate(f *testing.F) {
	f.Add([]byte(`{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{"benefit_issue_mode":"SALE","product_id":"p"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		schemas, err := fuzzSchemas()
		if err != nil {
			t.Fatal(err)
		}
		body, err := message.Decode(data)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted what encoding/json rejects: %q", data)
		}
		want, err := stdDecode(data)
		if err != nil {
			t.Fatal(err)
		}
		doc := body.Tree()
		if !reflect.DeepEqual(doc, want) {
			t.Fatalf("Decode = %#v, encoding/json = %#v", doc, want)
		}

		errBase := schemas[0].Validate(doc)
		checkFieldError(t, doc, errBase)
		errGift := schemas[1].Validate(doc)
		checkFieldError(t, doc, errGift)
		if errBase != nil || errGift != nil {
			return
		}

		// Valid: the rest of the pipeline must hold up.
		r, err := body.Request()
		if err != nil {
			t.Fatalf("validated body has no typed request: %v", err)
		}
		if ext := mustStd(t, r.ExtInfo); !reflect.DeepEqual(ext, doc.(map[string]any)["extInfo"]) {
			t.Fatalf("ExtInfo %q is not the body's extInfo", r.ExtInfo)
		}
		if !bytes.Contains(data, []byte(r.ExtInfo)) {
			t.Fatalf("ExtInfo %q is not the bytes received", r.ExtInfo)
		}
		out := r.Normalize("client", "gift_card", "")
		if !json.Valid(out) {
			t.Fatalf("Normalize produced invalid JSON: %s", out)
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		top := doc.(map[string]any)
		if back["requestId"] != top["requestId"] || back["orderStatus"] != top["orderStatus"] {
			t.Fatalf("normalized fields differ: %v vs %v", back, top)
		}
		ext := top["extInfo"].(map[string]any)
		if got, ok := r.ExtString("product_id"); !ok || got != ext["product_id"] {
			t.Fatalf("ExtString(product_id) = %q, %v; want %q", got, ok, ext["product_id"])
		}
	})
}

func mustStd(t *testing.T, raw string) any {
	v, err := stdDecode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func stdDecode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func checkDecodeError(t *testing.T, data []byte, err error) {
	var fe *message.FieldError
	if !errors.As(err, &fe) || fe.Field != "body" || fe.Rule == "" {
		t.Fatalf("Decode error %T %v is not a FieldError on body", err, err)
	}
	if len(err.Error()) > message.MaxResultMessageLen {
		t.Fatalf("message is %d bytes", len(err.Error()))
	}
	switch rule := fe.Rule; {
	case rule == "not valid JSON", rule == "unexpected data after the JSON object":
		if json.Valid(data) && utf8.Valid(data) && isObject(data) {
			t.Fatalf("%q for a body encoding/json accepts: %q", rule, data)
		}
	case rule == "must be a JSON object":
		if isObject(data) {
			t.Fatalf("%q for an object: %q", rule, data)
		}
	case rule == "not valid UTF-8":
		if utf8.Valid(data) {
			t.Fatalf("%q for valid UTF-8: %q", rule, data)
		}
	case strings.HasPrefix(rule, "duplicate key "):
		if !hasDuplicateKey(data) {
			t.Fatalf("%q but encoding/json sees no duplicate: %q", rule, data)
		}
	case strings.HasPrefix(rule, "unpaired UTF-16 surrogate"):
		if !bytes.Contains(bytes.ToLower(data), []byte(`\ud`)) {
			t.Fatalf("%q without a surrogate escape: %q", rule, data)
		}
	case rule == "nested too deeply", rule == "number out of range":
		// Policy limits beyond JSON itself.
	default:
		t.Fatalf("unexpected Decode error %q", err)
	}
}

func isObject(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
}

// hasDuplicateKey is the reference check: a token walk with encoding/json.
func hasDuplicateKey(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys   map[string]bool
		object bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isString := tok.(string); isString && top != nil && top.object && top.expect {
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		if top != nil && top.object {
			top.expect = true // a value was read; a key comes next
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, expect: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expect = true
			}
		}
	}
}

func checkFieldError(t *testing.T, doc any, err error) {
	if err == nil {
		return
	}
	var fe *message.FieldError
	if !errors.As(err, &fe) || fe.Field == "" || fe.Rule == "" {
		t.Fatalf("validation error %T %v is not a complete FieldError", err, err)
	}
	if len(err.Error()) > message.MaxResultMessageLen {
		t.Fatalf("message is %d bytes: %q", len(err.Error()), err)
	}
	// The path is made of keys; a string value may appear in it only when a
	// key carries the same text.
	var keys strings.Builder
	var values []string
	walk(doc, func(k string) { keys.WriteString(k + "\x00") }, func(s string) { values = append(values, s) })
	for _, s := range values {
		if len(s) >= 6 && strings.Contains(fe.Field, s) && !strings.Contains(keys.String(), s) {
			t.Fatalf("field %q contains the value %q", fe.Field, s)
		}
	}
}

func walk(v any, key func(string), str func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			key(k)
			walk(e, key, str)
		}
	case []any:
		for _, e := range v {
			walk(e, key, str)
		}
	case string:
		str(v)
	}
}
