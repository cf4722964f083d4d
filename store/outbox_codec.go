package store

import (
	"encoding/binary"
	"time"
)

// The outbox's records, encoded like the ingress ones (codec.go: a version
// byte, then str / opt pieces; decoders bound every length and copy
// everything out) and by every backend alike. Times are
//
//	time = varint Unix seconds | uvarint nanoseconds
//
// and come back in UTC; the zero time comes back as the zero time.

// An Entry is encoded as
//
//	version(1) | str clientId | str requestId | str merchantBizNo | str scenario
//	| str orderStatus | varint orderModifyTime | opt body | body hash(32)
//	| str state | uvarint attempts | time createdAt | time queuedAt
//	| time updatedAt | time nextAttemptAt | str lastError
//	| opt reply (the Reply encoding) | time expiresAt
//	| callback flags (1 pending) | str webhookId | uvarint callback attempts
//	| time callback nextAttemptAt | str callback lastError
const entryFormat = 1

const (
	callbackFlagPending = 1 << iota

	callbackFlagsKnown = callbackFlagPending
)

// EncodeEntry returns e's encoding.
func EncodeEntry(e *Entry) []byte {
	var reply []byte
	if e.Reply != nil {
		reply = EncodeReply(*e.Reply)
	}
	size := 1 + len(e.ClientID) + len(e.RequestID) + len(e.MerchantBizNo) + len(e.Scenario) + len(e.OrderStatus) +
		len(e.Body) + len(e.BodyHash) + len(e.State) + len(e.LastError) + len(reply) + len(e.Callback.WebhookID) +
		len(e.Callback.LastError) + 30*binary.MaxVarintLen64
	b := make([]byte, 0, size)
	b = append(b, entryFormat)
	b = appendStr(b, e.ClientID)
	b = appendStr(b, e.RequestID)
	b = appendStr(b, e.MerchantBizNo)
	b = appendStr(b, e.Scenario)
	b = appendStr(b, e.OrderStatus)
	b = binary.AppendVarint(b, e.OrderModifyTime)
	b = appendOpt(b, e.Body)
	b = append(b, e.BodyHash[:]...)
	b = appendStr(b, e.State)
	b = binary.AppendUvarint(b, uint64(max(e.Attempts, 0)))
	b = appendTime(b, e.CreatedAt)
	b = appendTime(b, e.QueuedAt)
	b = appendTime(b, e.UpdatedAt)
	b = appendTime(b, e.NextAttemptAt)
	b = appendStr(b, e.LastError)
	b = appendOpt(b, reply) // nil when there is no reply
	b = appendTime(b, e.ExpiresAt)
	var flags byte
	if e.Callback.Pending {
		flags |= callbackFlagPending
	}
	b = append(b, flags)
	b = appendStr(b, e.Callback.WebhookID)
	b = binary.AppendUvarint(b, uint64(max(e.Callback.Attempts, 0)))
	b = appendTime(b, e.Callback.NextAttemptAt)
	return appendStr(b, e.Callback.LastError)
}

// DecodeEntry decodes what EncodeEntry made. Data of an unknown format
// version is an error.
func DecodeEntry(data []byte) (*Entry, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != entryFormat {
		return nil, errCorrupt
	}
	var e Entry
	e.ClientID = string(d.bytes())
	e.RequestID = string(d.bytes())
	e.MerchantBizNo = string(d.bytes())
	e.Scenario = string(d.bytes())
	e.OrderStatus = string(d.bytes())
	e.OrderModifyTime = d.varint()
	if body, present := d.opt(); present {
		e.Body = append(make([]byte, 0, len(body)), body...)
	}
	copy(e.BodyHash[:], d.take(uint64(len(e.BodyHash))))
	e.State = EntryState(d.bytes())
	e.Attempts = d.count()
	e.CreatedAt = d.time()
	e.QueuedAt = d.time()
	e.UpdatedAt = d.time()
	e.NextAttemptAt = d.time()
	e.LastError = string(d.bytes())
	reply, hasReply := d.opt()
	e.ExpiresAt = d.time()
	flags := d.byte()
	e.Callback.Pending = flags&callbackFlagPending != 0
	e.Callback.WebhookID = string(d.bytes())
	e.Callback.Attempts = d.count()
	e.Callback.NextAttemptAt = d.time()
	e.Callback.LastError = string(d.bytes())
	if err := d.end(); err != nil {
		return nil, err
	}
	if flags&^callbackFlagsKnown != 0 || !e.State.Valid() {
		return nil, errCorrupt
	}
	if hasReply {
		r, err := DecodeReply(reply)
		if err != nil {
			return nil, err
		}
		e.Reply = r
	}
	return &e, nil
}

// LaneRecord is a lane as backends store it: what Lane shows, with the
// queued entries by requestId, plus HeadDue, the head entry's
// NextAttemptAt, which is the lane's place in the due index (so that the
// index entry can be found and moved without reading the head).
type LaneRecord struct {
	Version  uint64
	Accepted *Order
	Queue    []string // requestIds of the queued entries, head first
	HeadDue  time.Time
}

// Empty reports whether r holds nothing worth keeping: no accepted state
// and no queued entry. Backends delete such a record.
func (r *LaneRecord) Empty() bool { return r == nil || (r.Accepted == nil && len(r.Queue) == 0) }

// A LaneRecord is encoded as
//
//	version(1) | uvarint version | opt accepted (the Order encoding)
//	| uvarint n | str requestId × n | time headDue
const laneFormat = 1

// EncodeLaneRecord returns r's encoding.
func EncodeLaneRecord(r *LaneRecord) []byte {
	var accepted []byte
	if r.Accepted != nil {
		accepted = EncodeOrder(*r.Accepted)
	}
	size := 1 + 4*binary.MaxVarintLen64 + len(accepted)
	for _, id := range r.Queue {
		size += binary.MaxVarintLen64 + len(id)
	}
	b := make([]byte, 0, size)
	b = append(b, laneFormat)
	b = binary.AppendUvarint(b, r.Version)
	b = appendOpt(b, accepted)
	b = binary.AppendUvarint(b, uint64(len(r.Queue)))
	for _, id := range r.Queue {
		b = appendStr(b, id)
	}
	return appendTime(b, r.HeadDue)
}

// DecodeLaneRecord decodes what EncodeLaneRecord made.
func DecodeLaneRecord(data []byte) (*LaneRecord, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != laneFormat {
		return nil, errCorrupt
	}
	var r LaneRecord
	r.Version = d.uvarint()
	accepted, hasAccepted := d.opt()
	n := d.uvarint()
	// Each requestId takes at least one byte.
	if d.err == nil && n > uint64(len(d.b)) {
		return nil, errCorrupt
	}
	if n > 0 {
		r.Queue = make([]string, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.Queue = append(r.Queue, string(d.bytes()))
	}
	r.HeadDue = d.time()
	if err := d.end(); err != nil {
		return nil, err
	}
	if hasAccepted {
		o, err := DecodeOrder(accepted)
		if err != nil {
			return nil, err
		}
		r.Accepted = o
	}
	return &r, nil
}

// count reads a uvarint that must fit an int.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > 1<<31 {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}
