package redisstore

import (
	"encoding/json"

	"github.com/caddy-alipay/ordersync/store"
)

// Replies are stored as store.Reply's binary encoding (MarshalBinary),
// in the request hash's "r" field.

// encodeReply is store.Reply.MarshalBinary, which never fails.
func encodeReply(r store.Reply) []byte {
	b, _ := r.MarshalBinary()
	return b
}

func decodeReply(b []byte) (store.Reply, error) {
	var r store.Reply
	err := r.UnmarshalBinary(b)
	return r, err
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
