package outboxtest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// entryDiff describes how got differs from want, or returns "".
func entryDiff(got *store.Entry, want store.Entry) string {
	if got == nil {
		return "no entry"
	}
	if reflect.DeepEqual(*got, want) {
		return ""
	}
	g, w := reflect.ValueOf(*got), reflect.ValueOf(want)
	var diffs []string
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			diffs = append(diffs, fmt.Sprintf("%s = %#v, want %#v", g.Type().Field(i).Name, g.Field(i).Interface(), w.Field(i).Interface()))
		}
	}
	return fmt.Sprint(diffs)
}

// queued is what a freshly queued e reads back as.
func queued(e store.Entry) store.Entry {
	e.BodyHash = store.HashBody(e.Body)
	if e.QueuedAt.IsZero() {
		e.QueuedAt = e.CreatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.QueuedAt
	}
	return e
}

// testEnqueueAndGet: an entry reads back exactly as queued, body bytes
// included, with BodyHash set; its lane lists it with version 1.
func testEnqueueAndGet(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	if l := mustLane(t, b, lane); l.Version != 0 || l.Accepted != nil || len(l.Queued) != 0 || l.Key != lane {
		t.Fatalf("unused lane = %+v, want empty at version 0", l)
	}
	if e, err := b.GetEntry(ctx, rkey(lane, "r1")); err != nil || e != nil {
		t.Fatalf("GetEntry of an unknown entry = %+v, %v; want nil", e, err)
	}
	e := newEntry(lane, "r1", "PAID", now())
	e.BodyHash = store.BodyHash{1} // overwritten: the store hashes the body itself
	mustEnqueue(t, b, e, 0)
	want := queued(e)
	if d := entryDiff(mustEntry(t, b, rkey(lane, "r1")), want); d != "" {
		t.Errorf("entry read back: %s", d)
	}
	l := mustLane(t, b, lane)
	if l.Version == 0 || l.Key != lane || l.Accepted != nil || len(l.Queued) != 1 {
		t.Fatalf("lane after one enqueue = %+v", l)
	}
	if d := entryDiff(l.Queued[0], want); d != "" {
		t.Errorf("lane's queued entry: %s", d)
	}
}

// testEnqueueDedupe: a second Enqueue of a requestId returns the stored
// entry unchanged, whatever it carries, and queues nothing.
func testEnqueueDedupe(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	first := newEntry(lane, "r1", "PAID", now())
	mustEnqueue(t, b, first, 0)
	v := mustLane(t, b, lane).Version
	for name, again := range map[string]store.Entry{
		"same":           first,
		"different body": newEntry(lane, "r1", "REFUNDED", now()),
		"other lane":     newEntry(store.LaneKey{ClientID: lane.ClientID, MerchantBizNo: "other"}, "r1", "PAID", now()),
	} {
		existing, err := b.Enqueue(ctx, again, v)
		if err != nil {
			t.Fatalf("%s: Enqueue of a known requestId: %v", name, err)
		}
		if d := entryDiff(existing, queued(first)); d != "" {
			t.Errorf("%s: Enqueue of a known requestId returned %s", name, d)
		}
		// Even with a stale lane version: dedupe comes first.
		existing, err = b.Enqueue(ctx, again, v+7)
		if err != nil || existing == nil {
			t.Errorf("%s: Enqueue of a known requestId with a stale version = %v, %v; want the entry", name, existing, err)
		}
	}
	l := mustLane(t, b, lane)
	if l.Version != v || !slices.Equal(queueOf(l), []string{"r1"}) {
		t.Errorf("lane after duplicates = version %d %v, want version %d [r1]", l.Version, queueOf(l), v)
	}
	other := mustLane(t, b, store.LaneKey{ClientID: lane.ClientID, MerchantBizNo: "other"})
	if other.Version != 0 || len(other.Queued) != 0 {
		t.Errorf("the other lane got %v", queueOf(other))
	}
}

// testEnqueueLaneConflict: an Enqueue against a lane version that is not
// the lane's is ErrConflict and writes nothing; against the current one,
// it queues at the tail, in order.
func testEnqueueLaneConflict(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	mustEnqueue(t, b, newEntry(lane, "r1", "PAID", now()), 0)
	v1 := mustLane(t, b, lane).Version
	for _, stale := range []uint64{0, v1 + 1} {
		existing, err := b.Enqueue(ctx, newEntry(lane, "r2", "REFUNDED", now()), stale)
		if !errors.Is(err, store.ErrConflict) || existing != nil {
			t.Errorf("Enqueue at version %d (lane at %d) = %v, %v; want ErrConflict", stale, v1, existing, err)
		}
	}
	if e, err := b.GetEntry(ctx, rkey(lane, "r2")); err != nil || e != nil {
		t.Errorf("a refused Enqueue left %+v, %v", e, err)
	}
	mustEnqueue(t, b, newEntry(lane, "r2", "REFUNDED", now()), v1)
	l := mustLane(t, b, lane)
	if l.Version == v1 || !slices.Equal(queueOf(l), []string{"r1", "r2"}) {
		t.Errorf("lane = version %d %v; want a new version and [r1 r2]", l.Version, queueOf(l))
	}
}

// testEnqueueInvalid: an entry the outbox cannot hold is refused, and
// nothing is written.
func testEnqueueInvalid(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource) {
	ctx := ctxFor(t)
	lane := ids.lane()
	for name, change := range map[string]func(e *store.Entry){
		"no requestId":     func(e *store.Entry) { e.RequestID = "" },
		"no merchantBizNo": func(e *store.Entry) { e.MerchantBizNo = "" },
		"no client":        func(e *store.Entry) { e.ClientID = "" },
		"not queued":       func(e *store.Entry) { e.State = store.EntrySucceeded },
		"attempted":        func(e *store.Entry) { e.Attempts = 1 },
		"with a reply":     func(e *store.Entry) { e.Reply = sampleReply("S") },
		"with a callback":  func(e *store.Entry) { e.Callback.Pending = true },
		"no createdAt":     func(e *store.Entry) { e.CreatedAt = time.Time{} },
	} {
		e := newEntry(lane, "r1", "PAID", now())
		change(&e)
		if existing, err := b.Enqueue(ctx, e, 0); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: Enqueue = %v, %v; want it refused", name, existing, err)
		}
	}
	if l := mustLane(t, b, lane); l.Version != 0 || len(l.Queued) != 0 {
		t.Errorf("refused enqueues wrote %+v", l)
	}
}
