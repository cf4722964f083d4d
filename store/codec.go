package store

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"
)

// Records are stored in small binary formats rather than JSON, by every
// backend alike, because what is replayed must come back byte for byte:
// JSON would turn invalid UTF-8 in a header into U+FFFD, grow every body by
// a third in base64, and encoding/json rewrites a json.RawMessage (it
// compacts it and HTML-escapes & < > U+2028 U+2029), which would change the
// upstream's distributeResult on a re-sent status, which the caller must get
// unchanged (README, "Scenarios and their state machines").
//
// Every format starts with its version byte, so that it can change later
// without guessing, and is built from the same pieces:
//
//	str  = uvarint length, bytes
//	opt  = uvarint length+1 (0 = nil), bytes: keeps nil and empty apart
//	time = varint Unix seconds, uvarint nanoseconds: the instant, read back in UTC
//
// Decoders bound every length by the bytes left, so damaged or truncated
// data is an error, never a panic or an allocation larger than the data,
// and they copy everything out (bbolt only lends its bytes for the life of
// a transaction).

var errCorrupt = errors.New("corrupt stored record")

// A Reply is encoded as
//
//	version(1) | varint status | flags (1 header non-nil, 2 body non-nil, 4 scenario)
//	| uvarint nkeys | per key (sorted): str key, uvarint nvals+1 (0 = nil), str...
//	| str body [| str scenario, with flag 4]
//
// A reply without a scenario is encoded as before the scenario was kept
// (replies of egress, of earlier versions), so those bytes do not change.
const replyFormat = 1

const (
	replyFlagHeader = 1 << iota
	replyFlagBody
	replyFlagScenario

	replyFlagsKnown = replyFlagHeader | replyFlagBody | replyFlagScenario
)

// EncodeReply returns r's encoding.
func EncodeReply(r Reply) []byte {
	size := 1 + 3*binary.MaxVarintLen64 + 1 + len(r.Body) + len(r.Scenario)
	for k, vs := range r.Header {
		size += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, size)
	b = append(b, replyFormat)
	b = binary.AppendVarint(b, int64(r.Status))
	var flags byte
	if r.Header != nil {
		flags |= replyFlagHeader
	}
	if r.Body != nil {
		flags |= replyFlagBody
	}
	if r.Scenario != "" {
		flags |= replyFlagScenario
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		vs := r.Header[k]
		b = appendStr(b, k)
		if vs == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(vs))+1)
		for _, v := range vs {
			b = appendStr(b, v)
		}
	}
	b = appendStr(b, r.Body)
	if r.Scenario != "" {
		b = appendStr(b, r.Scenario)
	}
	return b
}

// DecodeReply decodes what EncodeReply made. Data of an unknown format
// version is an error.
func DecodeReply(data []byte) (*Reply, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != replyFormat {
		return nil, errCorrupt
	}
	var out Reply
	out.Status = int(d.varint())
	flags := d.byte()
	nkeys := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if flags&^replyFlagsKnown != 0 {
		return nil, errCorrupt
	}
	// Each key takes at least two bytes, which caps a corrupt count
	// before it becomes a huge allocation.
	if nkeys > uint64(len(d.b))/2 {
		return nil, errCorrupt
	}
	if flags&replyFlagHeader != 0 {
		out.Header = make(map[string][]string, nkeys)
	} else if nkeys > 0 {
		return nil, errCorrupt
	}
	for i := uint64(0); i < nkeys && d.err == nil; i++ {
		k := string(d.bytes())
		n := d.uvarint()
		if d.err != nil {
			break
		}
		if n == 0 {
			out.Header[k] = nil
			continue
		}
		// Each value takes at least one byte.
		if n-1 > uint64(len(d.b)) {
			return nil, errCorrupt
		}
		vs := make([]string, 0, n-1)
		for j := uint64(1); j < n && d.err == nil; j++ {
			vs = append(vs, string(d.bytes()))
		}
		out.Header[k] = vs
	}
	body := d.bytes()
	if flags&replyFlagScenario != 0 {
		// Present only when not empty: the encoding stays canonical.
		if out.Scenario = string(d.bytes()); out.Scenario == "" && d.err == nil {
			return nil, errCorrupt
		}
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if flags&replyFlagBody != 0 {
		out.Body = append(make([]byte, 0, len(body)), body...)
	} else if len(body) != 0 {
		return nil, errCorrupt
	}
	return &out, nil
}

// An Order is encoded as
//
//	version(1) | str scenario | str status | varint modifyTime | str orderId
//	| opt distributeResult | str requestId | time updatedAt
const orderFormat = 1

// EncodeOrder returns o's encoding.
func EncodeOrder(o Order) []byte {
	b := make([]byte, 0, 1+len(o.Scenario)+len(o.Status)+len(o.OrderID)+len(o.DistributeResult)+len(o.RequestID)+8*binary.MaxVarintLen64)
	b = append(b, orderFormat)
	b = appendStr(b, o.Scenario)
	b = appendStr(b, o.Status)
	b = binary.AppendVarint(b, o.ModifyTime)
	b = appendStr(b, o.OrderID)
	b = appendOpt(b, o.DistributeResult)
	b = appendStr(b, o.RequestID)
	return appendTime(b, o.UpdatedAt)
}

// DecodeOrder decodes what EncodeOrder made. Data of an unknown format
// version is an error.
func DecodeOrder(data []byte) (*Order, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != orderFormat {
		return nil, errCorrupt
	}
	var out Order
	out.Scenario = string(d.bytes())
	out.Status = string(d.bytes())
	out.ModifyTime = d.varint()
	out.OrderID = string(d.bytes())
	if dr, present := d.opt(); present {
		out.DistributeResult = append(make([]byte, 0, len(dr)), dr...)
	}
	out.RequestID = string(d.bytes())
	out.UpdatedAt = d.time()
	if err := d.end(); err != nil {
		return nil, err
	}
	return &out, nil
}

// SameVersion reports whether a and b (nil: no order) are the same accepted
// change of an order. Status, ModifyTime and RequestID identify a change;
// the other fields may differ after a round trip (UpdatedAt's location) and
// must not make CommitSuccess refuse.
func SameVersion(a, b *Order) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Status == b.Status && a.ModifyTime == b.ModifyTime && a.RequestID == b.RequestID
}

func appendStr[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendOpt(b []byte, s []byte) []byte {
	if s == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s))+1)
	return append(b, s...)
}

// decoder reads the pieces of a record with bounds checks everywhere: the
// first error sticks and turns every later read into a zero value, so
// callers check once, with end.
type decoder struct {
	b   []byte
	err error
}

// end reports the first error, or errCorrupt if bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a str. The result aliases the input.
func (d *decoder) bytes() []byte { return d.take(d.uvarint()) }

// time reads a time.
func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.err = errCorrupt
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// opt reads an opt; present is false for nil. The result aliases the input.
func (d *decoder) opt() (b []byte, present bool) {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil, false
	}
	return d.take(n - 1), d.err == nil
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}
