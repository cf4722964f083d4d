package store

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
	"time"
)

func marshal(_ testing.TB, r Reply) []byte { return EncodeReply(r) }

func unmarshal(b []byte) (Reply, error) {
	r, err := DecodeReply(b)
	if err != nil {
		return Reply{}, err
	}
	return *r, nil
}

func TestReplyRoundTrip(t *testing.T) {
	for name, r := range map[string]Reply{
		"zero":           {},
		"empty, not nil": {Status: 200, Header: map[string][]string{}, Body: []byte{}},
		"nil values":     {Status: 200, Header: map[string][]string{"A": nil, "B": {}}},
		"nil and empty":  {Status: -1, Header: map[string][]string{"A": nil, "B": {}, "C": {""}}},
		"negative":       {Status: -1},
		"binary": {Status: 599, Header: map[string][]string{"X": {"\xff", "", "a\x00b"}, "\x00": {"z", "a"}},
			Body: []byte("\x00\xff{}")},
		"signed reply": {Status: 200, Header: map[string][]string{
			"Content-Type": {"application/json; charset=UTF-8", "application/json"},
			"Signature":    {"algorithm=RSA256,keyVersion=1,signature=ab%2B%3D"},
			"X-Raw":        {"\xff\x00\r\n"},
		}, Body: []byte("{\"result\":{\"resultCode\":\"SUCCESS\"}}\x00\xff")},
		"scenario":          {Status: 200, Header: map[string][]string{"A": {"b"}}, Body: []byte("{}"), Scenario: "gift_card"},
		"scenario, no body": {Scenario: "\x00\xff"},
	} {
		got, err := unmarshal(marshal(t, r))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s: round trip gave %#v, want %#v", name, got, r)
		}
	}
}

// TestReplyFormatVersion: the encoding starts with its format version, so
// that stored replies can change format later.
func TestReplyFormatVersion(t *testing.T) {
	for _, r := range []Reply{{}, {Status: 200, Header: map[string][]string{"A": {"b"}}, Body: []byte("c")}} {
		if b := marshal(t, r); len(b) == 0 || b[0] != replyFormat {
			t.Errorf("encoding of %#v = %x, want it to start with version %d", r, b, replyFormat)
		}
	}
}

// TestReplyEncodingIsCanonical: map iteration order must not leak into the
// bytes (both backends compare or replay them).
func TestReplyEncodingIsCanonical(t *testing.T) {
	r := Reply{Status: 200, Header: map[string][]string{"A": {"1"}, "B": {"2"}, "C": {"3"}, "D": nil, "E": {}}, Body: []byte("x")}
	first := marshal(t, r)
	for range 20 {
		if b := marshal(t, r); !bytes.Equal(b, first) {
			t.Fatalf("encoding changed between calls: %x vs %x", b, first)
		}
	}
}

