package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func fullEntry() *Entry {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_001, time.UTC)
	return &Entry{
		ClientID:        "client\x00:{x}",
		RequestID:       "req-1",
		MerchantBizNo:   "m\xff",
		Scenario:        "gift_card",
		OrderStatus:     "PAID",
		OrderModifyTime: -1,
		Body:            []byte("{\"a\":1}\x00\xff"),
		BodyHash:        HashBody([]byte("{\"a\":1}\x00\xff")),
		State:           EntryFailed,
		Attempts:        7,
		CreatedAt:       at,
		QueuedAt:        at.Add(time.Second),
		UpdatedAt:       at.Add(2 * time.Second),
		NextAttemptAt:   at.Add(3 * time.Second),
		LastError:       "U: REQUEST_TRAFFIC_EXCEED_LIMIT",
		Reply: &Reply{Status: 200, Header: map[string][]string{"Signature": {"a", "b"}, "X": nil},
			Body: []byte(`{"result":{"resultStatus":"F"}}`)},
		ExpiresAt: at.Add(time.Hour),
		Callback: Callback{Pending: true, WebhookID: "msg_x", Attempts: 2,
			NextAttemptAt: at.Add(time.Minute), LastError: "HTTP 500"},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for name, e := range map[string]*Entry{
		"zero":          {State: EntryQueued},
		"full":          fullEntry(),
		"empty body":    {State: EntryQueued, Body: []byte{}},
		"reply no body": {State: EntrySucceeded, Reply: &Reply{Status: 200}},
	} {
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%s: round trip gave\n%#v\nwant\n%#v", name, got, e)
		}
	}
}

// TestEntryTimesComeBackInUTC: the instant is kept, the location is not;
// the zero time stays zero (IsZero is how callers read "not set").
func TestEntryTimesComeBackInUTC(t *testing.T) {
	hk := time.FixedZone("HKT", 8*3600)
	at := time.Date(2026, 5, 6, 7, 8, 9, 10, hk)
	got, err := DecodeEntry(EncodeEntry(&Entry{State: EntryQueued, CreatedAt: at}))
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(at) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, at)
	}
	if !got.QueuedAt.IsZero() || !got.ExpiresAt.IsZero() || !got.Callback.NextAttemptAt.IsZero() {
		t.Errorf("zero times came back as %v, %v, %v", got.QueuedAt, got.ExpiresAt, got.Callback.NextAttemptAt)
	}
}

func TestDecodeEntryRejectsDamage(t *testing.T) {
	full := EncodeEntry(fullEntry())
	for i := range len(full) {
		if _, err := DecodeEntry(full[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := DecodeEntry(append(full[:len(full):len(full)], 'x')); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := append([]byte{entryFormat + 1}, full[1:]...)
	if _, err := DecodeEntry(bad); err == nil {
		t.Error("unknown format version: no error")
	}
	unknownState := EncodeEntry(&Entry{State: "paused"})
	if _, err := DecodeEntry(unknownState); err == nil {
		t.Error("unknown state: no error")
	}
}

func TestLaneRecordRoundTrip(t *testing.T) {
	accepted := &Order{Scenario: "s", Status: "PAID", ModifyTime: 5, OrderID: "o",
		DistributeResult: json.RawMessage(`[ {"a":"<&>"} ]`), RequestID: "r",
		UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	for name, r := range map[string]*LaneRecord{
		"zero":     {},
		"accepted": {Version: 9, Accepted: accepted},
		"queue": {Version: 1 << 40, Accepted: accepted, Queue: []string{"a", "", "c\x00"},
			HeadDue: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
	} {
		got, err := DecodeLaneRecord(EncodeLaneRecord(r))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: round trip gave %#v, want %#v", name, got, r)
		}
	}
	full := EncodeLaneRecord(&LaneRecord{Version: 3, Accepted: accepted, Queue: []string{"a", "b"}})
	for i := range len(full) {
		if _, err := DecodeLaneRecord(full[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
}
