package outboxtest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// twoQueued queues r1 and r2 in a fresh lane, r2 due an hour after r1.
func twoQueued(t *testing.T, b store.OutboxBackend, ids *idSource) (store.LaneKey, time.Time) {
	t.Helper()
	lane := ids.lane()
	at := now()
	mustEnqueue(t, b, newEntry(lane, "r1", "PAID", at), 0)
	e2 := newEntry(lane, "r2", "REFUNDED", at.Add(time.Millisecond))
	e2.NextAttemptAt = at.Add(time.Hour)
	mustEnqueue(t, b, e2, mustLane(t, b, lane).Version)
	return lane, at
}

func dueNames(t *testing.T, b store.OutboxBackend, client string, at time.Time) []string {
	t.Helper()
	due, err := b.DueLanes(ctxFor(t), client, at, 100)
	if err != nil {
		t.Fatal(err)
	}
	return lanesOf(due.Lanes)
}

// checkCompleted checks what testCompleteSucceeded's Complete wrote, on b
// (also after a restart).
func checkCompleted(t *testing.T, b store.OutboxBackend, lane store.LaneKey, at time.Time, before *store.Lane) {
	t.Helper()
	e := mustEntry(t, b, rkey(lane, "r1"))
	want := *before.Queued[0]
	want.State = store.EntrySucceeded
	want.Attempts = before.Queued[0].Attempts + 1
	want.UpdatedAt = at
	want.NextAttemptAt = time.Time{}
	want.Reply = sampleReply("S")
	want.ExpiresAt = at.Add(retention)
	want.Callback = store.Callback{Pending: true, WebhookID: e.Callback.WebhookID, NextAttemptAt: at}
	if d := entryDiff(e, want); d != "" {
		t.Errorf("completed entry: %s", d)
	}
	if !strings.HasPrefix(e.Callback.WebhookID, "msg_") || len(e.Callback.WebhookID) < 20 {
		t.Errorf("webhook id %q, want msg_ and a long unique part", e.Callback.WebhookID)
	}
	l := mustLane(t, b, lane)
	if l.Version <= before.Version || !slices.Equal(queueOf(l), []string{"r2"}) {
		t.Errorf("lane after Complete = version %d %v; want > %d, [r2]", l.Version, queueOf(l), before.Version)
	}
	if !reflect.DeepEqual(l.Accepted, sampleAccepted("PAID", "r1", at)) {
		t.Errorf("accepted state = %+v, want %+v", l.Accepted, sampleAccepted("PAID", "r1", at))
	}
}

// testCompleteSucceeded: one Complete writes the final state and AlipayHK's
// reply byte for byte, pops the head, moves the accepted state and the
// version, schedules the callback; the next entry is the head, due at its
// own time.
func testCompleteSucceeded(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	before := mustLane(t, b, lane)
	tok := mustLease(t, b, lane, longTTL)
	done := at.Add(2 * time.Second)
	if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", done)); err != nil {
		t.Fatal(err)
	}
	checkCompleted(t, b, lane, done, before)
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	if got := dueNames(t, b, lane.ClientID, done); len(got) != 0 {
		t.Errorf("lane due before its new head's time: %v", got)
	}
	if got := dueNames(t, b, lane.ClientID, at.Add(time.Hour+time.Millisecond)); !slices.Equal(got, []string{lane.MerchantBizNo}) {
		t.Errorf("lane not due at its new head's time: %v", got)
	}
}

// testCompleteDurable: what Complete wrote is there after a restart (bbolt:
// the file reopened), whole.
func testCompleteDurable(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	lane, at := twoQueued(t, b, ids)
	before := mustLane(t, b, lane)
	tok := mustLease(t, b, lane, longTTL)
	done := at.Add(2 * time.Second)
	if err := b.Complete(ctxFor(t), lane, tok, "r1", succeeded("r1", done)); err != nil {
		t.Fatal(err)
	}
	b = h.Restart(t, b)
	checkCompleted(t, b, lane, done, before)
	cbs, err := b.ClaimCallbacks(ctxFor(t), lane.ClientID, done.Add(time.Millisecond), 10, longTTL)
	if err != nil || len(cbs) != 1 || cbs[0].RequestID != "r1" {
		t.Errorf("callbacks after a restart = %v, %v; want r1's", cbs, err)
	}
}

