package outboxtest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// testRetry: a queued entry becomes due now (its lane too, if it is the
// head); final and unknown entries are refused.
func testRetry(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	at := now()
	e1 := newEntry(lane, "r1", "PAID", at)
	e1.NextAttemptAt = at.Add(time.Hour)
	mustEnqueue(t, b, e1, 0)
	e2 := newEntry(lane, "r2", "REFUNDED", at)
	e2.NextAttemptAt = at.Add(time.Hour)
	mustEnqueue(t, b, e2, mustLane(t, b, lane).Version)
	v := mustLane(t, b, lane).Version
	retried := at.Add(time.Minute)
	got, err := b.RetryEntry(ctx, rkey(lane, "r2"), retried)
	if err != nil || got == nil || !got.NextAttemptAt.Equal(retried) || !got.UpdatedAt.Equal(retried) {
		t.Fatalf("RetryEntry(r2) = %+v, %v", got, err)
	}
	if d := entryDiff(mustEntry(t, b, rkey(lane, "r2")), *got); d != "" {
		t.Errorf("stored r2 differs from the returned one: %s", d)
	}
	if names := dueNames(t, b, lane.ClientID, retried.Add(time.Millisecond)); len(names) != 0 {
		t.Errorf("retrying a non-head entry made its lane due: %v", names)
	}
	if _, err := b.RetryEntry(ctx, rkey(lane, "r1"), retried); err != nil {
		t.Fatal(err)
	}
	if names := dueNames(t, b, lane.ClientID, retried.Add(time.Millisecond)); len(names) != 1 {
		t.Errorf("retrying the head did not make its lane due: %v", names)
	}
	if l := mustLane(t, b, lane); l.Version != v || !slices.Equal(queueOf(l), []string{"r1", "r2"}) {
		t.Errorf("retry changed the lane: version %d→%d, %v", v, l.Version, queueOf(l))
	}
	if _, err := b.RetryEntry(ctx, rkey(lane, "unknown"), retried); !errors.Is(err, store.ErrEntryNotFound) {
		t.Errorf("RetryEntry of an unknown entry: %v, want ErrEntryNotFound", err)
	}
	tok := mustLease(t, b, lane, longTTL)
	if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", at)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RetryEntry(ctx, rkey(lane, "r1"), retried); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("RetryEntry of a final entry: %v, want ErrWrongState", err)
	}
}

// testRequeue: a failed or expired entry goes back to its lane's tail,
// queued afresh, if the lane is still at the version the caller checked;
// succeeded and queued entries are refused.
func testRequeue(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane, at := twoQueued(t, b, ids)
	tok := mustLease(t, b, lane, longTTL)
	if err := b.Complete(ctx, lane, tok, "r1", store.Completion{State: store.EntryFailed, At: at, Reply: sampleReply("F"),
		Attempted: true, LastError: "F", Callback: true, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	failed := mustEntry(t, b, rkey(lane, "r1"))
	l := mustLane(t, b, lane)
	again := at.Add(time.Minute)
	if _, err := b.RequeueEntry(ctx, rkey(lane, "r1"), l.Version+1, again); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RequeueEntry at a stale version: %v, want ErrConflict", err)
	}
	if _, err := b.RequeueEntry(ctx, rkey(lane, "r2"), l.Version, again); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("RequeueEntry of a queued entry: %v, want ErrWrongState", err)
	}
	got, err := b.RequeueEntry(ctx, rkey(lane, "r1"), l.Version, again)
	if err != nil {
		t.Fatal(err)
	}
	want := *failed
	want.State, want.Attempts, want.LastError, want.Reply = store.EntryQueued, 0, "", nil
	want.QueuedAt, want.UpdatedAt, want.NextAttemptAt = again, again, again
	want.ExpiresAt, want.Callback = time.Time{}, store.Callback{}
	if d := entryDiff(got, want); d != "" {
		t.Errorf("requeued entry: %s", d)
	}
	if d := entryDiff(mustEntry(t, b, rkey(lane, "r1")), want); d != "" {
		t.Errorf("stored requeued entry: %s", d)
	}
	after := mustLane(t, b, lane)
	if after.Version <= l.Version || !slices.Equal(queueOf(after), []string{"r2", "r1"}) {
		t.Errorf("lane after requeue = version %d %v; want > %d, [r2 r1]", after.Version, queueOf(after), l.Version)
	}
	if cbs := claimIDs(t, b, lane.ClientID, at.Add(time.Hour), 10, longTTL); len(cbs) != 0 {
		t.Errorf("the superseded callback is still due: %v", cbs)
	}
	// A succeeded entry stays succeeded.
	tok = mustLease(t, b, lane, longTTL)
	if err := b.Complete(ctx, lane, tok, "r2", succeeded("r2", at)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RequeueEntry(ctx, rkey(lane, "r2"), mustLane(t, b, lane).Version, again); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("RequeueEntry of a succeeded entry: %v, want ErrWrongState", err)
	}
	if _, err := b.RequeueEntry(ctx, rkey(lane, "unknown"), 0, again); !errors.Is(err, store.ErrEntryNotFound) {
		t.Errorf("RequeueEntry of an unknown entry: %v, want ErrEntryNotFound", err)
	}
}

