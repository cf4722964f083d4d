package outbox

import (
	"context"
	"net/http"
)

// Sender sends one attempt to AlipayHK. The glue implements it over the
// reverse_proxy that follows the egress handler in its route; tests use a
// fake.
//
// Send must honour ctx (the attempt_timeout): return when it ends. It
// returns the reply as received, or an error when there is none: the
// connection failed, ctx ended, or the body was cut short, could not be
// read, or is longer than the Sender reads (an order-sync reply is a small
// envelope; a reply must never be judged on part of its body). Every error counts as a retryable attempt; its text
// goes into the entry's lastError and the attempt's log line, so it must not
// contain the body or any key.
type Sender interface {
	Send(ctx context.Context, a Attempt) (Reply, error)
}

// Attempt is one HTTP attempt: POST Path with Header and Body.
type Attempt struct {
	// Path is the request path (the path option): the sender sets it on
	// the request, with no query string.
	Path string
	// Header holds Content-Type, Client-Id, Request-Time, Key-Version and
	// Signature, as the official Go SDK sends them. The sender adds what
	// the transport needs (Host, Content-Length) and nothing that changes
	// these.
	Header http.Header
	// Body is the entry's body, the same bytes on every attempt. The
	// sender must not modify it.
	Body []byte

	// For the sender's logs: whose attempt this is.
	ClientID      string
	RequestID     string
	MerchantBizNo string
	Number        int // 1 for the first attempt of the entry
}

// Reply is AlipayHK's answer to an attempt, as received.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}
