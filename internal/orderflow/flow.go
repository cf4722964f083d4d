package orderflow

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/schema"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// answerReserve is kept free at the end of the time bound for what comes
// after the last wait: releasing the claim (store.DefaultReleaseWait),
// building and signing the U, writing it.
const answerReserve = 100 * time.Millisecond

// Config is what a Flow is made of. The glue builds it at provision, with
// everything resolved: keys read and parsed, placeholders replaced, the
// catalog built, the store loaded.
type Config struct {
	// Clients are the callers let in, by Client-Id.
	Clients map[string]*Client
	// InsecureSkipVerify lets any Client-Id in without a signature.
	InsecureSkipVerify bool
	// TimeWindow bounds how far Request-Time may be from now; 0 turns the
	// check off.
	TimeWindow time.Duration
	// Signer signs the replies; nil leaves them unsigned.
	Signer *Signer
	// Scenarios are the enabled scenarios.
	Scenarios *scenario.Catalog
	// Store keeps orders and replay records.
	Store *store.Store
	// StatusMap overrides the mapping of upstream statuses (map_status).
	StatusMap StatusMap
	// MaxBodySize is the largest body accepted, for the message of a body
	// that was larger (the glue reads the body and enforces it).
	MaxBodySize int64
	// UpstreamTimeout bounds everything from the claim to the upstream's
	// answer.
	UpstreamTimeout time.Duration
	// ClaimLease is how long a claim and an order lock hold.
	ClaimLease time.Duration
	// IdempotencyTTL is how long final answers are kept for replay.
	IdempotencyTTL time.Duration
	// Offline answers every request UN_SUPPORT_BUSINESS.
	Offline bool
}

// Client is one configured caller.
type Client struct {
	// Keys are its public keys by key version, prepared for verification.
	Keys map[string]*signature.PublicKey
	// Merchants, when not nil, are the merchantIds it may sync.
	Merchants map[string]struct{}
}

// Flow is the order-sync pipeline of one configured handler. It is
// immutable and safe for concurrent use.
type Flow struct {
	cfg        Config
	baseSchema *schema.Schema
	// tooLarge is the message of a body over MaxBodySize, made once.
	tooLarge string
}

// New returns the Flow of cfg.
func New(cfg Config) (*Flow, error) {
	if cfg.Scenarios == nil || cfg.Store == nil {
		return nil, errors.New("orderflow: a Flow needs a scenario catalog and a store")
	}
	base, err := schema.Base()
	if err != nil {
		return nil, errors.New("compiling the built-in schemas: " + err.Error())
	}
	return &Flow{
		cfg:        cfg,
		baseSchema: base,
		tooLarge:   "body: larger than " + strconv.FormatInt(cfg.MaxBodySize, 10) + " bytes (max_body_size)",
	}, nil
}

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
	Name string // claim, lock, get_order, commit, finish
	Took time.Duration
	Err  error
}

// maxStoreOps is the most store operations one request makes: claim, lock,
// get_order, then commit or finish.
const maxStoreOps = 4

// StoreOps are the request's store operations, in order.
func (a *Answer) StoreOps() []StoreOp { return a.storeOps[:a.nStoreOps] }

func (a *Answer) storeOp(name string, began time.Time, err error) {
	if a.nStoreOps < maxStoreOps {
		a.storeOps[a.nStoreOps] = StoreOp{Name: name, Took: time.Since(began), Err: err}
		a.nStoreOps++
	}
}

