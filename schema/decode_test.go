package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdDecode is the reference: encoding/json with numbers kept as literals.
func stdDecode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, name := range []string{"testdata/seed.json", "testdata/pretty-unicode.json"} {
		raw := readFile(t, name)
		got, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := stdDecode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Decode = %#v, want %#v", name, got, want)
		}
	}
}

func TestDecodePrettyUnicode(t *testing.T) {
	doc, err := Decode(readFile(t, "testdata/pretty-unicode.json"))
	if err != nil {
		t.Fatal(err)
	}
	ext := doc.(map[string]any)["extInfo"].(map[string]any)
	// Raw UTF-8 and a \u escape in one value: both must come out as text.
	if got, want := ext["note"], "禮品卡 — 100 HKD"; got != want {
		t.Errorf("note = %q, want %q", got, want)
	}
	if n, ok := doc.(map[string]any)["orderCreateTime"].(json.Number); !ok || n != "1740385506708" {
		t.Errorf("orderCreateTime = %#v, want json.Number", doc.(map[string]any)["orderCreateTime"])
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // exact Error()
	}{
		{"empty", ``, "body: not valid JSON"},
		{"whitespace only", " \n\t", "body: not valid JSON"},
		{"garbage", `requestId=1`, "body: not valid JSON"},
		{"truncated", `{"requestId":"abc`, "body: not valid JSON"},
		{"missing value", `{"requestId":}`, "body: not valid JSON"},
		{"trailing comma", `{"a":1,}`, "body: not valid JSON"},
		{"single quotes", `{'a':1}`, "body: not valid JSON"},
		{"leading zero", `{"a":01}`, "body: not valid JSON"},
		{"bare dot", `{"a":1.}`, "body: not valid JSON"},
		{"bad escape", `{"a":"\x"}`, "body: not valid JSON"},
		{"raw control char", "{\"a\":\"x\ny\"}", "body: not valid JSON"},
		{"BOM", "\xef\xbb\xbf{}", "body: not valid JSON"},
		{"NaN", `{"a":NaN}`, "body: not valid JSON"},
		{"top-level array", `[{"requestId":"x"}]`, "body: must be a JSON object"},
		{"top-level string", `"x"`, "body: must be a JSON object"},
		{"top-level number", `42`, "body: must be a JSON object"},
		{"top-level null", `null`, "body: must be a JSON object"},
		{"trailing object", `{"a":1} {"a":2}`, "body: unexpected data after the JSON object"},
		{"trailing garbage", `{"a":1}x`, "body: unexpected data after the JSON object"},
		{"duplicate top-level", `{"requestId":"SECRET1","requestId":"SECRET2"}`, `body: duplicate key "requestId"`},
		{"duplicate nested", `{"extInfo":{"product_id":"SECRET1","product_id":"SECRET2"}}`, `body: duplicate key "extInfo.product_id"`},
		{"duplicate in array", `{"a":[{},{"k":1,"k":2}]}`, `body: duplicate key "a.1.k"`},
		{"duplicate after escape", `{"a":1,"\u0061":2}`, `body: duplicate key "a"`},
		{"duplicate hostile key", "{\"\\n\\u0000\":1,\"\\n\\u0000\":2}", `body: duplicate key "\n\x00"`},
		{"invalid UTF-8 in value", "{\"a\":\"\xff\xfe\"}", "body: not valid UTF-8"},
		{"invalid UTF-8 in key", "{\"\xc3\x28\":1}", "body: not valid UTF-8"},
		{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", "body: not valid UTF-8"},
		{"UTF-8 surrogate bytes", "{\"a\":\"\xed\xa0\x80\"}", "body: not valid UTF-8"},
		{"lone high surrogate", `{"a":"\ud800"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"lone low surrogate", `{"a":"\udc00x"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"reversed pair", `{"a":"\udc00\ud800"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"too deep", `{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, "body: nested too deeply"},
		{"huge exponent", `{"a":1e-999999}`, "body: number out of range"},
		{"huge literal", `{"a":` + strings.Repeat("9", 300) + `}`, "body: number out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "body" {
				t.Fatalf("error %T %v is not a FieldError on body", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q leaks a value", err)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty object", `{}`},
		{"surrounding whitespace", " \r\n\t{} \r\n\t"},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`},
		{"all escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\u2028"}`},
		{"numbers", `{"a":[0,-0,1.5,-2e10,3E+2,4e-2,1e400]}`},
		{"literals", `{"a":true,"b":false,"c":null}`},
		{"same key in siblings", `{"a":{"k":1},"b":{"k":1}}`},
		{"case differs", `{"requestId":"a","RequestId":"b"}`},
		{"deep but allowed", `{"a":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want, err := stdDecode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode = %#v, want %#v", got, want)
			}
		})
	}
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	raw := []byte(`{"a":"xyz"}`)
	doc, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	copy(raw, `{"a":"QQQ"}`)
	if got := doc.(map[string]any)["a"]; got != "xyz" {
		t.Errorf("value changed with the input buffer: %q", got)
	}
}
