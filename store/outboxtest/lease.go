package outboxtest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// token returns a fresh lease token, as store.Outbox makes them.
func token() string { return rand.Text() }

func mustLease(t *testing.T, b store.OutboxBackend, lane store.LaneKey, ttl time.Duration) string {
	t.Helper()
	tok := token()
	if err := b.LeaseLane(ctxFor(t), lane, tok, ttl); err != nil {
		t.Fatalf("LeaseLane(%v): %v", lane, err)
	}
	return tok
}

// leaseRefused reports whether a fresh token is refused the lane.
func leaseRefused(t *testing.T, b store.OutboxBackend, lane store.LaneKey) bool {
	t.Helper()
	tok := token()
	err := b.LeaseLane(ctxFor(t), lane, tok, longTTL)
	switch {
	case errors.Is(err, store.ErrLaneLeased):
		return true
	case err != nil:
		t.Fatalf("LeaseLane: %v", err)
	}
	if err := b.ReleaseLane(ctxFor(t), lane, tok); err != nil {
		t.Fatalf("ReleaseLane: %v", err)
	}
	return false
}

// sampleReply is AlipayHK's reply with what makes byte-exact storage hard:
// several values for one header in a meaningful order, bytes that are not
// UTF-8, NUL bytes.
func sampleReply(status string) *store.Reply {
	return &store.Reply{
		Status: 200,
		Header: map[string][]string{
			"content-type":  {"application/json; charset=UTF-8"},
			"client-id":     {"2022091498765432"},
			"response-time": {"2026-01-02T03:04:05.678+08:00"},
			"signature":     {"algorithm=RSA256,keyVersion=1,signature=ab%2Bcd%3D%3D"},
			"x-multi":       {"zeta", "alpha", "", "mid\xff\xfe"},
		},
		Body: []byte(`{"result":{"resultStatus":"` + status + `","resultCode":"X","resultMessage":"<&>"}}` + "\x00\xff\n"),
	}
}

// sampleAccepted is the lane's accepted state after an S, with AlipayHK's
// distributeResult bytes as a JSON encoder would never write them.
func sampleAccepted(status, requestID string, at time.Time) *store.Order {
	return &store.Order{
		Scenario:   "gift_card",
		Status:     status,
		ModifyTime: at.UnixMilli(),
		OrderID:    "alipay-" + requestID,
		DistributeResult: json.RawMessage(`[ {"sceneCode":"GIFT", "extInfo":{"benefitId":"b","detailLink":"https://example.com/p?a=1&b=<2>","note":"券\u2028` +
			"  " + `"}}]`),
		RequestID: requestID,
		UpdatedAt: at,
	}
}

func succeeded(requestID string, at time.Time) store.Completion {
	return store.Completion{
		State: store.EntrySucceeded, At: at, Reply: sampleReply("S"), Attempted: true,
		Accepted: sampleAccepted("PAID", requestID, at), Callback: true, Retention: retention,
	}
}

// testLeaseExclusive: one holder at a time, on one instance and across
// instances; the holder's token takes it again; a release by another token
// does nothing; after the holder's release anyone may take it.
func testLeaseExclusive(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	peer := h.Peer(t, b)
	lane := ids.lane()
	tok := mustLease(t, b, lane, longTTL)
	if !leaseRefused(t, b, lane) || !leaseRefused(t, peer, lane) {
		t.Fatal("a held lease was given to another token")
	}
	if err := b.LeaseLane(ctx, lane, tok, longTTL); err != nil {
		t.Errorf("LeaseLane by the holder's token: %v", err)
	}
	if err := peer.ReleaseLane(ctx, lane, token()); err != nil {
		t.Errorf("ReleaseLane by another token: %v", err)
	}
	if !leaseRefused(t, peer, lane) {
		t.Error("a release by another token released the lease")
	}
	other := ids.lane()
	mustLease(t, peer, other, longTTL) // lanes are independent
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	mustLease(t, peer, lane, longTTL)
}

// testLeaseRace: many goroutines on two instances race for one lane;
// exactly one wins.
func testLeaseRace(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	peer := h.Peer(t, b)
	for range 5 {
		lane := ids.lane()
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			inst := b
			if i%2 == 1 {
				inst = peer
			}
			wg.Go(func() {
				<-start
				err := inst.LeaseLane(ctxFor(t), lane, token(), longTTL)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, store.ErrLaneLeased):
					t.Errorf("LeaseLane: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d of 16 racing LeaseLane calls won, want 1", n)
		}
	}
}