// Serve answers one request: the pipeline of the README ("What the caller
// gets"), step by step. Every answer is an envelope; only a SUCCESS whose
// new order state is durable says S.
func (f *Flow) Serve(ctx context.Context, req *Request, fw Forwarder) Answer {
	if req.Received.IsZero() {
		req.Received = time.Now()
	}
	a := Answer{}
	ids := req.Header.Values(signature.HeaderClientID)
	if len(ids) == 1 {
		// A repeated Client-Id is ambiguous: it is neither echoed nor used
		// (authenticate refuses it).
		a.ClientID = ids[0]
	}
	client, known := f.cfg.Clients[a.ClientID]
	a.KnownClient = known

	// 1. Guards: maintenance, method, media type.
	if f.cfg.Offline {
		return f.refuse(&a, req, refusal{UnSupportBusiness, "offline", "service: the order sync API is offline for maintenance"})
	}
	if req.Method != http.MethodPost {
		return f.refuse(&a, req, refusal{MethodNotSupported, "method", "method: only POST is supported"})
	}
	if !JSONContentType(req.Header.Values("Content-Type")) {
		return f.refuse(&a, req, refusal{MediaTypeNotAcceptable, "media_type", "Content-Type: must be application/json"})
	}

	// 2. The body, read once and bounded by the glue.
	if req.BodyErr != nil {
		msg := "body: could not be read"
		if errors.Is(req.BodyErr, ErrBodyTooLarge) {
			msg = f.tooLarge
		}
		return f.refuse(&a, req, refusal{ParamIllegal, "body_size", msg})
	}

	// 3. Authenticate: Client-Id, key version, signature, Request-Time.
	if no := f.authenticate(&a, req, client, len(ids)); no != nil {
		return f.refuse(&a, req, *no)
	}

	// 4. Decode once, validate, match the scenario.
	r, sc, no := f.validate(&a, req, client)
	if no != nil {
		return f.refuse(&a, req, *no)
	}

	// 5. Replay check: claim (Client-Id, requestId) for this body. Only a
	// held claim lets this request answer anything that is stored.
	//
	// The time bound (README, "Configuration": upstream_timeout): every
	// wait from here to the upstream's answer ends with ctx; the final
	// store write ends by answerBy, whatever the store does, or the
	// answer is U; the caller has the answer by upstream_timeout +
	// TimeBoundGrace.
	answerBy := req.Received.Add(f.cfg.UpstreamTimeout + TimeBoundGrace - answerReserve)
	ctx, cancel := context.WithTimeout(ctx, f.cfg.UpstreamTimeout)
	defer cancel()
	began := time.Now()
	claim, err := f.cfg.Store.Claim(ctx, store.RequestKey{ClientID: a.ClientID, RequestID: r.RequestID}, store.HashBody(req.Body), f.cfg.ClaimLease)
	a.storeOp("claim", began, err)
	if err != nil {
		return f.storeDown(&a, req, err)
	}
	switch claim.Status {
	case store.Done:
		a.Replay, a.Reason = true, "replay"
		a.Reply, a.Code = *claim.Reply, CodeOf(claim.Reply.Body)
		return a
	case store.InFlight:
		// Whatever its body: only a stored answer makes a body final
		// (README, "What the caller gets"); the request in flight may
		// still end U.
		return f.refuse(&a, req, refusal{UnknownException, "in_flight", "requestId: a request with this requestId is still being processed; retry later"})
	case store.Mismatch:
		return f.refuse(&a, req, refusal{ParamIllegal, "request_id_reused", "requestId: already used with a different body"})
	}
	// Every way out below either stores the answer (Finish, Commit) or
	// gives the requestId up, so that a retry is processed afresh; and
	// the order's lock goes with the claim.
	defer claim.Release()

	// 6. Lock the order (the claim holds the lock until the answer is
	// stored, or given up), read it, check the transition.
	okey := store.OrderKey{ClientID: a.ClientID, MerchantBizNo: r.MerchantBizNo}
	began = time.Now()
	err = claim.LockOrder(ctx, okey, f.cfg.ClaimLease)
	a.storeOp("lock", began, err)
	if err != nil {
		return f.storeDown(&a, req, err)
	}
	began = time.Now()
	prev, err := f.cfg.Store.GetOrder(ctx, okey)
	a.storeOp("get_order", began, err)
	if err != nil {
		return f.storeDown(&a, req, err)
	}
	var current *statemachine.State
	if prev != nil {
		a.Previous = prev.Status
		if prev.Scenario != sc.Name() {
			a.Rejection = "scenario_changed"
			return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: OrderStatusInvalid, Message: "merchantBizNo: order belongs to scenario " + prev.Scenario}, "scenario_changed")
		}
		current = &statemachine.State{Status: prev.Status, ModifyTime: prev.ModifyTime}
	}
	decision := sc.Machine().Decide(current, r.OrderStatus, r.ModifyTimeMillis())
	switch decision.Verdict {
	case statemachine.Reject:
		a.Rejection = "transition"
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: OrderStatusInvalid, Message: decision.Reason}, "transition")
	case statemachine.AlreadyCurrent:
		// Not a transition: the stored SUCCESS again, newly signed, and
		// the upstream is not called (no second gift card).
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: Success, Message: "success", OrderID: prev.OrderID,
			OrderStatus: r.OrderStatus, DistributeResult: prev.DistributeResult}, "already_current")
	}

	// 7. Forward the normalized body.
	up := fw.Forward(ctx, Upstream{
		Body:     r.Normalize(a.ClientID, sc.Name(), a.Previous),
		Header:   upstreamHeader(req.Header, a.ClientID, r.RequestID, sc.Name()),
		GiveUpAt: answerBy,
	})
	a.Forwarded, a.Upstream, a.UpstreamErr = true, up.Duration, up.Err

	// 8. Map the reply: U gives the requestId up (deferred Release), F is
	// stored, S commits the new order state with its reply.
	o, reason := MapReply(up, r.OrderStatus, f.cfg.StatusMap)
	switch o.Code.Status() {
	case StatusUnknown:
		return f.refuse(&a, req, refusal{o.Code, reason, o.Message})
	case StatusFailure:
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: o.Code, Message: o.Message}, reason)
	}
	next := store.Order{
		Scenario:         sc.Name(),
		Status:           r.OrderStatus,
		ModifyTime:       r.ModifyTimeMillis(),
		OrderID:          o.OrderID,
		DistributeResult: o.DistributeResult,
		RequestID:        r.RequestID,
		UpdatedAt:        time.Now().UTC(),
	}
	if next.ModifyTime == 0 && prev != nil {
		next.ModifyTime = prev.ModifyTime
	}
	// 9. The reply, once the change is durable.
	return f.commit(ctx, answerBy, &a, req, claim, store.OrderChange{Key: okey, Prev: prev, Next: next}, o, reason)
}

