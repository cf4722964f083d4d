package store

import (
	"encoding"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
)

// A Reply is stored in a small binary format rather than JSON because a
// replay must be byte-identical, and JSON would turn invalid UTF-8 in a
// header into U+FFFD (and grow every body by a third in base64). The format
// keeps nil and empty apart, and a header's values in their order, so a
// reply reads back exactly as it was written:
//
//	version(1) | varint status | flags (1 header non-nil, 2 body non-nil)
//	| uvarint nkeys | per key (sorted): str key, uvarint nvals+1 (0 = nil), str...
//	| str body
//
// where str is a uvarint length followed by the bytes. Backends frame it
// with their own record layout; the leading version lets the format change
// later without guessing.
const replyFormat = 1

const (
	replyFlagHeader = 1 << iota
	replyFlagBody

	replyFlagsKnown = replyFlagHeader | replyFlagBody
)

var errCorruptReply = errors.New("corrupt stored reply")

// MarshalBinary implements encoding.BinaryMarshaler. It never fails.
func (r Reply) MarshalBinary() ([]byte, error) {
	size := 1 + 2*binary.MaxVarintLen64 + 1 + len(r.Body)
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
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		vs := r.Header[k]
		b = appendReplyString(b, k)
		if vs == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(vs))+1)
		for _, v := range vs {
			b = appendReplyString(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	return append(b, r.Body...), nil
}

func appendReplyString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler. It copies
// everything out of data (bbolt only lends its bytes for the life of a
// transaction). Damaged or truncated data, or data of an unknown format
// version, is an error, never a panic or an allocation larger than data;
// on error *r is left unchanged.
func (r *Reply) UnmarshalBinary(data []byte) error {
	d := replyReader{b: data}
	if v := d.byte(); d.err == nil && v != replyFormat {
		return errCorruptReply
	}
	var out Reply
	out.Status = int(d.varint())
	flags := d.byte()
	nkeys := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if flags&^replyFlagsKnown != 0 {
		return errCorruptReply
	}
	// Each key takes at least two bytes, which caps a corrupt count
	// before it becomes a huge allocation.
	if nkeys > uint64(len(d.b))/2 {
		return errCorruptReply
	}
	if flags&replyFlagHeader != 0 {
		out.Header = make(map[string][]string, nkeys)
	} else if nkeys > 0 {
		return errCorruptReply
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
			return errCorruptReply
		}
		vs := make([]string, 0, n-1)
		for j := uint64(1); j < n && d.err == nil; j++ {
			vs = append(vs, string(d.bytes()))
		}
		out.Header[k] = vs
	}
	body := d.bytes()
	if d.err != nil || len(d.b) != 0 {
		return errCorruptReply
	}
	if flags&replyFlagBody != 0 {
		out.Body = append(make([]byte, 0, len(body)), body...)
	} else if len(body) != 0 {
		return errCorruptReply
	}
	*r = out
	return nil
}

// replyReader decodes with bounds checks everywhere: the first error
// sticks and turns every later read into a zero value, so callers check
// once at the end.
type replyReader struct {
	b   []byte
	err error
}

func (r *replyReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorruptReply
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *replyReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorruptReply
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *replyReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorruptReply
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *replyReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errCorruptReply
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Interface guards.
var (
	_ encoding.BinaryMarshaler   = Reply{}
	_ encoding.BinaryUnmarshaler = (*Reply)(nil)
)
