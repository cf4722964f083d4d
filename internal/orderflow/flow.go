package orderflow

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// answerReserve is kept free at the end of the time bound for what comes
// after the last wait: releasing the claim (store.DefaultReleaseWait),
// building and signing the U, writing it.
const answerReserve = 100 * time.Millisecond

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
		return f.refuse(&a, req, Refusal{UnSupportBusiness, "offline", "service: the order sync API is offline for maintenance"})
	}
	if req.Method != http.MethodPost {
		return f.refuse(&a, req, Refusal{MethodNotSupported, ReasonMethod, "method: only POST is supported"})
	}
	if !JSONContentType(req.Header.Values("Content-Type")) {
		return f.refuse(&a, req, Refusal{MediaTypeNotAcceptable, ReasonMediaType, "Content-Type: must be application/json"})
	}

	// 2. The body, read once and bounded by the glue.
	if req.BodyErr != nil {
		msg := "body: could not be read"
		if errors.Is(req.BodyErr, ErrBodyTooLarge) {
			msg = f.tooLarge
		}
		return f.refuse(&a, req, Refusal{ParamIllegal, ReasonBodySize, msg})
	}

	// 3. Authenticate: Client-Id, key version, signature, Request-Time.
	if no := f.authenticate(&a, req, client, len(ids)); no != nil {
		return f.refuse(&a, req, *no)
	}

	// 3b. The same bytes answered before: their stored reply, now.
	hash := store.HashBody(req.Body)
	if f.replayed(ctx, &a, req, hash) {
		return a
	}

	// 4. Decode once, validate, match the scenario.
	r, sc, no := f.validate(&a, req, client)
	if no != nil {
		return f.refuse(&a, req, *no)
	}

	// 5. Replay check: claim (Client-Id, requestId) for this body. Only a
	// held claim lets this request answer anything that is stored. A
	// claimed request also has its order locked (the claim holds the lock
	// until the answer is stored, or given up) and read (step 6), in the
	// same call: on Redis one round trip instead of three.
	//
	// The time bound (README, "Configuration": upstream_timeout): every
	// wait from here to the upstream's answer ends with ctx; the final
	// store write ends by answerBy, whatever the store does, or the
	// answer is U; the caller has the answer by upstream_timeout +
	// TimeBoundGrace.
	answerBy := req.Received.Add(f.cfg.UpstreamTimeout + TimeBoundGrace - answerReserve)
	ctx, cancel := context.WithTimeout(ctx, f.cfg.UpstreamTimeout)
	defer cancel()
	okey := store.OrderKey{ClientID: a.ClientID, MerchantBizNo: r.MerchantBizNo}
	claim, err := f.cfg.Store.ClaimOrderSteps(ctx, store.RequestKey{ClientID: a.ClientID, RequestID: r.RequestID}, hash, okey, f.cfg.ClaimLease, a.storeOp)
	if err != nil {
		return f.storeDown(&a, req, err)
	}
	switch claim.Status {
	case store.Done:
		a.Replay, a.Reason = true, "replay"
		a.Reply, a.Code = *claim.Reply, storedCode(claim.Reply.Body)
		return a
	case store.InFlight:
		// Whatever its body: only a stored answer makes a body final
		// (README, "What the caller gets"); the request in flight may
		// still end U.
		return f.refuse(&a, req, Refusal{UnknownException, "in_flight", "requestId: a request with this requestId is still being processed; retry later"})
	case store.Mismatch:
		return f.refuse(&a, req, Refusal{ParamIllegal, ReasonRequestIDReused, "requestId: already used with a different body"})
	}
	// Every way out below either stores the answer (Finish, Commit) or
	// gives the requestId up, so that a retry is processed afresh; and
	// the order's lock goes with the claim.
	defer claim.Release()

	// 6. The order, locked and read by the claim: check the transition.
	prev := claim.Order
	var current *statemachine.State
	if prev != nil {
		a.Previous = prev.Status
		if prev.Scenario != sc.Name() {
			a.Rejection = ReasonScenarioChanged
			return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: OrderStatusInvalid, Message: "merchantBizNo: order belongs to scenario " + prev.Scenario}, ReasonScenarioChanged)
		}
		current = OrderState(prev)
	}
	decision := sc.Machine().Decide(current, r.OrderStatus, r.ModifyTimeMillis())
	switch decision.Verdict {
	case statemachine.Reject:
		a.Rejection = ReasonTransition
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: OrderStatusInvalid, Message: decision.Reason}, ReasonTransition)
	case statemachine.AlreadyCurrent:
		// Not a transition: the stored SUCCESS again, newly signed, and
		// the upstream is not called (no second gift card).
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: Success, Message: "success", OrderID: prev.OrderID,
			OrderStatus: r.OrderStatus, DistributeResult: prev.DistributeResult}, ReasonAlreadyCurrent)
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
		return f.refuse(&a, req, Refusal{o.Code, reason, o.Message})
	case StatusFailure:
		return f.finish(ctx, answerBy, &a, req, claim, Outcome{Code: o.Code, Message: o.Message}, reason)
	}
	next := store.Order{
		Scenario:         sc.Name(),
		Status:           r.OrderStatus,
		ModifyTime:       statemachine.Applied(OrderState(prev), r.OrderStatus, r.ModifyTimeMillis()).ModifyTime,
		OrderID:          o.OrderID,
		DistributeResult: o.DistributeResult,
		RequestID:        r.RequestID,
		UpdatedAt:        time.Now().UTC(),
	}
	// 9. The reply, once the change is durable.
	return f.commit(ctx, answerBy, &a, req, claim, store.OrderChange{Key: okey, Prev: prev, Next: next}, o, reason)
}