// refuse answers without storing anything: before the claim (a corrected
// retry under the same requestId is processed), or U after it (the
// deferred Release gives the requestId up).
func (f *Flow) refuse(a *Answer, req *Request, no refusal) Answer {
	a.Code, a.Reason = no.code, no.reason
	a.Reply, a.SignErr = f.cfg.Signer.reply(req.Method, req.Path, a.ClientID, Outcome{Code: no.code, Message: no.msg})
	return *a
}

// refusal is an answer that is not stored: its code, the reason label and
// the resultMessage.
type refusal struct {
	code   Code
	reason string
	msg    string
}

// finish answers a final F (or the stored SUCCESS of a re-sent status) and
// stores it for replay by answerBy. Unstored, a final answer could differ
// on retry, so a store failure answers U instead.
func (f *Flow) finish(ctx context.Context, answerBy time.Time, a *Answer, req *Request, claim *store.Claim, o Outcome, reason string) Answer {
	a.Code, a.Reason = o.Code, reason
	a.Reply, a.SignErr = f.cfg.Signer.reply(req.Method, req.Path, a.ClientID, o)
	// A caller gone meanwhile does not stop the write.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), answerBy)
	defer cancel()
	began := time.Now()
	err := claim.Finish(ctx, a.Reply, f.cfg.IdempotencyTTL)
	a.storeOp("finish", began, err)
	if err != nil {
		return f.storeDown(a, req, err)
	}
	return *a
}

// commit makes the order change and its SUCCESS reply durable in one
// write by answerBy, and only then answers S. A write that cannot end by
// then answers U; if it lands later (the store goes on in the
// background, with the order still locked), a retry is its replay.
func (f *Flow) commit(ctx context.Context, answerBy time.Time, a *Answer, req *Request, claim *store.Claim, change store.OrderChange, o Outcome, reason string) Answer {
	a.Code, a.Reason = o.Code, reason
	a.Reply, a.SignErr = f.cfg.Signer.reply(req.Method, req.Path, a.ClientID, o)
	// Not the request's context: the upstream already issued, so a caller
	// gone meanwhile must not turn a success into U.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), answerBy)
	defer cancel()
	began := time.Now()
	err := claim.Commit(ctx, change, a.Reply, f.cfg.IdempotencyTTL)
	a.storeOp("commit", began, err)
	if err != nil {
		return f.storeDown(a, req, err)
	}
	return *a
}

// storeDown answers U when the state store fails: never S without durable
// state. The failed operation is the last of Answer.StoreOps.
func (f *Flow) storeDown(a *Answer, req *Request, err error) Answer {
	switch {
	case errors.Is(err, store.ErrLockTimeout):
		return f.refuse(a, req, refusal{UnknownException, "order_busy", "merchantBizNo: the order is busy with another request; retry later"})
	case errors.Is(err, store.ErrConflict):
		return f.refuse(a, req, refusal{UnknownException, "conflict", "merchantBizNo: the order changed concurrently; retry later"})
	case errors.Is(err, context.DeadlineExceeded):
		return f.refuse(a, req, refusal{UnknownException, "store_timeout", "service: state store did not answer in time; retry later"})
	}
	return f.refuse(a, req, refusal{UnknownException, "store_error", "service: state store unavailable; retry later"})
}
