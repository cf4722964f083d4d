package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// testStoredReply: Store.StoredReply finds a final reply only for the
// body it answered and only while its record lives, never a claim in
// flight, and claims nothing. A backend that is not a store.ReplyReader
// (or a Handle over one that is not) finds nothing, ever.
func testStoredReply(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	_, err := st.StoredReply(ctxFor(t), ids.request(), bodyA)
	reads := !errors.Is(err, errors.ErrUnsupported)
	if _, ok := s.(store.ReplyReader); reads && !ok {
		t.Fatalf("StoredReply of a backend that is no ReplyReader: %v, want errors.ErrUnsupported", err)
	}
	lookup := func(key store.RequestKey, hash store.BodyHash) *store.Reply {
		t.Helper()
		rep, err := st.StoredReply(ctxFor(t), key, hash)
		if !reads && errors.Is(err, errors.ErrUnsupported) {
			return nil
		}
		if err != nil {
			t.Fatalf("StoredReply(%v): %v", key, err)
		}
		return rep
	}

	// Nothing stored: nothing found, and nothing claimed by looking.
	key := ids.request()
	if rep := lookup(key, bodyA); rep != nil {
		t.Fatalf("StoredReply of an unknown request = %+v, want nil", rep)
	}
	c := mustClaimValue(t, st, key, bodyA)
	if rep := lookup(key, bodyA); rep != nil {
		t.Fatalf("StoredReply of a request in flight = %+v, want nil", rep)
	}
	want := sampleReply("stored")
	if err := c.Finish(ctxFor(t), want, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if rep := lookup(key, bodyB); rep != nil {
		t.Errorf("StoredReply for another body = %+v, want nil", rep)
	}
	rep := lookup(key, bodyA)
	switch {
	case !reads && rep != nil:
		t.Errorf("StoredReply of a backend that does not read replies = %+v, want nil", rep)
	case reads:
		if d := replyDiff(rep, want); d != "" {
			t.Errorf("StoredReply: %s", d)
		}
	}
	// Looking changed nothing: the claim still finds the record.
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}
	wantClaim(t, s, key, bodyB, store.Mismatch)

	// An expired record is not found.
	short := ids.request()
	c = mustClaimValue(t, st, short, bodyA)
	if err := c.Finish(ctxFor(t), sampleReply("short"), shortTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	time.Sleep(pastExpiry)
	if rep := lookup(short, bodyA); rep != nil {
		t.Errorf("StoredReply after the TTL = %+v, want nil", rep)
	}
}