// testLeaseExpiryTakeover: a lease not renewed ends after its ttl; another
// instance takes the lane over, and the old holder can neither renew nor
// write nor release what is now the new holder's.
func testLeaseExpiryTakeover(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	peer := h.Peer(t, b)
	lane := ids.lane()
	mustEnqueue(t, b, newEntry(lane, "r1", "PAID", now()), 0)
	old := mustLease(t, b, lane, shortTTL)
	time.Sleep(pastExpiry)
	newTok := mustLease(t, peer, lane, longTTL)
	if err := b.RenewLane(ctx, lane, old, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewLane by the expired holder: %v, want ErrLeaseLost", err)
	}
	at := now()
	if err := b.RecordAttempt(ctx, lane, old, "r1", store.Attempt{At: at, NextAttemptAt: at.Add(time.Hour), LastError: "late"}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RecordAttempt by the expired holder: %v, want ErrLeaseLost", err)
	}
	if err := b.Complete(ctx, lane, old, "r1", succeeded("r1", at)); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Complete by the expired holder: %v, want ErrLeaseLost", err)
	}
	if err := b.ReleaseLane(ctx, lane, old); err != nil {
		t.Errorf("ReleaseLane by the expired holder: %v", err)
	}
	if !leaseRefused(t, b, lane) {
		t.Error("the expired holder's release freed the new holder's lease")
	}
	e := mustEntry(t, b, rkey(lane, "r1"))
	if e.State != store.EntryQueued || e.Attempts != 0 || e.LastError != "" {
		t.Errorf("the expired holder's writes left %+v", e)
	}
	if err := peer.RecordAttempt(ctx, lane, newTok, "r1", store.Attempt{At: at, NextAttemptAt: at, LastError: "U"}); err != nil {
		t.Errorf("RecordAttempt by the new holder: %v", err)
	}
}

// testLeaseRenew: a renewed lease outlives its first ttl; a renewal of a
// lease that ended is refused.
func testLeaseRenew(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	tok := mustLease(t, b, lane, shortTTL)
	if err := b.RenewLane(ctx, lane, tok, longTTL); err != nil {
		t.Fatalf("RenewLane: %v", err)
	}
	time.Sleep(pastExpiry)
	if !leaseRefused(t, h.Peer(t, b), lane) {
		t.Fatal("a renewed lease ended with its first ttl")
	}
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	if err := b.RenewLane(ctx, lane, tok, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("RenewLane after release: %v, want ErrLeaseLost", err)
	}
}

// testLeaseNeeded: the writes that need the lease refuse without it, and
// write nothing.
func testLeaseNeeded(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	mustEnqueue(t, b, newEntry(lane, "r1", "PAID", now()), 0)
	before := mustLane(t, b, lane)
	at := now()
	for name, tok := range map[string]string{"never leased": token(), "released": ""} {
		if tok == "" {
			tok = mustLease(t, b, lane, longTTL)
			if err := b.ReleaseLane(ctx, lane, tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.RecordAttempt(ctx, lane, tok, "r1", store.Attempt{At: at, NextAttemptAt: at}); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s: RecordAttempt: %v, want ErrLeaseLost", name, err)
		}
		if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", at)); !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s: Complete: %v, want ErrLeaseLost", name, err)
		}
	}
	other := mustLease(t, b, ids.lane(), longTTL) // a lease of another lane is no lease of this one
	if err := b.Complete(ctx, lane, other, "r1", succeeded("r1", at)); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Complete with another lane's lease: %v, want ErrLeaseLost", err)
	}
	after := mustLane(t, b, lane)
	if after.Version != before.Version || after.Accepted != nil || after.Queued[0].Attempts != 0 {
		t.Errorf("refused writes changed the lane: %+v", after)
	}
}

