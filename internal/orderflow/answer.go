package orderflow

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/store"
)

// ErrBodyTooLarge is the Request.BodyErr of a body larger than
// Config.MaxBodySize.
var ErrBodyTooLarge = errors.New("body larger than max_body_size")

// Request is one call as it arrived.
type Request struct {
	// Received is when the request arrived; the time bound counts from
	// it. Zero means when Serve is called.
	Received time.Time
	Method   string
	// Path is the path the caller sent and signed, before any rewrite in
	// the route.
	Path   string
	Header http.Header
	// Body is the whole body, unless BodyErr says why it is not:
	// ErrBodyTooLarge, or any other error when it could not be read.
	Body    []byte
	BodyErr error
}

// Answer is what a request is answered, and what the log line and the
// metrics say about it.
type Answer struct {
	// Reply is what the caller gets, Tracer-Id aside: status, headers
	// under their wire names (SetReplyHeader), body. A replay's is the
	// stored reply, byte for byte.
	Reply store.Reply
	// Code is the answer's result code (a replay's, read from its body).
	Code Code
	// Reason is the short machine label of why the answer is what it is.
	Reason string
	// Replay says Reply is a stored final answer.
	Replay bool

	// ClientID is the Client-Id header when it was given exactly once.
	ClientID string
	// KnownClient says ClientID is a configured client.
	KnownClient bool
	// Scenario is the matched scenario's name, "" before one matched.
	Scenario string
	// Request is the typed request once the body passed the base schema.
	Request *message.Request
	// RequestID and MerchantBizNo are read from a body that failed
	// validation (short strings only), so its log line can be found.
	RequestID, MerchantBizNo string
	// Previous is the order's status before this request ("" if none).
	Previous string
	// Forwarded says the upstream was called; Upstream is how long it
	// took and UpstreamErr what the next handler returned.
	Forwarded   bool
	Upstream    time.Duration
	UpstreamErr error
	// AuthFailure is the metrics label of why authentication refused.
	AuthFailure string
	// Rejection is the state machine rule that refused the change
	// ("transition", "scenario_changed").
	Rejection string
	// SignErr is why the reply could not be signed.
	SignErr error

	storeOps  [maxStoreOps]StoreOp
	nStoreOps int
}

// StoreOp is one state store operation of a request.
type StoreOp struct {
	Name string // lookup, claim, lock, get_order, commit, finish
	Took time.Duration
	Err  error
}

// maxStoreOps is the most store operations one request makes: lookup,
// claim, lock, get_order, then commit or finish.
const maxStoreOps = 5

// StoreOps are the request's store operations, in order.
func (a *Answer) StoreOps() []StoreOp { return a.storeOps[:a.nStoreOps] }

func (a *Answer) storeOp(name string, began time.Time, err error) {
	if a.nStoreOps < maxStoreOps {
		a.storeOps[a.nStoreOps] = StoreOp{Name: name, Took: time.Since(began), Err: err}
		a.nStoreOps++
	}
}
