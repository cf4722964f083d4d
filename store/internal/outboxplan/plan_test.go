package outboxplan

import (
	"slices"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

func TestScore(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := base.UnixMilli()
	for _, tc := range []struct {
		t            time.Time
		score, floor int64
	}{
		{base, ms, ms},
		{base.Add(1), ms + 1, ms}, // rounded up: never due early
		{base.Add(time.Millisecond - 1), ms + 1, ms},
		{base.Add(time.Millisecond), ms + 1, ms + 1},
		{time.Time{}, 0, 0},
		{time.Unix(-5, 0), 0, 0},
		{time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), Never, Never},
	} {
		if got := Score(tc.t); got != tc.score {
			t.Errorf("Score(%v) = %d, want %d", tc.t, got, tc.score)
		}
		if !tc.t.IsZero() {
			if got := Floor(tc.t); got != tc.floor {
				t.Errorf("Floor(%v) = %d, want %d", tc.t, got, tc.floor)
			}
		}
	}
	if float64(Never) != float64(Never-1)+1 {
		t.Error("Never is not exactly representable as a Redis score")
	}
}

// TestWebhookID: stable for one final state (a retried write makes the same
// id), different for another entry or another final state of the entry.
func TestWebhookID(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	id := WebhookID("c", "r", at)
	if WebhookID("c", "r", at.In(time.FixedZone("HKT", 8*3600))) != id {
		t.Error("the id depends on the time's location")
	}
	for name, other := range map[string]string{
		"other entry":       WebhookID("c", "r2", at),
		"other client":      WebhookID("c2", "r", at),
		"ids shifted":       WebhookID("cr", "", at),
		"other final state": WebhookID("c", "r", at.Add(1)),
	} {
		if other == id {
			t.Errorf("%s: same webhook id %s", name, id)
		}
	}
	if len(id) != len("msg_")+32 || id[:4] != "msg_" {
		t.Errorf("webhook id %q, want msg_ and 32 hex digits", id)
	}
}

// memReader is a Reader over maps.
type memReader struct {
	entries map[store.RequestKey]*store.Entry
	lanes   map[store.LaneKey]*store.LaneRecord
}

func (m memReader) Entry(k store.RequestKey) (*store.Entry, error)  { return m.entries[k], nil }
func (m memReader) Lane(k store.LaneKey) (*store.LaneRecord, error) { return m.lanes[k], nil }

// apply writes c into m, as a backend would.
func (m memReader) apply(c Change) {
	for _, ec := range c.Entries {
		if ec.New == nil {
			delete(m.entries, ec.Key)
		} else {
			m.entries[ec.Key] = ec.New
		}
	}
	for _, lc := range c.Lanes {
		if lc.New == nil {
			delete(m.lanes, lc.Key)
		} else {
			m.lanes[lc.Key] = lc.New
		}
	}
}

// TestIndexFollowsEntries: the index operations of a sequence of changes
// leave exactly the places the final records have — what a backend's
// indexes must hold, with nothing left behind.
func TestIndexFollowsEntries(t *testing.T) {
	m := memReader{map[store.RequestKey]*store.Entry{}, map[store.LaneKey]*store.LaneRecord{}}
	index := map[IndexOp]bool{} // with Remove false
	run := func(c Change, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range c.Index() {
			key := op
			key.Remove = false
			if op.Remove {
				if !index[key] {
					t.Fatalf("removal of %+v, which is not there", op)
				}
				delete(index, key)
			} else {
				index[key] = true
			}
		}
		m.apply(c)
	}
	lane := store.LaneKey{ClientID: "c", MerchantBizNo: "m"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := func(id string) store.Entry {
		return store.Entry{ClientID: "c", RequestID: id, MerchantBizNo: "m", State: store.EntryQueued, CreatedAt: at, NextAttemptAt: at}
	}
	enqueue := func(id string, v uint64) {
		c, ex, err := Enqueue(m, e(id), v, at)
		if ex != nil {
			t.Fatal("duplicate")
		}
		run(c, err)
	}
	enqueue("r1", 0)
	enqueue("r2", 1)
	enqueue("r3", 2)
	run(Attempt(m, lane, "r1", store.Attempt{At: at, NextAttemptAt: at.Add(time.Minute)}))
	run(Complete(m, lane, "r1", store.Completion{State: store.EntrySucceeded, At: at, Callback: true, Retention: time.Hour,
		Accepted: &store.Order{Status: "PAID"}}))
	c, _, err := Drop(m, store.RequestKey{ClientID: "c", RequestID: "r3"}, store.Drop{At: at, Retention: time.Hour})
	run(c, err)
	c, _, err = Requeue(m, store.RequestKey{ClientID: "c", RequestID: "r3"}, m.lanes[lane].Version, at.Add(time.Second))
	run(c, err)
	run(CallbackRetry(m, store.RequestKey{ClientID: "c", RequestID: "r1"}, m.entries[store.RequestKey{ClientID: "c", RequestID: "r1"}].Callback.WebhookID, at.Add(time.Hour), "x"))
	run(CallbackDone(m, store.RequestKey{ClientID: "c", RequestID: "r1"}, m.entries[store.RequestKey{ClientID: "c", RequestID: "r1"}].Callback.WebhookID))
	run(Complete(m, lane, "r2", store.Completion{State: store.EntryExpired, At: at, Retention: time.Hour}))

	// What the records say the index holds.
	want := map[IndexOp]bool{}
	for k, e := range m.entries {
		for _, p := range entryPlaces(e) {
			want[IndexOp{Index: p.index, ClientID: k.ClientID, State: p.state, Member: k.RequestID, Score: p.score}] = true
		}
	}
	for k, l := range m.lanes {
		for _, p := range lanePlaces(l) {
			want[IndexOp{Index: p.index, ClientID: k.ClientID, Member: k.MerchantBizNo, Score: p.score}] = true
		}
	}
	if len(index) != len(want) {
		t.Errorf("index holds %d entries, the records %d:\n%v\n%v", len(index), len(want), index, want)
	}
	for op := range want {
		if !index[op] {
			t.Errorf("index lacks %+v", op)
		}
	}
	// The lane: r3 alone, due at its requeue time.
	l := m.lanes[lane]
	if !slices.Equal(l.Queue, []string{"r3"}) || !l.HeadDue.Equal(at.Add(time.Second)) || l.Accepted == nil {
		t.Errorf("lane = %+v", l)
	}
	// Sweeping everything after retention leaves only the queued entry
	// and the lane's place in the due index.
	for k := range m.entries {
		run(Sweep(m, k, at.Add(2*time.Hour)))
	}
	if len(m.entries) != 1 || len(index) != 2 {
		t.Errorf("after the sweep: %d entries, index %v", len(m.entries), index)
	}
}