// testLeaseValue: store.Outbox's lease value writes through the lease, and
// a second LeaseLane is refused until it is released.
func testLeaseValue(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	ob := store.NewOutbox(b)
	lane := ids.lane()
	at := now()
	if existing, err := ob.Enqueue(ctx, newEntry(lane, "r1", "PAID", at), 0); err != nil || existing != nil {
		t.Fatal(existing, err)
	}
	l, err := ob.LeaseLane(ctx, lane, longTTL)
	if err != nil {
		t.Fatal(err)
	}
	if l.Lane() != lane {
		t.Errorf("Lane() = %v, want %v", l.Lane(), lane)
	}
	if _, err := ob.LeaseLane(ctx, lane, longTTL); !errors.Is(err, store.ErrLaneLeased) {
		t.Errorf("second LeaseLane: %v, want ErrLaneLeased", err)
	}
	if err := l.Renew(ctx, longTTL); err != nil {
		t.Error(err)
	}
	if err := l.RecordAttempt(ctx, "r1", store.Attempt{At: at, NextAttemptAt: at, LastError: "U"}); err != nil {
		t.Error(err)
	}
	if err := l.Complete(ctx, "r1", succeeded("r1", at)); err != nil {
		t.Error(err)
	}
	if e, err := ob.Entry(ctx, rkey(lane, "r1")); err != nil || e.State != store.EntrySucceeded || e.Attempts != 2 {
		t.Errorf("entry after two attempts through the lease = %+v, %v", e, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Error(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if err := l.Renew(ctx, longTTL); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("Renew after Release: %v, want ErrLeaseLost", err)
	}
	l2, err := ob.LeaseLane(ctx, lane, longTTL)
	if err != nil {
		t.Fatalf("LeaseLane after Release: %v", err)
	}
	if err := l2.Release(ctx); err != nil {
		t.Error(err)
	}
}

// testDueLanes: due lanes come longest due first, bounded by limit, without
// leased, empty or other clients' lanes; Next is the earliest due time
// after now.
func testDueLanes(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	client := ids.client()
	base := now()
	lane := func(name string) store.LaneKey { return store.LaneKey{ClientID: client, MerchantBizNo: name} }
	for name, due := range map[string]time.Duration{
		"due-3": -3 * time.Second, "due-2": -2 * time.Second, "due-1": -time.Second, "due-0": 0,
		"later-1": time.Hour, "later-2": 2 * time.Hour,
	} {
		e := newEntry(lane(name), name+"-r", "PAID", base)
		e.NextAttemptAt = base.Add(due)
		mustEnqueue(t, b, e, 0)
	}
	// A second entry behind a due head does not make its lane listed twice.
	mustEnqueue(t, b, newEntry(lane("due-1"), "due-1-r2", "REFUNDED", base), mustLane(t, b, lane("due-1")).Version)
	// Another client's due lane is not this client's.
	mustEnqueue(t, b, newEntry(store.LaneKey{ClientID: ids.client(), MerchantBizNo: "due-3"}, "x", "PAID", base.Add(-time.Hour)), 0)

	// Due times are kept to the millisecond, rounded up: due-0 is due a
	// millisecond after base at the latest.
	q := base.Add(time.Millisecond)
	due, err := b.DueLanes(ctx, client, q, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lanesOf(due.Lanes), []string{"due-3", "due-2", "due-1", "due-0"}; !slices.Equal(got, want) {
		t.Errorf("DueLanes = %v, want %v", got, want)
	}
	// Next is later-1's due time, to the millisecond, never earlier.
	if want := base.Add(time.Hour); due.Next.Before(want) || due.Next.After(want.Add(time.Millisecond)) {
		t.Errorf("Next = %v, want %v to the millisecond", due.Next, want)
	}
	limited, err := b.DueLanes(ctx, client, q, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := lanesOf(limited.Lanes); !slices.Equal(got, []string{"due-3", "due-2"}) {
		t.Errorf("DueLanes with limit 2 = %v", got)
	}
	// A leased lane is nobody's work, whoever asks.
	tok := mustLease(t, b, lane("due-2"), longTTL)
	for _, inst := range []store.OutboxBackend{b, h.Peer(t, b)} {
		due, err := inst.DueLanes(ctx, client, q, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := lanesOf(due.Lanes); !slices.Equal(got, []string{"due-3", "due-1", "due-0"}) {
			t.Errorf("DueLanes with due-2 leased = %v", got)
		}
	}
	if err := b.ReleaseLane(ctx, lane("due-2"), tok); err != nil {
		t.Fatal(err)
	}
	// Later, more is due.
	due, err = b.DueLanes(ctx, client, base.Add(90*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := lanesOf(due.Lanes); !slices.Equal(got, []string{"due-3", "due-2", "due-1", "due-0", "later-1"}) {
		t.Errorf("DueLanes 90 minutes later = %v", got)
	}
	// Nothing of an unknown client.
	due, err = b.DueLanes(ctx, ids.client(), base.Add(24*time.Hour), 10)
	if err != nil || len(due.Lanes) != 0 || !due.Next.IsZero() {
		t.Errorf("DueLanes of an unknown client = %+v, %v", due, err)
	}
}

func lanesOf(keys []store.LaneKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.MerchantBizNo
	}
	return out
}