func TestDecodeReplyRejectsDamage(t *testing.T) {
	full := marshal(t, Reply{Status: 200, Header: map[string][]string{"K": {"v"}}, Body: []byte("body")})
	for i := range len(full) {
		if _, err := unmarshal(full[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := unmarshal(append(full[:len(full):len(full)], 'x')); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := append([]byte{}, full...)
	bad[0] = 9
	if _, err := unmarshal(bad); err == nil {
		t.Error("unknown version: no error")
	}
	// Hand-made: version | status 0 | flags | nkeys | keys... | body.
	if r, err := unmarshal([]byte{replyFormat, 0, 3, 0, 0}); err != nil || !reflect.DeepEqual(r, Reply{Header: map[string][]string{}, Body: []byte{}}) {
		t.Fatalf("the well-formed hand-made reply decoded to %#v, %v", r, err)
	}
	for _, b := range [][]byte{
		{replyFormat, 0, 8, 0, 0},                   // unknown flag
		{replyFormat, 0, 4, 0, 0},                   // a scenario flag without its scenario
		{replyFormat, 0, 4, 0, 0, 0},                // an empty scenario (not canonical)
		{replyFormat, 0, 0, 1, 1, 'k', 0, 0},        // a key without the header flag
		{replyFormat, 0, 0, 0, 1, 'b'},              // a body without the body flag
		{replyFormat, 0, 1, 0xff, 0xff, 0xff, 0x0f}, // a huge key count
	} {
		if r, err := unmarshal(b); err == nil {
			t.Errorf("%x decoded to %#v, want an error", b, r)
		}
	}
}

// TestDecodeReplyCopies: the decoded reply shares no memory with the
// input (bbolt only lends its bytes for the life of a transaction).
func TestDecodeReplyCopies(t *testing.T) {
	want := Reply{Status: 200, Header: map[string][]string{"K": {"v"}}, Body: []byte("body")}
	b := marshal(t, want)
	got, err := unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xaa
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after overwriting the input the reply is %#v, want %#v", got, want)
	}
}

// TestReplyFormatCoversReply fails when Reply gains a field, as a reminder
// that EncodeReply and DecodeReply must carry it too.
func TestReplyFormatCoversReply(t *testing.T) {
	if n := reflect.TypeFor[Reply]().NumField(); n != 4 {
		t.Errorf("Reply has %d fields; EncodeReply knows 4", n)
	}
}

func FuzzReplyRoundTrip(f *testing.F) {
	f.Add(200, "Signature", "a", "b", []byte("{}"), "gift_card")
	f.Add(-7, "", "\xff", "", []byte(nil), "")
	f.Fuzz(func(t *testing.T, status int, key, v1, v2 string, body []byte, scenario string) {
		r := Reply{Status: status, Header: map[string][]string{key: {v1, v2}, key + "2": {v2}}, Body: body, Scenario: scenario}
		got, err := unmarshal(marshal(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip gave %#v, want %#v", got, r)
		}
	})
}

// FuzzDecodeReply feeds arbitrary bytes: a damaged record must give an
// error, never a panic or a huge allocation, and whatever decodes must
// encode back to a form that decodes to the same reply.
func FuzzDecodeReply(f *testing.F) {
	for _, r := range []Reply{
		{Status: 200, Header: map[string][]string{"A": {"b"}}, Body: []byte("c")},
		{Status: 200, Header: map[string][]string{"K": {"v", ""}}, Body: []byte("b")},
		{},
	} {
		f.Add(marshal(f, r))
	}
	f.Add([]byte{0x02, 0x03, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := unmarshal(b)
		if err != nil {
			return
		}
		again, err := unmarshal(marshal(t, r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encode of %#v: %#v, %v", r, again, err)
		}
	})
}

func sampleOrder() Order {
	return Order{
		Scenario: "gift_card", Status: "TICKETED", ModifyTime: 1742977506708, OrderID: "o-1",
		// What encoding/json would rewrite: HTML characters, U+2028/9 and
		// whitespace between tokens.
		DistributeResult: []byte("[ {\"sceneCode\" : \"<a&b>\",\n \"extInfo\":{\"x\":\"\u2028\u2029\"}} ]"),
		RequestID:        "r-1",
		UpdatedAt:        time.Date(2025, 3, 26, 8, 25, 6, 708000001, time.UTC),
	}
}

func TestOrderRoundTrip(t *testing.T) {
	empty := sampleOrder()
	empty.DistributeResult = []byte{}
	absent := sampleOrder()
	absent.DistributeResult = nil
	old := sampleOrder()
	old.UpdatedAt = time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC)
	for name, o := range map[string]Order{
		"exact bytes":                 sampleOrder(),
		"zero":                        {},
		"empty distributeResult":      empty,
		"no distributeResult":         absent,
		"before 1970":                 old,
		"negative modifyTime, binary": {Status: "\x00\xff", ModifyTime: -1, RequestID: "\n"},
	} {
		b := EncodeOrder(o)
		if b[0] != orderFormat {
			t.Errorf("%s: encoding starts with %d, want the format version %d", name, b[0], orderFormat)
		}
		got, err := DecodeOrder(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(*got, o) {
			t.Errorf("%s: round trip gave %#v, want %#v", name, got, o)
		}
		if !bytes.Equal(got.DistributeResult, o.DistributeResult) || (got.DistributeResult == nil) != (o.DistributeResult == nil) {
			t.Errorf("%s: distributeResult %q, want %q", name, got.DistributeResult, o.DistributeResult)
		}
	}
}

// TestOrderKeepsInstant: an UpdatedAt in another zone comes back as the
// same instant in UTC.
func TestOrderKeepsInstant(t *testing.T) {
	o := sampleOrder()
	o.UpdatedAt = time.Date(2025, 3, 26, 16, 25, 6, 5, time.FixedZone("HKT", 8*3600))
	got, err := DecodeOrder(EncodeOrder(o))
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.Equal(o.UpdatedAt) || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt = %v, want %v in UTC", got.UpdatedAt, o.UpdatedAt)
	}
}

func TestOrderUnmarshalRejectsDamage(t *testing.T) {
	full := EncodeOrder(sampleOrder())
	for i := range len(full) {
		if _, err := DecodeOrder(full[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := DecodeOrder(append(full[:len(full):len(full)], 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := bytes.Clone(full)
	bad[0] = 9
	if _, err := DecodeOrder(bad); err == nil {
		t.Error("unknown version: no error")
	}
	// JSON, as earlier development versions stored orders, is refused.
	if _, err := DecodeOrder([]byte(`{"status":"A"}`)); err == nil {
		t.Error("a JSON order decoded")
	}
	// Nanoseconds out of range.
	hand := []byte{orderFormat, 0, 0, 0, 0, 0, 0, 0}
	hand = binary.AppendUvarint(hand, uint64(time.Second))
	if _, err := DecodeOrder(hand); err == nil {
		t.Error("a nanosecond count of a whole second decoded")
	}
}

func TestOrderUnmarshalCopies(t *testing.T) {
	want := sampleOrder()
	b := EncodeOrder(want)
	got, err := DecodeOrder(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xaa
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("after overwriting the input the order is %#v, want %#v", got, want)
	}
}

// TestOrderFormatCoversOrder fails when Order gains a field, as a reminder
// that EncodeOrder and DecodeOrder must carry it too.
func TestOrderFormatCoversOrder(t *testing.T) {
	if n := reflect.TypeFor[Order]().NumField(); n != 7 {
		t.Errorf("Order has %d fields; EncodeOrder knows 7", n)
	}
}

func TestSameVersion(t *testing.T) {
	a := sampleOrder()
	b := a
	b.UpdatedAt, b.OrderID, b.DistributeResult, b.Scenario = time.Time{}, "other", nil, "other"
	if !SameVersion(&a, &b) || !SameVersion(nil, nil) {
		t.Error("orders equal in status, modifyTime and requestId are not the same version")
	}
	for _, change := range []func(*Order){
		func(o *Order) { o.Status += "x" },
		func(o *Order) { o.ModifyTime++ },
		func(o *Order) { o.RequestID += "x" },
	} {
		c := a
		change(&c)
		if SameVersion(&a, &c) {
			t.Errorf("%+v and %+v are the same version", a, c)
		}
	}
	if SameVersion(&a, nil) || SameVersion(nil, &a) {
		t.Error("an order and no order are the same version")
	}
}

func FuzzOrderUnmarshal(f *testing.F) {
	f.Add(EncodeOrder(sampleOrder()))
	f.Add(EncodeOrder(Order{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOrder(b)
		if err != nil {
			return
		}
		o2, err := DecodeOrder(EncodeOrder(*o))
		if err != nil || !reflect.DeepEqual(o2, o) {
			t.Fatalf("re-encode of %#v: %#v, %v", o, o2, err)
		}
	})
}
