package orderflow

import "testing"

func TestJSONContentType(t *testing.T) {
	cases := []struct {
		values []string
		ok     bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"application/json; charset=UTF-8"}, true},
		{[]string{"application/json; charset=utf-8", "application/json; charset=UTF-8"}, true}, // the Go SDK sends it twice
		{[]string{"Application/JSON"}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"text/plain"}, false},
		{[]string{"application/json; charset=GBK"}, false},
		{[]string{"application/json", "text/plain"}, false},
		{[]string{"application/x-www-form-urlencoded"}, false},
	}
	for _, tc := range cases {
		if got := JSONContentType(tc.values); got != tc.ok {
			t.Errorf("JSONContentType(%q) = %v, want %v", tc.values, got, tc.ok)
		}
	}
}
