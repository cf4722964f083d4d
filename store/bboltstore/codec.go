package bboltstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Keys are the Client-Id, a NUL and the other id. Client-Ids come from the
// configuration and may not contain NUL (checked on every call), so the
// first NUL always ends the Client-Id and no two pairs share a key, whatever
// the other id contains.
func joinKey(clientID, id string) ([]byte, error) {
	for i := range len(clientID) {
		if clientID[i] == 0 {
			return nil, errors.New("client id contains a NUL byte")
		}
	}
	k := make([]byte, 0, len(clientID)+1+len(id))
	k = append(k, clientID...)
	k = append(k, 0)
	return append(k, id...), nil
}

// A request record is binary rather than JSON because a replay must be
// byte-identical and JSON would turn invalid UTF-8 in a header into U+FFFD
// (and grow every body by a third in base64). Layout:
//
//	version(1) | state(1) | body hash(32) | expires, Unix ns, big endian(8) | rest
//
// where rest is the claim token while in flight, and the reply when done:
//
//	varint status | flags (1 header non-nil, 2 body non-nil)
//	| uvarint nkeys | per key (sorted): str key, uvarint nvals+1 (0 = nil), str...
//	| str body
//
// and str is a uvarint length followed by the bytes. nil and empty are kept
// apart so that a reply reads back exactly as it was written.
const (
	recordVersion = 1
	headLen       = 1 + 1 + len(store.BodyHash{}) + 8
)

// Record states.
const (
	stateInFlight = 1
	stateDone     = 2
)

const (
	flagHeader = 1 << iota
	flagBody
)

var errCorrupt = errors.New("corrupt request record")

// recordHead is the fixed-size part of a request record.
type recordHead struct {
	state   byte
	hash    store.BodyHash
	expires int64 // Unix nanoseconds
	rest    []byte
}

func parseHead(v []byte) (recordHead, error) {
	if len(v) < headLen || v[0] != recordVersion || (v[1] != stateInFlight && v[1] != stateDone) {
		return recordHead{}, errCorrupt
	}
	var h recordHead
	h.state = v[1]
	copy(h.hash[:], v[2:])
	h.expires = int64(binary.BigEndian.Uint64(v[2+len(h.hash):]))
	h.rest = v[headLen:]
	return h, nil
}

func (h recordHead) expired(now time.Time) bool { return now.UnixNano() >= h.expires }

func appendHead(b []byte, state byte, hash store.BodyHash, expires time.Time) []byte {
	b = append(b, recordVersion, state)
	b = append(b, hash[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(expires.UnixNano()))
}

func encodeClaim(hash store.BodyHash, expires time.Time, token string) []byte {
	b := make([]byte, 0, headLen+len(token))
	return append(appendHead(b, stateInFlight, hash, expires), token...)
}

// encodeDone builds a done record around a reply already encoded by
// encodeReply, so that the (possibly large) encoding happens outside the
// write transaction.
func encodeDone(hash store.BodyHash, expires time.Time, reply []byte) []byte {
	b := make([]byte, 0, headLen+len(reply))
	return append(appendHead(b, stateDone, hash, expires), reply...)
}

func encodeReply(r store.Reply) []byte {
	size := 2*binary.MaxVarintLen64 + 1 + len(r.Body)
	for k, vs := range r.Header {
		size += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			size += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, size)
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
	return appendString(b, string(r.Body))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeReply copies everything out of b, which bbolt only lends for the
// life of a transaction.
func decodeReply(b []byte) (*store.Reply, error) {
	d := decoder{b: b}
	var r store.Reply
	r.Status = int(d.varint())
	flags := d.readByte()
	n := d.count()
	if flags&flagHeader != 0 {
		r.Header = make(map[string][]string, n)
	}
	for range n {
		k := d.readString()
		nv := d.count()
		if d.err != nil {
			break
		}
		var vs []string
		if nv > 0 {
			vs = make([]string, nv-1)
			for i := range vs {
				vs[i] = d.readString()
			}
		}
		if r.Header != nil {
			r.Header[k] = vs
		}
	}
	body := d.readBytes()
	if flags&flagBody != 0 {
		r.Body = append([]byte{}, body...)
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return &r, nil
}

// decoder reads the reply encoding; the first error sticks and turns every
// later read into a zero value, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must be plausible for the bytes left: every
// counted item takes at least one byte, so a corrupt count cannot make us
// allocate more than the record's size.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b))+1 {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) readByte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) readBytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) readString() string { return string(d.readBytes()) }

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

// Orders are JSON: they are small, written once per accepted change, and
// JSON keeps fields added to store.Order later without a format change.
// (Compacting DistributeResult on the way in changes no JSON value.)
func encodeOrder(o store.Order) ([]byte, error) { return json.Marshal(o) }

func decodeOrder(b []byte) (*store.Order, error) {
	var o store.Order
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// orderVersion is what CommitSuccess compares: the fields that identify
// one accepted change of an order.
type orderVersion struct {
	Status     string `json:"status"`
	ModifyTime int64  `json:"modifyTime"`
	RequestID  string `json:"requestId"`
}

// sameVersion reports whether the stored order (nil if none) is the one
// prev describes (nil: there must be none).
func sameVersion(stored []byte, prev *store.Order) (bool, error) {
	if stored == nil || prev == nil {
		return stored == nil && prev == nil, nil
	}
	var v orderVersion
	if err := json.Unmarshal(stored, &v); err != nil {
		return false, err
	}
	return v.Status == prev.Status && v.ModifyTime == prev.ModifyTime && v.RequestID == prev.RequestID, nil
}
