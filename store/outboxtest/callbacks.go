package outboxtest

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// endWithCallback queues and completes one entry per requestId in fresh
// lanes of client, each ended at at+i seconds with a callback.
func endWithCallback(t *testing.T, b store.OutboxBackend, client string, at time.Time, requestIDs ...string) {
	t.Helper()
	for i, id := range requestIDs {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: "m-" + id}
		mustEnqueue(t, b, newEntry(lane, id, "PAID", at), 0)
		tok := mustLease(t, b, lane, longTTL)
		c := succeeded(id, at.Add(time.Duration(i)*time.Second))
		if err := b.Complete(ctxFor(t), lane, tok, id, c); err != nil {
			t.Fatal(err)
		}
		if err := b.ReleaseLane(ctxFor(t), lane, tok); err != nil {
			t.Fatal(err)
		}
	}
}

func claimIDs(t *testing.T, b store.OutboxBackend, client string, at time.Time, limit int, lease time.Duration) []string {
	t.Helper()
	es, err := b.ClaimCallbacks(ctxFor(t), client, at, limit, lease)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.RequestID
		if !e.Callback.Pending || e.Callback.WebhookID == "" {
			t.Errorf("claimed callback of %s is not pending: %+v", e.RequestID, e.Callback)
		}
	}
	return ids
}

// testCallbacks: due callbacks come earliest first, bounded, each claimed
// so that nobody (no other instance) gets it again before its lease ends;
// a retry makes it due later and counts; done ends it; a stale webhook id
// changes nothing.
func testCallbacks(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	peer := h.Peer(t, b)
	client := ids.client()
	at := now()
	endWithCallback(t, b, client, at, "c1", "c2", "c3")
	if got := claimIDs(t, b, client, at.Add(-time.Second), 10, longTTL); len(got) != 0 {
		t.Errorf("callbacks claimed before they are due: %v", got)
	}
	if got := claimIDs(t, b, client, at.Add(time.Second+time.Millisecond), 10, longTTL); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("due callbacks = %v, want [c1 c2]", got)
	}
	later := at.Add(time.Minute)
	if got := claimIDs(t, peer, client, later, 10, longTTL); !slices.Equal(got, []string{"c3"}) {
		t.Errorf("due callbacks with c1 and c2 claimed = %v, want [c3]", got)
	}
	c1 := mustEntry(t, b, store.RequestKey{ClientID: client, RequestID: "c1"})
	k1 := store.RequestKey{ClientID: client, RequestID: "c1"}
	if err := b.CallbackRetry(ctx, k1, c1.Callback.WebhookID, at.Add(time.Hour), "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	e := mustEntry(t, b, k1)
	if !e.Callback.Pending || e.Callback.Attempts != 1 || !e.Callback.NextAttemptAt.Equal(at.Add(time.Hour)) ||
		e.Callback.LastError != "HTTP 503" || e.Callback.WebhookID != c1.Callback.WebhookID {
		t.Errorf("callback after a retry = %+v", e.Callback)
	}
	if got := claimIDs(t, b, client, later, 10, longTTL); len(got) != 0 {
		t.Errorf("callbacks before c1's retry time = %v", got)
	}
	if got := claimIDs(t, peer, client, at.Add(2*time.Hour), 10, longTTL); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("callbacks at c1's retry time = %v, want [c1]", got)
	}
	// Done, by a webhook id that is not the pending one: nothing changes.
	for _, stale := range []string{"msg_stale", ""} {
		if err := b.CallbackDone(ctx, k1, stale); err != nil {
			t.Errorf("CallbackDone with a stale webhook id: %v", err)
		}
		if err := b.CallbackRetry(ctx, k1, stale, at, "x"); err != nil {
			t.Errorf("CallbackRetry with a stale webhook id: %v", err)
		}
	}
	if e := mustEntry(t, b, k1); !e.Callback.Pending || e.Callback.Attempts != 1 {
		t.Errorf("a stale webhook id changed the callback: %+v", e.Callback)
	}
	if err := peer.CallbackDone(ctx, k1, c1.Callback.WebhookID); err != nil {
		t.Fatal(err)
	}
	e = mustEntry(t, b, k1)
	if e.Callback.Pending || e.Callback.Attempts != 2 || e.Callback.WebhookID != c1.Callback.WebhookID || e.State != store.EntrySucceeded {
		t.Errorf("callback after done = %+v", e.Callback)
	}
	if err := b.CallbackDone(ctx, k1, c1.Callback.WebhookID); err != nil {
		t.Errorf("CallbackDone again: %v", err)
	}
	if err := b.CallbackDone(ctx, store.RequestKey{ClientID: client, RequestID: "unknown"}, "msg_x"); err != nil {
		t.Errorf("CallbackDone of an unknown entry: %v", err)
	}
	if got := claimIDs(t, b, client, at.Add(24*time.Hour), 10, longTTL); slices.Contains(got, "c1") {
		t.Errorf("a done callback is claimed again: %v", got)
	}
}

