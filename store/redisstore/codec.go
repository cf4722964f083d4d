package redisstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"github.com/caddy-alipay/ordersync/store"
)

// Replies are stored in a small binary format rather than JSON because a
// replay must be byte-identical, and JSON would replace invalid UTF-8 in a
// header with U+FFFD. The format also keeps nil and empty apart, so a
// reply reads back exactly as it was written.
//
//	version(1) | varint status | flags (1 header non-nil, 2 body non-nil)
//	| uvarint nkeys | per key (sorted): str key, uvarint nvals+1 (0 = nil), str... | str body
//
// where str is a uvarint length followed by the bytes.
const replyVersion = 1

const (
	flagHeader = 1 << iota
	flagBody
)

func encodeReply(r store.Reply) []byte {
	size := 16 + len(r.Body)
	for k, vs := range r.Header {
		size += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, size)
	b = append(b, replyVersion)
	b = binary.AppendVarint(b, int64(r.Status))
	var flags byte
	if r.Header != nil {
		flags |= flagHeader
	}
	if r.Body != nil {
		flags |= flagBody
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		vs := r.Header[k]
		b = appendString(b, k)
		if vs == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(vs))+1)
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	return append(b, r.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorruptReply = errors.New("corrupt stored reply")

// replyReader decodes with bounds checks everywhere: the bytes come from
// the network and a damaged record must be an error, not a panic.
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

func decodeReply(b []byte) (store.Reply, error) {
	r := replyReader{b: b}
	if v := r.byte(); r.err == nil && v != replyVersion {
		return store.Reply{}, errCorruptReply
	}
	var out store.Reply
	out.Status = int(r.varint())
	flags := r.byte()
	nkeys := r.uvarint()
	// Each key takes at least two bytes, which caps a corrupt count
	// before it becomes a huge allocation.
	if r.err == nil && nkeys > uint64(len(r.b))/2 {
		return store.Reply{}, errCorruptReply
	}
	if flags&flagHeader != 0 {
		out.Header = make(map[string][]string, nkeys)
	} else if nkeys > 0 {
		return store.Reply{}, errCorruptReply
	}
	for i := uint64(0); i < nkeys && r.err == nil; i++ {
		k := string(r.bytes())
		n := r.uvarint()
		if r.err != nil {
			break
		}
		if n == 0 {
			out.Header[k] = nil
			continue
		}
		if n-1 > uint64(len(r.b)) {
			return store.Reply{}, errCorruptReply
		}
		vs := make([]string, 0, n-1)
		for j := uint64(1); j < n && r.err == nil; j++ {
			vs = append(vs, string(r.bytes()))
		}
		out.Header[k] = vs
	}
	body := r.bytes()
	if r.err != nil || len(r.b) != 0 {
		return store.Reply{}, errCorruptReply
	}
	if flags&flagBody != 0 {
		out.Body = append(make([]byte, 0, len(body)), body...)
	}
	return out, nil
}

// storedOrder is store.Order with DistributeResult as plain bytes:
// encoding/json compacts and HTML-escapes a json.RawMessage, and the
// upstream's array must come back exactly as it was accepted.
type storedOrder struct {
	store.Order
	DistributeResult []byte `json:"distributeResult"`
}

func encodeOrder(o store.Order) ([]byte, error) {
	return json.Marshal(storedOrder{Order: o, DistributeResult: o.DistributeResult})
}

func decodeOrder(b []byte) (store.Order, error) {
	var s storedOrder
	if err := json.Unmarshal(b, &s); err != nil {
		return store.Order{}, err
	}
	o := s.Order
	o.DistributeResult = s.DistributeResult
	return o, nil
}