// OrderState is the state machine's view of a stored order (nil: none).
func OrderState(o *store.Order) *statemachine.State {
	if o == nil {
		return nil
	}
	return &statemachine.State{Status: o.Status, ModifyTime: o.ModifyTime}
}

// replayed answers a request whose exact bytes were answered before with
// the stored reply, straight after authentication: no decode, no
// validation, no claim (step 3b). It reports whether it answered; if not,
// the request goes through every step as if it had not been called.
//
// Why the answer is the one the later steps would give (the README's
// pipeline, where the replay check comes after validation):
//
//   - Only an authenticated request gets here: a stored reply still never
//     goes to a request whose signature does not verify, nor past any
//     refusal of steps 1-3. An Encrypt header, refused first by step 4, is
//     left to it.
//   - The lookup is by (Client-Id, requestId) and the body's hash, and
//     finds only a live final answer stored for these very bytes (not a
//     claim in flight, not another body: those are step 5's to answer).
//     The requestId is read without decoding (message.PeekString), but a
//     wrong read can only miss: a record under (Client-Id, X) holding this
//     body's hash was stored for these bytes, whose requestId is X, which
//     is the key step 5 would claim.
//   - A reply is stored only after the claim, so only for bytes that
//     passed step 4 for this client. Step 4 depends on nothing but the
//     bytes and the configuration: with the same configuration they pass
//     again, step 5 finds the same record (Done) and replays the same
//     reply, byte for byte.
//   - The answer carries the scenario it was stored with, for the metrics
//     and the log line; a reply stored without one (by an earlier version)
//     is left to the later steps, which know it.
//
// Where the configuration changed since the answer (a reload that disables
// a scenario, narrows a client's merchants or tightens a schema), the
// request now gets its stored answer where step 4 would refuse it: the
// answer it was given stands (README, "Order state and replays").
func (f *Flow) replayed(ctx context.Context, a *Answer, req *Request, hash store.BodyHash) bool {
	if req.Header.Get("Encrypt") != "" {
		return false
	}
	rid, ok := message.PeekString(req.Body, "requestId")
	if !ok || rid == "" {
		return false
	}
	began := time.Now()
	rep, err := f.cfg.Store.StoredReply(ctx, store.RequestKey{ClientID: a.ClientID, RequestID: rid}, hash)
	if errors.Is(err, errors.ErrUnsupported) {
		return false // a store without a cheap lookup: step 5 finds replays
	}
	// A failed lookup is logged and counted; the claim then tries the
	// store again and answers for it.
	a.storeOp("lookup", began, err)
	if err != nil || rep == nil || rep.Scenario == "" {
		return false
	}
	a.Replay, a.Reason = true, "replay"
	a.Reply, a.Code, a.Scenario = *rep, storedCode(rep.Body), rep.Scenario
	// For the log line: the requestId is this body's (the hash says so);
	// merchantBizNo is read the same way from bytes that once decoded.
	a.RequestID = SafeID(rid)
	if biz, ok := message.PeekString(req.Body, "merchantBizNo"); ok {
		a.MerchantBizNo = SafeID(biz)
	}
	return true
}

