package bboltstore

import (
	"encoding/binary"
	"errors"
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
// where rest is the claim token while in flight, and when done the reply
// as encoded by store.Reply.MarshalBinary (which carries its own version
// byte and keeps nil and empty apart, so a reply reads back exactly as it
// was written).
const (
	recordVersion = 1
	headLen       = 1 + 1 + len(store.BodyHash{}) + 8
)

// Record states. This package writes done records only (claims are kept
// in memory, see claimTable); in-flight records were written by earlier
// versions, are still parsed so that such a file opens, and never count.
const (
	stateInFlight = 1
	stateDone     = 2
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

// encodeClaim builds an in-flight record as earlier versions wrote them
// (tests use it to make such files).
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

// encodeReply is store.Reply.MarshalBinary, which never fails.
func encodeReply(r store.Reply) []byte {
	b, _ := r.MarshalBinary()
	return b
}

// decodeReply copies everything out of b, which bbolt only lends for the
// life of a transaction (UnmarshalBinary copies).
func decodeReply(b []byte) (*store.Reply, error) {
	var r store.Reply
	if err := r.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return &r, nil
}

// Orders are store.Order's binary encoding, shared with every backend, so
// that the upstream's distributeResult comes back byte for byte.
func encodeOrder(o store.Order) []byte {
	b, _ := o.MarshalBinary()
	return b
}

func decodeOrder(b []byte) (*store.Order, error) {
	var o store.Order
	if err := o.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return &o, nil
}