// testCompleteFailedAndExpired: F and expiry end the head without moving
// the accepted state; an expiry found before an attempt counts none; no
// callback unless asked.
func testCompleteFailedAndExpired(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	if err := b.Complete(ctx, lane, tok, "r1", store.Completion{State: store.EntryFailed, At: at, Reply: sampleReply("F"),
		Attempted: true, LastError: "F: ORDER_STATUS_INVALID", Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, lane, tok, "r2", store.Completion{State: store.EntryExpired, At: at, LastError: "U: timeout",
		Callback: true, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	l := mustLane(t, b, lane)
	if l.Accepted != nil || len(l.Queued) != 0 {
		t.Errorf("lane after F and expiry = %+v, want no accepted state and nothing queued", l)
	}
	e1, e2 := mustEntry(t, b, rkey(lane, "r1")), mustEntry(t, b, rkey(lane, "r2"))
	if e1.State != store.EntryFailed || e1.Attempts != 1 || !reflect.DeepEqual(e1.Reply, sampleReply("F")) ||
		e1.LastError != "F: ORDER_STATUS_INVALID" || e1.Callback.Pending {
		t.Errorf("failed entry = %+v", e1)
	}
	if e2.State != store.EntryExpired || e2.Attempts != 0 || e2.Reply != nil || !e2.Callback.Pending || e2.LastError != "U: timeout" {
		t.Errorf("expired entry = %+v", e2)
	}
	if got := dueNames(t, b, lane.ClientID, at.Add(24*time.Hour)); len(got) != 0 {
		t.Errorf("an emptied lane is due: %v", got)
	}
}

// testCompleteInvalid: a Completion that makes no sense is refused and
// writes nothing.
func testCompleteInvalid(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	before := mustLane(t, b, lane)
	tok := mustLease(t, b, lane, longTTL)
	for name, c := range map[string]store.Completion{
		"queued":              {State: store.EntryQueued, At: at, Retention: retention},
		"unknown state":       {State: "paused", At: at, Retention: retention},
		"accepted on failure": {State: store.EntryFailed, At: at, Accepted: sampleAccepted("PAID", "r1", at), Retention: retention},
		"no retention":        {State: store.EntryFailed, At: at},
	} {
		if err := b.Complete(ctx, lane, tok, "r1", c); err == nil || errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("%s: Complete = %v, want it refused", name, err)
		}
	}
	if l := mustLane(t, b, lane); l.Version != before.Version || l.Queued[0].State != store.EntryQueued {
		t.Errorf("refused completions changed the lane: %+v", l)
	}
}

// testRecordAttempt: an attempt counts, moves the lane's due time and
// keeps the entry queued.
func testRecordAttempt(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	before := mustLane(t, b, lane)
	tok := mustLease(t, b, lane, longTTL)
	for i := 1; i <= 3; i++ {
		a := store.Attempt{At: at.Add(time.Duration(i) * time.Second), NextAttemptAt: at.Add(time.Duration(i) * time.Minute), LastError: "U: busy"}
		if err := b.RecordAttempt(ctx, lane, tok, "r1", a); err != nil {
			t.Fatal(err)
		}
		want := *before.Queued[0]
		want.Attempts, want.UpdatedAt, want.NextAttemptAt, want.LastError = i, a.At, a.NextAttemptAt, a.LastError
		if d := entryDiff(mustEntry(t, b, rkey(lane, "r1")), want); d != "" {
			t.Fatalf("after attempt %d: %s", i, d)
		}
	}
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	if l := mustLane(t, b, lane); l.Version != before.Version {
		t.Errorf("attempts moved the lane's version from %d to %d", before.Version, l.Version)
	}
	if got := dueNames(t, b, lane.ClientID, at.Add(3*time.Minute-time.Millisecond)); len(got) != 0 {
		t.Errorf("due before the next attempt's time: %v", got)
	}
	if got := dueNames(t, b, lane.ClientID, at.Add(3*time.Minute+time.Millisecond)); len(got) != 1 {
		t.Errorf("not due at the next attempt's time: %v", got)
	}
}

// testNotHead: only the queued head is attempted or completed.
func testNotHead(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	for _, id := range []string{"r2", "unknown"} {
		if err := b.RecordAttempt(ctx, lane, tok, id, store.Attempt{At: at, NextAttemptAt: at}); !errors.Is(err, store.ErrNotHead) {
			t.Errorf("RecordAttempt(%s): %v, want ErrNotHead", id, err)
		}
		if err := b.Complete(ctx, lane, tok, id, succeeded(id, at)); !errors.Is(err, store.ErrNotHead) {
			t.Errorf("Complete(%s): %v, want ErrNotHead", id, err)
		}
	}
	if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", at)); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", at.Add(time.Second))); !errors.Is(err, store.ErrNotHead) {
		t.Errorf("Complete of a completed entry: %v, want ErrNotHead", err)
	}
	if e := mustEntry(t, b, rkey(lane, "r1")); !e.UpdatedAt.Equal(at) {
		t.Errorf("a second Complete rewrote the entry: %+v", e)
	}
	if l := mustLane(t, b, lane); !slices.Equal(queueOf(l), []string{"r2"}) {
		t.Errorf("lane = %v, want [r2]", queueOf(l))
	}
	if err := b.Complete(ctx, ids.lane(), tok, "r1", succeeded("r1", at)); err == nil {
		t.Error("Complete in an unused lane succeeded")
	}
}

