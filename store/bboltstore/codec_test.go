package bboltstore

import (
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

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
