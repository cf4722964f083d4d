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

// The requests bucket holds only done records (claims are kept in memory,
// see claimTable):
//
//	body hash(32) | expires, Unix ns, big endian(8) | reply
//
// where reply is store.EncodeReply's, as in every backend. The file's
// format version (meta bucket) covers this layout; the reply carries its
// own.
const headLen = len(store.BodyHash{}) + 8

var errCorrupt = errors.New("corrupt request record")

// record is a done record as read from the file. reply aliases the file's
// bytes: decode it within the transaction.
type record struct {
	hash    store.BodyHash
	expires int64 // Unix nanoseconds
	reply   []byte
}

func parseRecord(v []byte) (record, error) {
	if len(v) < headLen {
		return record{}, errCorrupt
	}
	var r record
	copy(r.hash[:], v)
	r.expires = int64(binary.BigEndian.Uint64(v[len(r.hash):]))
	r.reply = v[headLen:]
	return r, nil
}

// live reports whether the record still counts: until its TTL ends.
func (r record) live(now time.Time) bool { return now.UnixNano() < r.expires }

// encodeRecord builds a done record around a reply already encoded, so
// that the (possibly large) encoding happens outside the write
// transaction.
func encodeRecord(hash store.BodyHash, expires time.Time, reply []byte) []byte {
	b := make([]byte, 0, headLen+len(reply))
	b = append(b, hash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(expires.UnixNano()))
	return append(b, reply...)
}
