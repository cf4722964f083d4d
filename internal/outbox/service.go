package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
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
	ReasonAlipayHK         Reason = "alipayhk"                      // AlipayHK's final answer, within wait
	ReasonQueued           Reason = "queued"                        // 202: not final within wait
	ReasonAsync            Reason = "async"                         // 202: Prefer: respond-async
	ReasonEnded            Reason = "ended"                         // 202: final without AlipayHK's answer (expired, dropped)
	ReasonMethod           Reason = orderflow.ReasonMethod          // not POST
	ReasonMediaType        Reason = orderflow.ReasonMediaType       // not JSON
	ReasonBodySize         Reason = orderflow.ReasonBodySize        // over max_body_size, or unreadable
	ReasonJSON             Reason = orderflow.ReasonJSON            // not a strict JSON object
	ReasonSchema           Reason = orderflow.ReasonSchema          // base or scenario schema, or a status not of the scenario
	ReasonNoScenario       Reason = orderflow.ReasonNoScenario      // no enabled scenario matches
	ReasonRequestIDReused  Reason = orderflow.ReasonRequestIDReused // the requestId's entry has another body
	ReasonTransition       Reason = orderflow.ReasonTransition      // the state machine refuses the status
	ReasonScenarioChanged  Reason = orderflow.ReasonScenarioChanged // the order belongs to another scenario
	ReasonAlreadyCurrent   Reason = orderflow.ReasonAlreadyCurrent  // the accepted status again: SUCCESS by the gateway
	ReasonStore            Reason = "store"                         // the store failed before the entry was durable: 503
	ReasonLookup           Reason = "lookup"                        // a lookup found the entry
	ReasonNotFound         Reason = "not_found"                     // a lookup found nothing: 404
	ReasonMissingRequestID Reason = "missing_request_id"            // a lookup without requestId: 404
)

// Service answers the legacy system for one configuration generation of
// an egress handler: Submit for a POST, Lookup for a GET. It is safe for
// concurrent use. Delivery is its Runner's, which outlives generations.
type Service struct {
	cfg    Config
	runner *Runner
	ob     *store.Outbox
	// validator is ingress's: the same schemas, scenarios and rules.
	validator *orderflow.Validator
	// tooLarge is the message of a body over max_body_size, made once.
	tooLarge string
}

// NewService returns the Service of cfg over r, the Runner of the same
// store and cfg.ClientID. Errors name the option.
func NewService(cfg Config, r *Runner) (*Service, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("outbox: no runner")
	}
	if c.ClientID != r.clientID {
		return nil, errors.New("client_id: the runner given delivers for another client_id")
	}
	validator, err := orderflow.NewValidator(c.Scenarios)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg:       c,
		runner:    r,
		ob:        r.ob,
		validator: validator,
		tooLarge:  orderflow.BodyTooLargeMessage(c.MaxBodySize),
	}, nil
}

