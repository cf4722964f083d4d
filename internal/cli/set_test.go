package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSetFields(t *testing.T) {
	pretty := "{\n  \"requestId\": \"r1\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": 12\n}\n"
	for _, tc := range []struct {
		name, body string
		sets       []string
		want       string // "" means an error is expected
	}{
		{"string keeps every other byte", pretty, []string{"requestId=r2"},
			"{\n  \"requestId\": \"r2\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": 12\n}\n"},
		{"only the top level", pretty, []string{"extInfo:={}"},
			"{\n  \"requestId\": \"r1\",\n  \"extInfo\": {},\n  \"n\": 12\n}\n"},
		{"number then string over it", pretty, []string{"n:=13", "n=x"},
			"{\n  \"requestId\": \"r1\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": \"x\"\n}\n"},
		{"a string is escaped", `{"a":1}`, []string{`a=say "hi" \ é`}, `{"a":"say \"hi\" \\ é"}`},
		{"an = in the value", `{"a":1}`, []string{"a=b=c"}, `{"a":"b=c"}`},
		{"absent is appended", `{"a":1} `, []string{"b=2"}, `{"a":1,"b":"2"} `},
		{"empty object", `{}`, []string{"b:=true"}, `{"b":true}`},
		{"every duplicate", `{"a":1,"a":2}`, []string{"a:=3"}, `{"a":3,"a":3}`},
		{"no sets, no change", "not json", nil, "not json"},
		{"array body", `[1]`, []string{"a=1"}, ""},
		{"broken body", `{"a":`, []string{"a=1"}, ""},
		{"trailing data", `{"a":1}{}`, []string{"a=1"}, ""},
		{"bad JSON value", `{"a":1}`, []string{"a:=nope"}, ""},
		{"no =", `{"a":1}`, []string{"a"}, ""},
		{"empty name", `{"a":1}`, []string{":=1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := setFields([]byte(tc.body), tc.sets)
			if tc.want == "" {
				if err == nil || !strings.HasPrefix(err.Error(), "--set ") {
					t.Fatalf("got %q, %v; want an error starting with --set", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if !json.Valid(got) && json.Valid([]byte(tc.body)) {
				t.Errorf("the result is not valid JSON: %s", got)
			}
		})
	}
}
