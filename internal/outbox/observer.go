package outbox

import (
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Observer receives what the runner does, for the glue's metrics and log
// lines (one line per attempt, per final state, per callback delivery, per
// operator action). Its methods are called from the runner's goroutines,
// concurrently, and must not block. Events carry ids, never a key or a
// body.
//
// Embed NopObserver to implement only some methods; methods added later
// then do nothing.
type Observer interface {
	// Attempt is called after every attempt to AlipayHK.
	Attempt(AttemptEvent)
	// Final is called when an entry reaches a final state, whoever ended
	// it (a reply, an expiry, an operator).
	Final(FinalEvent)
	// Callback is called after every callback delivery attempt.
	Callback(CallbackEvent)
	// Operator is called after every operator action that changed state.
	Operator(OperatorEvent)
	// Queue reports the client's queue at most about once per poll
	// interval, while the runner runs.
	Queue(clientID string, stats store.OutboxStats)
	// Trouble reports a runner failure that is not an attempt's outcome: a
	// store operation that failed, a lease lost mid-attempt. Op is one of
	// the Trouble* labels; Lane is zero when no lane is concerned. The
	// runner carries on: what failed is tried again at the next poll.
	Trouble(op string, lane store.LaneKey, err error)
}

// The labels Observer.Trouble reports, fixed for metrics: the store
// operation that failed, or TroubleLeaseLost.
const (
	TroubleDue            = "due"             // looking for due lanes
	TroubleStats          = "stats"           // reading the queue stats
	TroubleLease          = "lease"           // taking a lane's lease
	TroubleRenew          = "renew"           // renewing it
	TroubleRelease        = "release"         // releasing it
	TroubleLaneRead       = "lane"            // reading the leased lane
	TroubleRecordAttempt  = "record_attempt"  // recording a retryable attempt
	TroubleComplete       = "complete"        // writing a final state
	TroubleLeaseLost      = "lease_lost"      // the lease was lost while a worker held it
	TroubleClaimCallbacks = "claim_callbacks" // looking for due callbacks
	TroubleCallbackDone   = "callback_done"   // recording a delivered callback
	TroubleCallbackRetry  = "callback_retry"  // recording a failed one
)

// NopObserver does nothing; embed it to implement Observer partly.
type NopObserver struct{}

func (NopObserver) Attempt(AttemptEvent)            {}
func (NopObserver) Final(FinalEvent)                {}
func (NopObserver) Callback(CallbackEvent)          {}
func (NopObserver) Operator(OperatorEvent)          {}
func (NopObserver) Queue(string, store.OutboxStats) {}
func (NopObserver) Trouble(string, store.LaneKey, error) {
}

// Outcome is what one attempt came to: a fixed label, for metrics.
type Outcome string

// Attempt outcomes. Only OutcomeSucceeded and OutcomeFailed end the entry.
const (
	OutcomeSucceeded Outcome = "succeeded" // verified S
	OutcomeFailed    Outcome = "failed"    // verified F
	// The retryable ones.
	OutcomeUnknown      Outcome = "unknown"       // verified U (UNKNOWN_EXCEPTION, REQUEST_TRAFFIC_EXCEED_LIMIT...)
	OutcomeHTTPStatus   Outcome = "http_status"   // not HTTP 200 (5xx, 429, 4xx...)
	OutcomeTransport    Outcome = "transport"     // no reply: connection error, cut short, unreadable
	OutcomeTimeout      Outcome = "timeout"       // attempt_timeout passed
	OutcomeUnsigned     Outcome = "unsigned"      // no Signature or Response-Time header
	OutcomeBadSignature Outcome = "bad_signature" // the signature does not parse or verify, or another Client-Id
	OutcomeBadReply     Outcome = "bad_reply"     // verified, but not an envelope with resultStatus S, F or U
	// The attempt was cut off before it ended: the runner stopped or the
	// lease was lost. Nothing was recorded; the entry is attempted again.
	OutcomeAborted Outcome = "aborted"
)

// Final reports whether the outcome ends the entry.
func (o Outcome) Final() bool { return o == OutcomeSucceeded || o == OutcomeFailed }

// AttemptEvent is one attempt to AlipayHK.
type AttemptEvent struct {
	ClientID      string
	RequestID     string
	MerchantBizNo string
	Number        int // 1 for the entry's first attempt
	Outcome       Outcome
	// HTTPStatus is the reply's status, 0 without a reply.
	HTTPStatus int
	// ResultCode and ResultStatus are the verified envelope's, "" when it
	// did not verify.
	ResultCode   string
	ResultStatus string
	Latency      time.Duration
	// Error says why a retryable attempt did not end the entry (the
	// entry's lastError); "" for a final outcome.
	Error string
	// NextAttemptAt is when the entry is due again; zero for a final
	// outcome or an aborted attempt.
	NextAttemptAt time.Time
}

// Ender says who ended an entry.
type Ender string

// Who ends entries.
const (
	EndedByAlipayHK Ender = "alipayhk" // a verified S or F
	EndedByExpiry   Ender = "expiry"   // max_age passed
	EndedByOperator Ender = "operator" // drop
)

// FinalEvent is an entry that reached a final state.
type FinalEvent struct {
	ClientID      string
	RequestID     string
	MerchantBizNo string
	State         store.EntryState
	By            Ender
	Attempts      int
	// Age is the time from the entry's creation to its final state.
	Age       time.Duration
	LastError string
}

// CallbackEvent is one delivery attempt of a callback.
type CallbackEvent struct {
	ClientID  string
	RequestID string
	WebhookID string
	State     store.EntryState // the final state it reports
	Number    int              // 1 for the callback's first delivery
	Delivered bool             // the legacy system answered 2xx
	// HTTPStatus is the legacy system's status, 0 without an answer.
	HTTPStatus int
	Latency    time.Duration
	Error      string // why it was not delivered
	// NextAttemptAt is when it is tried again, zero once delivered.
	NextAttemptAt time.Time
}

// OperatorAction is what an operator did to an entry.
type OperatorAction string

// Operator actions.
const (
	// ActionRetry made a queued entry due now.
	ActionRetry OperatorAction = "retry"
	// ActionRequeue put a failed or expired entry back at its lane's tail.
	ActionRequeue OperatorAction = "requeue"
	// ActionDrop ended a queued entry as failed.
	ActionDrop OperatorAction = "drop"
)

// OperatorEvent is an operator action that changed an entry.
type OperatorEvent struct {
	ClientID      string
	RequestID     string
	MerchantBizNo string
	Action        OperatorAction
	From, To      store.EntryState
}