// Submit answers one POST of an order (the package documentation lists
// the steps). It returns within the configured wait plus the time of a
// few store operations, which are bounded; sooner when ctx ends (the
// answer is then 202 if the entry is queued, and nobody reads it anyway).
func (s *Service) Submit(ctx context.Context, req SubmitRequest) Response {
	received := time.Now()
	// 1. Guards.
	if req.Method != http.MethodPost {
		return refuse(ids{}, orderflow.MethodNotSupported, ReasonMethod, "method: only POST is supported (GET looks an entry up by ?requestId=)")
	}
	if !orderflow.JSONContentType(req.Header.Values("Content-Type")) {
		return refuse(ids{}, orderflow.MediaTypeNotAcceptable, ReasonMediaType, "Content-Type: must be application/json")
	}
	if req.BodyErr != nil {
		return refuse(ids{}, orderflow.ParamIllegal, ReasonBodySize, "body: could not be read")
	}
	if int64(len(req.Body)) > s.cfg.MaxBodySize {
		return refuse(ids{}, orderflow.ParamIllegal, ReasonBodySize, s.tooLarge)
	}

	// 2.-4. Decode, requestId, validate, match.
	doc, err := message.Decode(req.Body)
	if err != nil {
		return refuse(ids{}, orderflow.ParamIllegal, ReasonJSON, err.Error())
	}
	if requestIDAbsent(doc) {
		doc.SetString("requestId", deriveFrom(doc))
	}
	r, sc, no := s.validator.Validate(doc, nil)
	var id ids
	if r != nil {
		id.RequestID, id.MerchantBizNo = r.RequestID, r.MerchantBizNo
	} else {
		id.RequestID, id.MerchantBizNo = orderflow.LoggableIDs(doc)
	}
	if sc != nil {
		id.Scenario = sc.Name()
	}
	if no != nil {
		return refuse(id, no.Code, Reason(no.Reason), no.Message)
	}

	// 5. The body AlipayHK will get, fixed now.
	body, err := doc.Canonical()
	if err != nil {
		// A decoded tree always serializes; this is a bug, not the caller's.
		return unavailable(id, "body: could not be serialized; nothing was queued")
	}
	hash := store.HashBody(body)
	wait := s.cfg.Wait
	async, preferWait := preferences(req.Header.Values("Prefer"))
	if preferWait >= 0 {
		wait = min(wait, preferWait)
	}
	deadline := received.Add(wait)

	// Registered before the entry is read or written: a final state written
	// from then on reaches this call.
	final, done := s.runner.await(r.RequestID)
	defer done()

	sctx, cancel := storeCtx(ctx)
	defer cancel()
	key := store.RequestKey{ClientID: s.cfg.ClientID, RequestID: r.RequestID}
	laneKey := store.LaneKey{ClientID: s.cfg.ClientID, MerchantBizNo: r.MerchantBizNo}

	// 6. Dedupe, before the state check.
	existing, err := s.ob.Entry(sctx, key)
	if err != nil {
		return unavailable(id, "store: the state store is unavailable; nothing was queued, retry later")
	}
	if existing != nil {
		return s.same(ctx, id, existing, hash, async, deadline, final)
	}

	entry := store.Entry{
		ClientID:        s.cfg.ClientID,
		RequestID:       r.RequestID,
		MerchantBizNo:   r.MerchantBizNo,
		Scenario:        sc.Name(),
		OrderStatus:     r.OrderStatus,
		OrderModifyTime: r.ModifyTimeMillis(),
		Body:            body,
		BodyHash:        hash,
		State:           store.EntryQueued,
	}
	for {
		// 7. The state check, against the lane as read now.
		lane, err := s.ob.Lane(sctx, laneKey)
		if err != nil {
			return unavailable(id, "store: the state store is unavailable; nothing was queued, retry later")
		}
		c := checkLane(sc, lane, r.OrderStatus, r.ModifyTimeMillis())
		switch c.Verdict {
		case statemachine.Reject:
			return refuse(id, orderflow.OrderStatusInvalid, c.Label, c.Reason)
		case statemachine.AlreadyCurrent:
			if c.Last == nil {
				a := lane.Accepted
				return answer(id, http.StatusOK, DecidedByGateway, orderflow.Success, ReasonAlreadyCurrent, orderflow.Outcome{
					Code:             orderflow.Success,
					OrderID:          a.OrderID,
					OrderStatus:      a.Status,
					DistributeResult: a.DistributeResult,
				}.Body())
			}
			// What this POST asks is what the last queued entry will
			// send: its answer is this one's.
			return s.queuedTwin(ctx, id, c.Last, async, deadline)
		}

		// 8. Enqueue: durable, atomic with the dedupe and the lane version.
		now := time.Now()
		entry.CreatedAt, entry.QueuedAt, entry.UpdatedAt, entry.NextAttemptAt = now, now, now, now
		existing, err = s.ob.Enqueue(sctx, entry, lane.Version)
		if errors.Is(err, store.ErrConflict) {
			if sctx.Err() != nil {
				return unavailable(id, "store: the order's lane kept changing; nothing was queued, retry later")
			}
			continue // the lane moved since it was read: read and judge again
		}
		if err != nil {
			// A write cut off may still have been made: look once before
			// saying nothing was queued.
			existing = s.recheck(ctx, key)
			if existing == nil {
				return unavailable(id, "store: the state store is unavailable; nothing was queued, retry later")
			}
		}
		if existing != nil {
			// Another POST of this requestId won the race, or the write
			// above was made after all.
			return s.same(ctx, id, existing, hash, async, deadline, final)
		}
		break
	}

	// 9. Queued and durable: from here the answer is never 503.
	if async {
		return queued(id, &entry, ReasonAsync)
	}
	s.runner.Wake(laneKey)
	return s.wait(ctx, id, &entry, deadline, final)
}

