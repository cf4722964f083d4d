package bboltstore

import (
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

func TestRecord(t *testing.T) {
	hash := store.HashBody([]byte("x"))
	exp := time.Unix(1_700_000_000, 123)
	rep := store.EncodeReply(store.Reply{Status: 201})
	r, err := parseRecord(encodeRecord(hash, exp, rep))
	if err != nil || r.hash != hash || r.expires != exp.UnixNano() || string(r.reply) != string(rep) {
		t.Fatalf("record read back as %+v, %v", r, err)
	}
	if !r.live(exp.Add(-time.Nanosecond)) || r.live(exp) {
		t.Error("a record is live until, not at, its expiry")
	}
	for _, bad := range [][]byte{nil, make([]byte, headLen-1)} {
		if _, err := parseRecord(bad); err == nil {
			t.Errorf("parseRecord(%q) accepted a record shorter than its head", bad)
		}
	}
}
