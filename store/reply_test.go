package store

import (
	"bytes"
	"reflect"
	"testing"
)

func marshal(t testing.TB, r Reply) []byte {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(%#v): %v", r, err)
	}
	return b
}

func unmarshal(b []byte) (Reply, error) {
	var r Reply
	err := r.UnmarshalBinary(b)
	return r, err
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

func TestUnmarshalBinaryRejectsDamage(t *testing.T) {
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
		{replyFormat, 0, 4, 0, 0},                   // unknown flag
		{replyFormat, 0, 0, 1, 1, 'k', 0, 0},        // a key without the header flag
		{replyFormat, 0, 0, 0, 1, 'b'},              // a body without the body flag
		{replyFormat, 0, 1, 0xff, 0xff, 0xff, 0x0f}, // a huge key count
	} {
		if r, err := unmarshal(b); err == nil {
			t.Errorf("%x decoded to %#v, want an error", b, r)
		}
	}
}

// TestUnmarshalBinaryLeavesReplyOnError: a failed decode does not leave a
// half-filled reply behind.
func TestUnmarshalBinaryLeavesReplyOnError(t *testing.T) {
	want := Reply{Status: 201, Header: map[string][]string{"A": {"b"}}, Body: []byte("c")}
	r := want
	full := marshal(t, Reply{Status: 500, Header: map[string][]string{"K": {"v"}}, Body: []byte("body")})
	if err := r.UnmarshalBinary(full[:len(full)-1]); err == nil {
		t.Fatal("truncated reply: no error")
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("after a failed decode the reply is %#v, want it unchanged (%#v)", r, want)
	}
}

// TestUnmarshalBinaryCopies: the decoded reply shares no memory with the
// input (bbolt only lends its bytes for the life of a transaction).
func TestUnmarshalBinaryCopies(t *testing.T) {
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
// that MarshalBinary and UnmarshalBinary must carry it too.
func TestReplyFormatCoversReply(t *testing.T) {
	if n := reflect.TypeFor[Reply]().NumField(); n != 3 {
		t.Errorf("Reply has %d fields; MarshalBinary knows 3", n)
	}
}

func FuzzReplyRoundTrip(f *testing.F) {
	f.Add(200, "Signature", "a", "b", []byte("{}"))
	f.Add(-7, "", "\xff", "", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, key, v1, v2 string, body []byte) {
		r := Reply{Status: status, Header: map[string][]string{key: {v1, v2}, key + "2": {v2}}, Body: body}
		got, err := unmarshal(marshal(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip gave %#v, want %#v", got, r)
		}
	})
}

// FuzzUnmarshalBinary feeds arbitrary bytes: a damaged record must give an
// error, never a panic or a huge allocation, and whatever decodes must
// encode back to a form that decodes to the same reply.
func FuzzUnmarshalBinary(f *testing.F) {
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