// same answers a POST whose requestId has an entry: that entry's answer
// for the same body, PARAM_ILLEGAL for another.
func (s *Service) same(ctx context.Context, id ids, e *store.Entry, hash store.BodyHash, async bool, deadline time.Time, final <-chan *store.Entry) Response {
	if e.BodyHash != hash {
		return refuse(id, orderflow.ParamIllegal, ReasonRequestIDReused, "requestId: already used with a different body")
	}
	if e.State.Final() || async {
		return entryAnswer(id, e, ReasonAsync)
	}
	s.runner.Wake(store.LaneKey{ClientID: e.ClientID, MerchantBizNo: e.MerchantBizNo})
	return s.wait(ctx, id, e, deadline, final)
}

// queuedTwin answers a POST that asks for what the lane's last queued entry
// already asks for (its status again, not repeatable): with that entry,
// waited for like a new one. Nothing is queued.
func (s *Service) queuedTwin(ctx context.Context, id ids, twin *store.Entry, async bool, deadline time.Time) Response {
	id.RequestID = twin.RequestID // the answer is about the twin
	if async {
		return queued(id, twin, ReasonAsync)
	}
	final, done := s.runner.await(twin.RequestID)
	defer done()
	// Read again now that the waiter is registered: it may have ended
	// between the lane's read and the registration.
	sctx, cancel := storeCtx(ctx)
	e, err := s.ob.Entry(sctx, store.RequestKey{ClientID: twin.ClientID, RequestID: twin.RequestID})
	cancel()
	if err == nil && e != nil {
		twin = e
	}
	if twin.State.Final() {
		return entryAnswer(id, twin, ReasonQueued)
	}
	return s.wait(ctx, id, twin, deadline, final)
}

// wait waits until deadline for e to become final, woken by the runner;
// at the deadline it reads the entry once more (another instance may have
// delivered it).
func (s *Service) wait(ctx context.Context, id ids, e *store.Entry, deadline time.Time, final <-chan *store.Entry) Response {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case f := <-final:
		return entryAnswer(id, f, ReasonQueued)
	case <-ctx.Done():
		return queued(id, e, ReasonQueued)
	case <-timer.C:
	}
	// Bounded tightly: the caller was promised an answer by wait.
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if now, err := s.ob.Entry(rctx, store.RequestKey{ClientID: e.ClientID, RequestID: e.RequestID}); err == nil && now != nil {
		e = now
	}
	return entryAnswer(id, e, ReasonQueued)
}

// recheck reads the entry once after an Enqueue that failed, with a fresh
// short bound.
func (s *Service) recheck(ctx context.Context, key store.RequestKey) *store.Entry {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	e, err := s.ob.Entry(rctx, key)
	if err != nil {
		return nil
	}
	return e
}

// Lookup answers GET ?requestId=<id>: 200 with the entry, 404 with a small
// JSON body when there is none (or requestID is ""), 503 with the
// UNKNOWN_EXCEPTION envelope when the store fails.
func (s *Service) Lookup(ctx context.Context, requestID string) Response {
	id := ids{RequestID: orderflow.SafeID(requestID)}
	if requestID == "" {
		return notFound(id, ReasonMissingRequestID, "requestId: the query parameter is required")
	}
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	e, err := s.ob.Entry(sctx, store.RequestKey{ClientID: s.cfg.ClientID, RequestID: requestID})
	if err != nil {
		return unavailable(id, "store: the state store is unavailable, retry later")
	}
	if e == nil {
		return notFound(id, ReasonNotFound, "requestId: no entry with this requestId")
	}
	id.MerchantBizNo = e.MerchantBizNo
	id.Scenario = e.Scenario
	return answer(id, http.StatusOK, DecidedByGateway, "", ReasonLookup, EntryJSON(e))
}