// testDrop: a queued entry ends failed "dropped by operator" wherever it is
// in its lane, with its callback; dropping the head unblocks the lane and
// turns its holder's Complete into ErrNotHead.
func testDrop(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	at := now()
	for i, id := range []string{"r1", "r2", "r3"} {
		e := newEntry(lane, id, "S"+id, at)
		e.NextAttemptAt = at.Add(time.Duration(i) * time.Hour)
		mustEnqueue(t, b, e, mustLane(t, b, lane).Version)
	}
	v := mustLane(t, b, lane).Version
	dropAt := at.Add(time.Second)
	got, err := b.DropEntry(ctx, rkey(lane, "r2"), store.Drop{At: dropAt, Callback: true, Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.EntryFailed || got.LastError != store.DroppedByOperator || !got.Callback.Pending ||
		!got.UpdatedAt.Equal(dropAt) || !got.ExpiresAt.Equal(dropAt.Add(retention)) {
		t.Errorf("dropped entry = %+v", got)
	}
	if d := entryDiff(mustEntry(t, b, rkey(lane, "r2")), *got); d != "" {
		t.Errorf("stored dropped entry: %s", d)
	}
	l := mustLane(t, b, lane)
	if l.Version <= v || !slices.Equal(queueOf(l), []string{"r1", "r3"}) {
		t.Errorf("lane after dropping r2 = version %d %v", l.Version, queueOf(l))
	}
	// The head, while leased.
	tok := mustLease(t, b, lane, longTTL)
	if _, err := b.DropEntry(ctx, rkey(lane, "r1"), store.Drop{At: dropAt, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, lane, tok, "r1", succeeded("r1", dropAt)); !errors.Is(err, store.ErrNotHead) {
		t.Errorf("Complete of a dropped head: %v, want ErrNotHead", err)
	}
	if e := mustEntry(t, b, rkey(lane, "r1")); e.State != store.EntryFailed || e.Callback.Pending {
		t.Errorf("dropped head = %+v (no callback asked)", e)
	}
	if err := b.ReleaseLane(ctx, lane, tok); err != nil {
		t.Fatal(err)
	}
	// r3 is the head now, due at its own time.
	if names := dueNames(t, b, lane.ClientID, at.Add(2*time.Hour-time.Millisecond)); len(names) != 0 {
		t.Errorf("lane due before r3's time: %v", names)
	}
	if names := dueNames(t, b, lane.ClientID, at.Add(2*time.Hour+time.Millisecond)); len(names) != 1 {
		t.Errorf("lane not due at r3's time: %v", names)
	}
	if _, err := b.DropEntry(ctx, rkey(lane, "r1"), store.Drop{At: dropAt, Retention: retention}); !errors.Is(err, store.ErrWrongState) {
		t.Errorf("DropEntry of a final entry: %v, want ErrWrongState", err)
	}
	if _, err := b.DropEntry(ctx, rkey(lane, "unknown"), store.Drop{At: dropAt, Retention: retention}); !errors.Is(err, store.ErrEntryNotFound) {
		t.Errorf("DropEntry of an unknown entry: %v, want ErrEntryNotFound", err)
	}
	if _, err := b.DropEntry(ctx, rkey(lane, "r3"), store.Drop{At: dropAt}); err == nil {
		t.Error("DropEntry without a retention succeeded")
	}
	// The last entry: the lane is empty, and not due.
	if _, err := b.DropEntry(ctx, rkey(lane, "r3"), store.Drop{At: dropAt, Retention: retention}); err != nil {
		t.Fatal(err)
	}
	if l := mustLane(t, b, lane); len(l.Queued) != 0 || l.Accepted != nil {
		t.Errorf("lane after dropping everything = %+v", l)
	}
	if names := dueNames(t, b, lane.ClientID, at.Add(24*time.Hour)); len(names) != 0 {
		t.Errorf("an empty lane is due: %v", names)
	}
}

// testListAndStats: entries listed by state, queued oldest first and final
// latest first, bounded; stats count the queue, its oldest entry and the
// pending callbacks.
func testListAndStats(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	client := ids.client()
	if st, err := b.OutboxStats(ctx, client); err != nil || st != (store.OutboxStats{}) {
		t.Errorf("stats of an unknown client = %+v, %v", st, err)
	}
	at := now()
	for i, id := range []string{"q1", "q2", "q3"} {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: "m-" + id}
		e := newEntry(lane, id, "PAID", at.Add(time.Duration(i)*time.Second))
		mustEnqueue(t, b, e, 0)
	}
	endWithCallback(t, b, client, at, "s1", "s2")
	lane := store.LaneKey{ClientID: client, MerchantBizNo: "m-f1"}
	mustEnqueue(t, b, newEntry(lane, "f1", "PAID", at), 0)
	if _, err := b.DropEntry(ctx, rkey(lane, "f1"), store.Drop{At: at.Add(time.Hour), Retention: retention}); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, b, newEntry(store.LaneKey{ClientID: ids.client(), MerchantBizNo: "m"}, "other", "PAID", at), 0)

	for _, tc := range []struct {
		state store.EntryState
		limit int
		want  []string
	}{
		{store.EntryQueued, 10, []string{"q1", "q2", "q3"}},
		{store.EntryQueued, 2, []string{"q1", "q2"}},
		{store.EntrySucceeded, 10, nil}, // s1 and s2 have callbacks pending: see below
		{store.EntryFailed, 10, []string{"f1"}},
		{store.EntryExpired, 10, []string{}},
		{"", 4, []string{"q1", "q2", "q3"}},
	} {
		list, err := b.ListEntries(ctx, client, tc.state, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(list))
		for i, e := range list {
			got[i] = e.RequestID
			if tc.state != "" && e.State != tc.state {
				t.Errorf("ListEntries(%s) returned a %s entry", tc.state, e.State)
			}
		}
		if tc.want == nil {
			slices.Sort(got)
			tc.want = []string{"s1", "s2"}
		}
		if tc.state == "" {
			got = got[:min(3, len(got))]
			if len(list) != 4 {
				t.Errorf("ListEntries(all, 4) returned %d entries", len(list))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListEntries(%q, %d) = %v, want %v", tc.state, tc.limit, got, tc.want)
		}
	}
	// Final entries: the latest ended first, once their callbacks are
	// done (a pending callback keeps its entry at the front).
	for _, id := range []string{"s1", "s2"} {
		k := store.RequestKey{ClientID: client, RequestID: id}
		if err := b.CallbackDone(ctx, k, mustEntry(t, b, k).Callback.WebhookID); err != nil {
			t.Fatal(err)
		}
	}
	list, err := b.ListEntries(ctx, client, store.EntrySucceeded, 10)
	if err != nil || len(list) != 2 || list[0].RequestID != "s2" || list[1].RequestID != "s1" {
		t.Errorf("ListEntries(succeeded) = %v, %v; want [s2 s1]", list, err)
	}
	if list, err := b.ListEntries(ctx, client, "paused", 10); err == nil {
		t.Errorf("ListEntries of an unknown state = %v, want an error", list)
	}

	st, err := b.OutboxStats(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != 3 || st.CallbacksPending != 0 || st.OldestQueuedAt.Before(at) || st.OldestQueuedAt.After(at.Add(time.Millisecond)) {
		t.Errorf("stats = %+v; want 3 queued, the oldest at %v to the millisecond, no callback pending", st, at)
	}
	endWithCallback(t, b, client, at, "s3")
	if st, err := b.OutboxStats(ctx, client); err != nil || st.CallbacksPending != 1 {
		t.Errorf("stats with a pending callback = %+v, %v", st, err)
	}
}

// testKeysDoNotCollide: ids with separators, braces and bytes that are not
// UTF-8 name distinct entries and lanes.
func testKeysDoNotCollide(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	c := ids.client()
	at := now()
	lanes := []store.LaneKey{
		{ClientID: c, MerchantBizNo: "a:b"},
		{ClientID: c + ":a", MerchantBizNo: "b"},
		{ClientID: c, MerchantBizNo: "a}:{b"},
		{ClientID: c + "{x}", MerchantBizNo: "a"},
		{ClientID: c, MerchantBizNo: "a\x00b"},
		{ClientID: c, MerchantBizNo: "\xff"},
		{ClientID: c + "\x01", MerchantBizNo: "a"},
		{ClientID: c, MerchantBizNo: "e:x"},
	}
	for i, lane := range lanes {
		// The same requestId in every lane: only per client is it one key.
		mustEnqueue(t, b, newEntry(lane, "r:"+lane.MerchantBizNo, "PAID", at.Add(time.Duration(i))), 0)
	}
	for i, lane := range lanes {
		l := mustLane(t, b, lane)
		if len(l.Queued) != 1 || l.Queued[0].MerchantBizNo != lane.MerchantBizNo || l.Queued[0].ClientID != lane.ClientID ||
			!l.Queued[0].CreatedAt.Equal(at.Add(time.Duration(i))) {
			t.Errorf("lane %q/%q holds %v", lane.ClientID, lane.MerchantBizNo, queueOf(l))
		}
	}
	st, err := b.OutboxStats(ctx, c)
	if err != nil || st.Queued != 5 {
		t.Errorf("stats of %q = %+v, %v; want 5 queued", c, st, err)
	}
	due, err := b.DueLanes(ctx, c, at.Add(time.Second), 100)
	if err != nil || len(due.Lanes) != 5 {
		t.Errorf("due lanes of %q = %v, %v; want 5", c, due.Lanes, err)
	}
}
