package store

import (
	"context"
	"errors"
)

// ReplyReader is a backend that reads a stored reply for less than what
// deciding a request afresh costs: a local file, not a round trip to a
// server. Store.StoredReply uses it; a backend without it (Redis) has no
// lookup before the claim, and its replays are found by the claim, where
// a new request pays no extra round trip.
type ReplyReader interface {
	// StoredReply returns the final reply stored for key if its record is
	// live and was stored for a body that hashes to hash; nil, nil
	// otherwise (no record, a record of another body, a claim in flight).
	// It changes nothing.
	StoredReply(ctx context.Context, key RequestKey, hash BodyHash) (*Reply, error)
}

// StoredReply returns the final reply stored for key if it answered a body
// that hashes to hash, without claiming anything: nil, nil when there is
// none, and errors.ErrUnsupported when the backend cannot look it up
// cheaply (it is no ReplyReader). A request whose exact bytes were
// answered before gets that reply, and a Claim would have found the same
// (Done); any other request goes on to Claim, which decides it.
func (s *Store) StoredReply(ctx context.Context, key RequestKey, hash BodyHash) (*Reply, error) {
	rr, ok := s.b.(ReplyReader)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return rr.StoredReply(ctx, key, hash)
}