// refuse answers without storing anything: before the claim (a corrected
// retry under the same requestId is processed), or U after it (the
// deferred Release gives the requestId up).
func (f *Flow) refuse(a *Answer, req *Request, no Refusal) Answer {
	a.Code, a.Reason = no.Code, no.Reason
	a.Reply, a.SignErr = f.cfg.Signer.reply(req.Method, req.Path, a.ClientID, Outcome{Code: no.Code, Message: no.Message})
	if a.SignErr != nil {
		a.signFailed()
	}
	return *a
}

// signFailed makes a the unsigned U that Signer.reply returned in place
// of a reply it could not sign. Nothing is stored for it: the deferred
// Release gives the requestId up, and a retry is processed afresh.
func (a *Answer) signFailed() {
	a.Code, a.Reason = UnknownException, "sign_failed"
}

// finish answers a final F (or the stored SUCCESS of a re-sent status) and
// stores it for replay by answerBy. Unstored, a final answer could differ
// on retry, so a store failure answers U instead.
func (f *Flow) finish(ctx context.Context, answerBy time.Time, a *Answer, req *Request, claim *store.Claim, o Outcome, reason string) Answer {
	return f.durable(ctx, answerBy, a, req, o, reason, "finish", func(ctx context.Context, reply store.Reply) error {
		return claim.Finish(ctx, reply, f.cfg.IdempotencyTTL)
	})
}

// commit makes the order change and its SUCCESS reply durable in one
// write by answerBy, and only then answers S. A write that cannot end by
// then answers U; if it lands later (the store goes on in the
// background, with the order still locked), a retry is its replay.
func (f *Flow) commit(ctx context.Context, answerBy time.Time, a *Answer, req *Request, claim *store.Claim, change store.OrderChange, o Outcome, reason string) Answer {
	return f.durable(ctx, answerBy, a, req, o, reason, "commit", func(ctx context.Context, reply store.Reply) error {
		return claim.Commit(ctx, change, reply, f.cfg.IdempotencyTTL)
	})
}

// durable signs the answer o, writes it with write (named op in
// Answer.StoreOps) by answerBy, and answers it only once the write
// returned without error; otherwise U (storeDown).
func (f *Flow) durable(ctx context.Context, answerBy time.Time, a *Answer, req *Request, o Outcome, reason, op string, write func(context.Context, store.Reply) error) Answer {
	a.Code, a.Reason = o.Code, reason
	a.Reply, a.SignErr = f.cfg.Signer.reply(req.Method, req.Path, a.ClientID, o)
	if a.SignErr != nil {
		// Nothing is written: stored unsigned, a reply would be replayed
		// unsigned forever, and no S goes out that the caller was not
		// given. The retry reaches the upstream again, if it must, under
		// the same Idempotency-Key (as after a failed commit).
		a.signFailed()
		return *a
	}
	a.Reply.Scenario = a.Scenario
	// Not the request's context: a caller gone meanwhile does not stop
	// the write (for a commit, the upstream already issued, and a success
	// must not turn into U).
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), answerBy)
	defer cancel()
	began := time.Now()
	err := write(ctx, a.Reply)
	a.storeOp(op, began, err)
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
		return f.refuse(a, req, Refusal{UnknownException, "order_busy", "merchantBizNo: the order is busy with another request; retry later"})
	case errors.Is(err, store.ErrConflict):
		return f.refuse(a, req, Refusal{UnknownException, "conflict", "merchantBizNo: the order changed concurrently; retry later"})
	case errors.Is(err, context.DeadlineExceeded):
		return f.refuse(a, req, Refusal{UnknownException, "store_timeout", "service: state store did not answer in time; retry later"})
	}
	return f.refuse(a, req, Refusal{UnknownException, "store_error", "service: state store unavailable; retry later"})
}