// ids are what an answer is about, as far as known.
type ids struct{ RequestID, MerchantBizNo, Scenario string }

// entryAnswer answers with an entry's state: AlipayHK's envelope byte for
// byte once it gave its final answer, else 202 with the entry (queued; or
// final without AlipayHK's answer: expired, dropped by an operator —
// there is no envelope to give, and 200 always carries one).
func entryAnswer(id ids, e *store.Entry, reason Reason) Response {
	id.RequestID = e.RequestID
	if e.State.Final() && e.Reply != nil {
		return answer(id, http.StatusOK, DecidedByAlipayHK, orderflow.CodeOf(e.Reply.Body), ReasonAlipayHK, e.Reply.Body)
	}
	if e.State.Final() {
		reason = ReasonEnded
	}
	return queued(id, e, reason)
}

// queued is 202 with the entry.
func queued(id ids, e *store.Entry, reason Reason) Response {
	id.RequestID = e.RequestID
	resp := answer(id, http.StatusAccepted, DecidedByGateway, "", reason, EntryJSON(e))
	if reason == ReasonAsync {
		resp.Header.Set("Preference-Applied", "respond-async")
	}
	return resp
}

// refuse is the envelope made by the gateway for a POST refused before
// anything was queued: HTTP 200, never signed.
func refuse(id ids, code orderflow.Code, reason Reason, msg string) Response {
	return answer(id, http.StatusOK, DecidedByGateway, code, reason, orderflow.Outcome{Code: code, Message: msg}.Body())
}

// Unavailable is 503 with the UNKNOWN_EXCEPTION envelope saying msg, for
// a POST that reached no Service (nothing was queued).
func Unavailable(msg string) Response { return unavailable(ids{}, msg) }

// unavailable is 503 with the UNKNOWN_EXCEPTION envelope: nothing queued.
func unavailable(id ids, msg string) Response {
	code := orderflow.UnknownException
	return answer(id, http.StatusServiceUnavailable, DecidedByGateway, code, ReasonStore, orderflow.Outcome{Code: code, Message: msg}.Body())
}

func notFound(id ids, reason Reason, msg string) Response {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	return answer(id, http.StatusNotFound, DecidedByGateway, "", reason, body)
}

func answer(id ids, status int, decidedBy string, code orderflow.Code, reason Reason, body []byte) Response {
	h := http.Header{}
	h.Set("Content-Type", jsonUTF8)
	h.Set(HeaderDecidedBy, decidedBy)
	if rid := orderflow.SafeID(id.RequestID); rid != "" {
		h.Set(HeaderRequestID, rid)
	}
	return Response{
		Status:        status,
		Header:        h,
		Body:          body,
		RequestID:     orderflow.SafeID(id.RequestID),
		MerchantBizNo: orderflow.SafeID(id.MerchantBizNo),
		Scenario:      id.Scenario,
		Code:          code,
		Reason:        reason,
	}
}

// preferences reads the Prefer header (RFC 7240): respond-async, and
// wait=<seconds> (-1 when absent), which shortens the configured wait.
// Preferences it does not know are ignored, as RFC 7240 says.
func preferences(values []string) (async bool, wait time.Duration) {
	wait = -1
	for _, v := range values {
		for _, pref := range strings.Split(v, ",") {
			token, _, _ := strings.Cut(pref, ";") // parameters: none of ours
			name, value, _ := strings.Cut(token, "=")
			name = strings.TrimSpace(name)
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch {
			case strings.EqualFold(name, "respond-async"):
				async = true
			case strings.EqualFold(name, "wait"):
				if n, err := strconv.ParseUint(value, 10, 31); err == nil {
					wait = time.Duration(n) * time.Second
				}
			}
		}
	}
	return async, wait
}
