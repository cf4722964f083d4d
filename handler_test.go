package ordersync

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
		if got := jsonContentType(tc.values); got != tc.ok {
			t.Errorf("jsonContentType(%q) = %v, want %v", tc.values, got, tc.ok)
		}
	}
}

func TestMaskHidesUserIDs(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"1234":             "****",
		"12345678":         "****",
		"2160220041431868": "21****68",
		"用户标识符号码很长的":       "用户****长的",
	} {
		if got := mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}
