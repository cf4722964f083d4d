package message

import (
	"testing"
)

func TestPeekString(t *testing.T) {
	for _, tc := range []struct {
		body, name, want string
		ok               bool
	}{
		{`{"requestId":"R-1","merchantBizNo":"B-1"}`, "requestId", "R-1", true},
		{`{"requestId":"R-1","merchantBizNo":"B-1"}`, "merchantBizNo", "B-1", true},
		{" \n{ \"a\" : 1 , \"requestId\" :\t\"R-2\" }", "requestId", "R-2", true},
		// Nested members of the same name are skipped whole, strings
		// with brackets, quotes and commas included.
		{`{"extInfo":{"requestId":"NESTED","x":["}",{"requestId":"N2"}],"q":"\"requestId\":\"N3\""},"requestId":"TOP"}`, "requestId", "TOP", true},
		{`{"a":[1,2,[3,{"b":"]"}]],"requestId":"R"}`, "requestId", "R", true},
		{`{"a":true,"b":null,"c":-1.5e3,"requestId":""}`, "requestId", "", true},
		// What it cannot tell without decoding: not found.
		{`{"requestId":"R\u002d1"}`, "requestId", "", false},     // an escape in the value
		{`{"request\u0049d":"R-1"}`, "requestId", "", false},     // an escape in the name
		{`{"requestId":123}`, "requestId", "", false},            // not a string
		{`{"requestId":null}`, "requestId", "", false},           // not a string
		{`{"other":"requestId"}`, "requestId", "", false},        // a value is not a name
		{`{"x":{"requestId":"NESTED"}}`, "requestId", "", false}, // only nested
		{`{}`, "requestId", "", false},
		{`[{"requestId":"R"}]`, "requestId", "", false},
		{`"requestId"`, "requestId", "", false},
		{``, "requestId", "", false},
		{`{"requestId":"R`, "requestId", "", false},
		{`{"a":"unterminated`, "requestId", "", false},
		{`{"a":{"b":1}`, "requestId", "", false},
		{`{"a" "requestId":"R"}`, "requestId", "", false},
	} {
		got, ok := PeekString([]byte(tc.body), tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("PeekString(%s, %q) = %q, %v; want %q, %v", tc.body, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzPeekString: on a body Decode accepts, PeekString never reads a value
// Decode does not: it finds the top-level string or nothing. On any other
// input it returns without panicking.
func FuzzPeekString(f *testing.F) {
	for _, s := range []string{
		`{"requestId":"R-1","merchantBizNo":"B-1","extInfo":{"requestId":"X"}}`,
		`{"extInfo":{"a":["]","}",{"requestId":"N"}]},"requestId":"R"}`,
		`{"requestId":"R\u002d1"}`,
		`{"request\u0049d":"R"}`,
		`{"requestId":1}`,
		`{"a":"\\","requestId":"R"}`,
		`{"a":"\\\"","requestId":"R"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, name := range []string{"requestId", "merchantBizNo"} {
			got, ok := PeekString(body, name)
			doc, err := Decode(body)
			if err != nil || !ok {
				continue
			}
			want, isString := doc.String(name)
			if !isString || got != want {
				t.Fatalf("PeekString(%q, %q) = %q; Decode reads %q (a string: %v)", body, name, got, want, isString)
			}
		}
	})
}
