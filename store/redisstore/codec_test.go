package redisstore

import (
	"reflect"
	"testing"

	"github.com/caddy-alipay/ordersync/store"
)

func TestReplyRoundTrip(t *testing.T) {
	for _, r := range []store.Reply{
		{},
		{Status: 200, Header: map[string][]string{}, Body: []byte{}},
		{Status: -1, Header: map[string][]string{"A": nil, "B": {}, "C": {""}}},
		{Status: 200, Header: map[string][]string{
			"Content-Type": {"application/json; charset=UTF-8", "application/json"},
			"Signature":    {"algorithm=RSA256,keyVersion=1,signature=ab%2B%3D"},
			"X-Raw":        {"\xff\x00\r\n"},
		}, Body: []byte("{\"result\":{\"resultCode\":\"SUCCESS\"}}\x00\xff")},
	} {
		got, err := decodeReply(encodeReply(r))
		if err != nil {
			t.Fatalf("%#v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip = %#v, want %#v", got, r)
		}
	}
}

func TestDecodeReplyRejectsDamage(t *testing.T) {
	full := encodeReply(store.Reply{Status: 200, Header: map[string][]string{"K": {"v"}}, Body: []byte("body")})
	for i := range len(full) {
		if _, err := decodeReply(full[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := decodeReply(append(full[:len(full):len(full)], 'x')); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := append([]byte{}, full...)
	bad[0] = 9
	if _, err := decodeReply(bad); err == nil {
		t.Error("unknown version: no error")
	}
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(encodeReply(store.Reply{Status: 200, Header: map[string][]string{"K": {"v", ""}}, Body: []byte("b")}))
	f.Add(encodeReply(store.Reply{}))
	f.Add([]byte{1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to a form that decodes to the
		// same reply.
		again, err := decodeReply(encodeReply(r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encode of %#v: %#v, %v", r, again, err)
		}
	})
}
