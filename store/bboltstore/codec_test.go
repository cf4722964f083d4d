package bboltstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

func TestReplyRoundTrip(t *testing.T) {
	for name, r := range map[string]store.Reply{
		"zero":           {},
		"empty, not nil": {Header: map[string][]string{}, Body: []byte{}},
		"nil values":     {Status: 200, Header: map[string][]string{"A": nil, "B": {}}},
		"negative":       {Status: -1},
		"binary": {Status: 599, Header: map[string][]string{"X": {"\xff", "", "a\x00b"}, "\x00": {"z", "a"}},
			Body: []byte("\x00\xff{}")},
	} {
		got, err := decodeReply(encodeReply(r))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Errorf("%s: round trip gave %#v, want %#v", name, *got, r)
		}
	}
}

func TestRecordHead(t *testing.T) {
	hash := store.HashBody([]byte("x"))
	exp := time.Unix(1_700_000_000, 123)
	h, err := parseHead(encodeClaim(hash, exp, "tok"))
	if err != nil || h.state != stateInFlight || h.hash != hash || h.expires != exp.UnixNano() || string(h.rest) != "tok" {
		t.Fatalf("claim record read back as %+v, %v", h, err)
	}
	rep := encodeReply(store.Reply{Status: 201})
	h, err = parseHead(encodeDone(hash, exp, rep))
	if err != nil || h.state != stateDone || string(h.rest) != string(rep) {
		t.Fatalf("done record read back as %+v, %v", h, err)
	}
	for _, bad := range [][]byte{nil, {recordVersion}, append([]byte{9}, encodeClaim(hash, exp, "")[1:]...), append([]byte{recordVersion, 7}, encodeClaim(hash, exp, "")[2:]...)} {
		if _, err := parseHead(bad); err == nil {
			t.Errorf("parseHead(%q) accepted a corrupt record", bad)
		}
	}
}

func FuzzReplyRoundTrip(f *testing.F) {
	f.Add(200, "Signature", "a", "b", []byte("{}"))
	f.Add(-7, "", "\xff", "", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, key, v1, v2 string, body []byte) {
		r := store.Reply{Status: status, Header: map[string][]string{key: {v1, v2}, key + "2": {v2}}, Body: body}
		got, err := decodeReply(encodeReply(r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Fatalf("round trip gave %#v, want %#v", *got, r)
		}
	})
}

// FuzzDecodeReply feeds arbitrary bytes: a damaged file must give an
// error, never a panic or a huge allocation.
func FuzzDecodeReply(f *testing.F) {
	f.Add(encodeReply(store.Reply{Status: 200, Header: map[string][]string{"A": {"b"}}, Body: []byte("c")}))
	f.Add([]byte{0x02, 0x03, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err == nil {
			if again, err := decodeReply(encodeReply(*r)); err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("a decoded reply does not round-trip: %#v", r)
			}
		}
	})
}