// testKilledProcessResumes: a process that dies holding leases (after
// attempts) leaves nothing that blocks its lanes beyond the leases' ttl; a
// restarted instance finds every due lane, leases it and carries on from
// what was written.
func testKilledProcessResumes(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	client := ids.client()
	at := now()
	var lanes []store.LaneKey
	for i := range 5 {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: "m" + string(rune('a'+i))}
		lanes = append(lanes, lane)
		mustEnqueue(t, b, newEntry(lane, lane.MerchantBizNo+"-1", "PAID", at), 0)
		mustEnqueue(t, b, newEntry(lane, lane.MerchantBizNo+"-2", "REFUNDED", at), mustLane(t, b, lane).Version)
		tok := mustLease(t, b, lane, shortTTL)
		if i%2 == 0 {
			if err := b.RecordAttempt(ctx, lane, tok, lane.MerchantBizNo+"-1", store.Attempt{At: at, NextAttemptAt: at, LastError: "U"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b = h.Restart(t, b)
	time.Sleep(pastExpiry)
	due, err := b.DueLanes(ctx, client, now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := lanesOf(due.Lanes); len(got) != len(lanes) {
		t.Fatalf("due lanes after a restart = %v, want all %d", got, len(lanes))
	}
	for i, lane := range lanes {
		tok := mustLease(t, b, lane, longTTL)
		l := mustLane(t, b, lane)
		if !slices.Equal(queueOf(l), []string{lane.MerchantBizNo + "-1", lane.MerchantBizNo + "-2"}) {
			t.Fatalf("lane %s after a restart = %v", lane.MerchantBizNo, queueOf(l))
		}
		if want := 1 - i%2; l.Queued[0].Attempts != want {
			t.Errorf("lane %s head attempts = %d, want %d", lane.MerchantBizNo, l.Queued[0].Attempts, want)
		}
		if err := b.Complete(ctx, lane, tok, lane.MerchantBizNo+"-1", succeeded(lane.MerchantBizNo+"-1", now())); err != nil {
			t.Errorf("Complete after a restart: %v", err)
		}
	}
}
