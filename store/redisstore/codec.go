package redisstore

import "github.com/caddy-alipay/ordersync/store"

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

// Orders are store.Order's binary encoding, in the order hash's "o" field,
// as in every backend.
func encodeOrder(o store.Order) []byte {
	b, _ := o.MarshalBinary()
	return b
}

func decodeOrder(b []byte) (store.Order, error) {
	var o store.Order
	err := o.UnmarshalBinary(b)
	return o, err
}