// testCallbackClaimExpires: a claim not followed by done or retry ends
// after its lease (the instance that claimed it died), so the callback is
// sent again; and the webhook ids of two entries differ.
func testCallbackClaimExpires(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	client := ids.client()
	at := now()
	endWithCallback(t, b, client, at, "c1", "c2")
	if got := claimIDs(t, b, client, at.Add(time.Minute), 1, shortTTL); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("first claim = %v, want [c1]", got)
	}
	time.Sleep(pastExpiry)
	if got := claimIDs(t, h.Peer(t, b), client, at.Add(time.Minute), 10, longTTL); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("claims after the first one's lease = %v, want [c1 c2]", got)
	}
	e1 := mustEntry(t, b, store.RequestKey{ClientID: client, RequestID: "c1"})
	e2 := mustEntry(t, b, store.RequestKey{ClientID: client, RequestID: "c2"})
	if e1.Callback.WebhookID == e2.Callback.WebhookID {
		t.Errorf("two entries share the webhook id %q", e1.Callback.WebhookID)
	}
}

// testCallbacksSurviveRestart: a pending callback and its retry state are
// durable; the claims of a dead process are not.
func testCallbacksSurviveRestart(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	client := ids.client()
	at := now()
	endWithCallback(t, b, client, at, "c1", "c2")
	k2 := store.RequestKey{ClientID: client, RequestID: "c2"}
	wid := mustEntry(t, b, k2).Callback.WebhookID
	if err := b.CallbackRetry(ctxFor(t), k2, wid, at.Add(time.Minute), "timeout"); err != nil {
		t.Fatal(err)
	}
	if got := claimIDs(t, b, client, at.Add(time.Second), 10, shortTTL); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("claimed %v, want [c1]", got)
	}
	b = h.Restart(t, b)
	time.Sleep(pastExpiry)
	if got := claimIDs(t, b, client, at.Add(2*time.Minute), 10, longTTL); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Errorf("callbacks after a restart = %v, want [c1 c2]", got)
	}
	if e := mustEntry(t, b, k2); e.Callback.WebhookID != wid || e.Callback.Attempts != 1 || e.Callback.LastError != "timeout" {
		t.Errorf("c2's callback after a restart = %+v", e.Callback)
	}
}

// testCallbackNeverBlocksLane: a pending callback of a lane's ended entry
// does not hold the lane up.
func testCallbackNeverBlocksLane(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	if err := b.Complete(ctxFor(t), lane, tok, "r1", succeeded("r1", at)); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordAttempt(ctxFor(t), lane, tok, "r2", store.Attempt{At: at, NextAttemptAt: at, LastError: "U"}); err != nil {
		t.Errorf("the next entry with r1's callback pending: %v", err)
	}
	if err := b.ReleaseLane(ctxFor(t), lane, tok); err != nil {
		t.Fatal(err)
	}
	if got := dueNames(t, b, lane.ClientID, at.Add(time.Second)); len(got) != 1 {
		t.Errorf("lane with a pending callback not due: %v", got)
	}
}

// testRetention: a final entry reads as absent once its retention ended —
// unless its callback is pending — and its requestId can then be queued
// afresh; it is listed no more.
func testRetention(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	client := ids.client()
	lane := store.LaneKey{ClientID: client, MerchantBizNo: "m"}
	at := now()
	mustEnqueue(t, b, newEntry(lane, "quiet", "PAID", at), 0)
	mustEnqueue(t, b, newEntry(lane, "loud", "REFUNDED", at), mustLane(t, b, lane).Version)
	tok := mustLease(t, b, lane, longTTL)
	c := succeeded("quiet", now())
	c.Callback, c.Retention = false, retentionShort
	if err := b.Complete(ctx, lane, tok, "quiet", c); err != nil {
		t.Fatal(err)
	}
	c = succeeded("loud", now())
	c.Retention = retentionShort
	if err := b.Complete(ctx, lane, tok, "loud", c); err != nil {
		t.Fatal(err)
	}
	if list, err := b.ListEntries(ctx, client, store.EntrySucceeded, 10); err != nil || len(list) != 2 {
		t.Errorf("ListEntries within retention = %d entries, %v; want 2", len(list), err)
	}
	time.Sleep(pastRetention)
	if e, err := b.GetEntry(ctx, rkey(lane, "quiet")); err != nil || e != nil {
		t.Errorf("GetEntry after retention = %+v, %v; want nil", e, err)
	}
	loud := mustEntry(t, b, rkey(lane, "loud")) // its callback is pending
	if list, err := b.ListEntries(ctx, client, "", 10); err != nil || len(list) != 1 || list[0].RequestID != "loud" {
		t.Errorf("ListEntries after retention = %v, %v; want [loud]", list, err)
	}
	if err := b.CallbackDone(ctx, rkey(lane, "loud"), loud.Callback.WebhookID); err != nil {
		t.Fatal(err)
	}
	if e, err := b.GetEntry(ctx, rkey(lane, "loud")); err != nil || e != nil {
		t.Errorf("GetEntry after retention and callback = %+v, %v; want nil", e, err)
	}
	// The requestId is free again.
	fresh := newEntry(lane, "quiet", "SHIPPED", now())
	mustEnqueue(t, b, fresh, mustLane(t, b, lane).Version)
	if d := entryDiff(mustEntry(t, b, rkey(lane, "quiet")), queued(fresh)); d != "" {
		t.Errorf("requestId queued afresh: %s", d)
	}
	if list, err := b.ListEntries(ctx, client, "", 10); err != nil || len(list) != 1 || list[0].State != store.EntryQueued {
		t.Errorf("ListEntries = %v, %v; want the fresh entry only", list, err)
	}
}
