package outbox

import (
	"context"
	"net/http"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// Response headers of every egress answer.
const (
	// HeaderDecidedBy says who decided the answer: DecidedByAlipayHK for
	// AlipayHK's verified final answer, DecidedByGateway for everything
	// else (refusals, 202, 503, lookups).
	HeaderDecidedBy = "Order-Push-Decided-By"
	// HeaderRequestID carries the requestId the answer is about, whenever
	// one is known (posted, derived, or the entry's).
	HeaderRequestID = "Order-Push-Request-Id"
)

// Values of HeaderDecidedBy.
const (
	DecidedByAlipayHK = "alipayhk"
	DecidedByGateway  = "gateway"
)

// SubmitRequest is the legacy system's POST as the glue read it.
type SubmitRequest struct {
	Method string
	Header http.Header
	// Body is the request body, read with a bound of MaxBodySize+1 bytes:
	// Submit refuses a body longer than MaxBodySize.
	Body []byte
	// BodyErr is the error reading the body ended with, if any (the
	// client went away, a malformed chunked encoding): Submit refuses the
	// request with PARAM_ILLEGAL.
	BodyErr error
}

// Response is an answer, ready to write: Status, Header, Body. The other
// fields are for the glue's log line and metrics.
type Response struct {
	Status int
	Header http.Header
	Body   []byte

	// RequestID and MerchantBizNo are the ids the answer is about, as far
	// as they are known (for a refused body: read from it when they are
	// short strings).
	RequestID     string
	MerchantBizNo string
	// Scenario is the matched scenario, "" before the match.
	Scenario string
	// Code is the result code of an envelope answer (a refusal, a 503,
	// AlipayHK's final answer); "" for 202, lookups and 404.
	Code orderflow.Code
	// Reason is a fixed label saying why this answer, for metrics.
	Reason Reason
}

// Reason is why Submit or Lookup answered as it did: a fixed label, for
// metrics and log lines.
type Reason string

// Reasons.
const (
	ReasonAlipayHK         Reason = "alipayhk"           // AlipayHK's final answer, within wait
	ReasonQueued           Reason = "queued"             // 202: not final within wait
	ReasonAsync            Reason = "async"              // 202: Prefer: respond-async
	ReasonEnded            Reason = "ended"              // 202: final without AlipayHK's answer (expired, dropped)
	ReasonMethod           Reason = "method"             // not POST
	ReasonMediaType        Reason = "media_type"         // not JSON
	ReasonBodySize         Reason = "body_size"          // over max_body_size, or unreadable
	ReasonJSON             Reason = "json"               // not a strict JSON object
	ReasonSchema           Reason = "schema"             // base or scenario schema, or a status not of the scenario
	ReasonNoScenario       Reason = "no_scenario"        // no enabled scenario matches
	ReasonRequestIDReused  Reason = "request_id_reused"  // the requestId's entry has another body
	ReasonTransition       Reason = "transition"         // the state machine refuses the status
	ReasonScenarioChanged  Reason = "scenario_changed"   // the order belongs to another scenario
	ReasonAlreadyCurrent   Reason = "already_current"    // the accepted status again: SUCCESS by the gateway
	ReasonStore            Reason = "store"              // the store failed before the entry was durable: 503
	ReasonLookup           Reason = "lookup"             // a lookup found the entry
	ReasonNotFound         Reason = "not_found"          // a lookup found nothing: 404
	ReasonMissingRequestID Reason = "missing_request_id" // a lookup without requestId: 404
)

// Service answers the legacy system for one configuration generation of
// an egress handler: Submit for a POST, Lookup for a GET. It is safe for
// concurrent use. Delivery is its Runner's, which outlives generations.
type Service struct {
	cfg    Config
	runner *Runner
}

// NewService returns the Service of cfg over r, the Runner of the same
// store and cfg.ClientID. Errors name the option.
func NewService(cfg Config, r *Runner) (*Service, error) {
	panic("not implemented yet")
}

// Submit answers one POST of an order (the package documentation lists
// the steps). It returns within the configured wait plus the time of a
// few store operations, which are bounded; sooner when ctx ends (the
// answer is then 202 if the entry is queued, and nobody reads it anyway).
func (s *Service) Submit(ctx context.Context, req SubmitRequest) Response {
	panic("not implemented yet")
}

// Lookup answers GET ?requestId=<id>: 200 with the entry, 404 with a small
// JSON body when there is none (or requestID is ""), 503 with the
// UNKNOWN_EXCEPTION envelope when the store fails.
func (s *Service) Lookup(ctx context.Context, requestID string) Response {
	panic("not implemented yet")
}
