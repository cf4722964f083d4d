package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
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

// The seed and the pretty body live with the schema package's tests.
const (
	seedFile   = "../schema/testdata/seed.json"
	prettyFile = "../schema/testdata/pretty-unicode.json"
)

func tree(t testing.TB, raw []byte) any {
	t.Helper()
	doc, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Tree()
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, name := range []string{seedFile, prettyFile} {
		raw := readFile(t, name)
		doc, err := Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := doc.Tree()
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
	doc := tree(t, readFile(t, prettyFile))
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
		// Where the rule names come from the bytes the tokenizer points at,
		// only bytes inside a string count.
		{"top-level close brace", `}`, "body: not valid JSON"},
		{"top-level close bracket", `]`, "body: not valid JSON"},
		{"invalid byte as a name", "{\xff:1}", "body: not valid JSON"},
		{"invalid byte after a value", "{\"a\":\"x\"\xff}", "body: not valid JSON"},
		{"invalid byte as a value", "{\"a\":\xff}", "body: not valid JSON"},
		{"non-string name", `{1:2}`, "body: not valid JSON"},
		{"missing colon", `{"a" 1}`, "body: not valid JSON"},
		{"unclosed array", `{"a":[1,2`, "body: not valid JSON"},
		{"array trailing comma", `{"a":[1,]}`, "body: not valid JSON"},
		{"truncated UTF-8 at the end", "{\"a\":\"\xe7\xa6", "body: not valid UTF-8"},
		{"invalid UTF-8 after text", "{\"a\":\"ok \xff\"}", "body: not valid UTF-8"},
		{"lone surrogate mid-string", `{"a":"ok \ud800 ok"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"high surrogate then high", `{"a":"\ud800\ud800"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"high surrogate then other escape", `{"a":"\ud800\n"}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"high surrogate then bad escape", `{"a":"\ud800\uZZZZ"}`, "body: not valid JSON"},
		{"surrogate in a key", `{"\udfff":1}`, `body: unpaired UTF-16 surrogate in a \u escape`},
		{"short escape", `{"a":"\u12"}`, "body: not valid JSON"},
		{"duplicate key with slash and tilde", `{"a/b~c":1,"a/b~c":2}`, `body: duplicate key "a/b~c"`},
		{"duplicate deep in extInfo", `{"extInfo":{"x":[1,{"y":{"z":1,"z":2}}]}}`, `body: duplicate key "extInfo.x.1.y.z"`},
		{"duplicate before invalid UTF-8", "{\"a\":1,\"a\":\"\xff\"}", `body: duplicate key "a"`},
		{"invalid UTF-8 before duplicate", "{\"a\":\"\xff\",\"a\":1}", "body: not valid UTF-8"},
		{"exponent past the bound", `{"a":1e401}`, "body: number out of range"},
		{"long literal with fraction", `{"a":0.` + strings.Repeat("1", 300) + `}`, "body: number out of range"},
		{"too deep in objects", strings.Repeat(`{"a":`, 513) + `1` + strings.Repeat(`}`, 513), "body: nested too deeply"},
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
		{"deepest allowed", strings.Repeat(`{"a":`, 512) + `1` + strings.Repeat(`}`, 512)},
		{"exponent at the bound", `{"a":1e400,"b":1E-0000000000000000000400}`},
		{"number at the length bound", `{"a":` + strings.Repeat("9", 256) + `}`},
		{"escaped names", `{"\u0061":1,"b\"":2,"\ud83d\ude00":3}`},
		{"extInfo with whitespace", "{\"extInfo\" :\n { \"k\" : [ 1 , {} ] } }"},
		{"extInfo not an object", `{"extInfo":"x"}`},
		{"nested extInfo is not the body's", `{"a":{"extInfo":{}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tree(t, []byte(tt.body))
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
	doc := tree(t, raw)
	copy(raw, `{"a":"QQQ"}`)
	if got := doc.(map[string]any)["a"]; got != "xyz" {
		t.Errorf("value changed with the input buffer: %q", got)
	}
}

// extInfo's raw bytes are exactly what the caller sent (README, "The
// upstream contract"),
// found in the same pass that builds the tree.
func TestDecodeExtInfoSpan(t *testing.T) {
	for _, tt := range []struct{ body, ext string }{
		{`{"extInfo":{}}`, `{}`},
		{"{\"extInfo\" :\n { \"k\" : [ 1 , {} ] } , \"z\":1}", `{ "k" : [ 1 , {} ] }`},
		{`{"a":{"extInfo":{"no":1}},"extInfo":{"yes":"\u00e9"}}`, `{"yes":"\u00e9"}`},
		{`{"extInfo":"not an object"}`, ``},
		{`{"x":1}`, ``},
	} {
		doc, err := Decode([]byte(tt.body))
		if err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		var got string
		if doc.ext != (span{}) {
			got = doc.src[doc.ext.start:doc.ext.end]
		}
		if got != tt.ext {
			t.Errorf("%s: extInfo span %q, want %q", tt.body, got, tt.ext)
		}
	}
}

func TestDecodeValue(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want any
	}{
		{`true`, true},
		{` false `, false},
		{`null`, nil},
		{`"s"`, "s"},
		{`12`, json.Number("12")},
		{`[1,{"a":"b"}]`, []any{json.Number("1"), map[string]any{"a": "b"}}},
	} {
		got, err := DecodeValue([]byte(tt.raw))
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.raw, got, tt.want)
		}
	}
	for raw, want := range map[string]string{
		``:                    "body: not valid JSON",
		`{} {}`:               "body: unexpected data after the JSON object",
		`{"type":1,"type":2}`: `body: duplicate key "type"`,
		`[1,2`:                "body: not valid JSON",
		`tru`:                 "body: not valid JSON",
		"\"\xff\"":            "body: not valid UTF-8",
	} {
		if _, err := DecodeValue([]byte(raw)); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %q", raw, err, want)
		}
	}
}

// The pooled decoders hold no state from one body to the next, whether the
// previous body failed or not, and decode concurrently.
func TestDecodePooledConcurrently(t *testing.T) {
	good := readFile(t, seedFile)
	want := tree(t, good)
	bad := [][]byte{
		[]byte(`{"a":1,"a":2}`), []byte("{\"a\":\"\xff\"}"), []byte(`{"a":[`),
		[]byte(`{"extInfo":{"x":1}} trailing`), []byte(`{"a":1e999}`),
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if _, err := Decode(bad[(g+i)%len(bad)]); err == nil {
					t.Error("bad body accepted")
					return
				}
				doc, err := Decode(good)
				if err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(doc.Tree(), want) {
					t.Error("tree differs")
					return
				}
				if r, err := doc.Request(); err != nil || r.ExtInfo != `{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}` {
					t.Errorf("Request: %v %v", r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
