package ordersync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// exchange carries one request through the pipeline; its fields feed the
// log line and the metrics.
type exchange struct {
	r        *http.Request
	start    time.Time
	clientID string
	// clientIDHeaders counts the Client-Id headers; clientID is set only
	// when there is exactly one.
	clientIDHeaders int
	clientLabel     string // bounded by configuration: a configured client id or "other"
	raw             []byte
	req             *message.Request
	scenario        *scenario.Scenario
	previous        string
	replay          bool
	reason          string // short machine label of why the answer is what it is
	upstream        time.Duration
	calledUp        bool
	// claim is the requestId's claim while this request holds it: set once
	// claimed, nil again once finished, committed or released (or handed
	// to a store write that outlived the answer's time bound).
	claim *store.Claim
	// answerBy is when the last store write must have ended, so that the
	// answer is out within upstream_timeout + timeBoundGrace of the
	// request, whatever the upstream and the store do. A write after the
	// upstream call (the commit of an S, the storing of an F) that cannot
	// end by then answers U.
	answerBy time.Time
	tracerID string
	// requestID and merchantBizNo are read from a body that failed
	// validation, for the log line only.
	requestID     string
	merchantBizNo string
}

// ServeHTTP runs the pipeline of the order-sync contract. Every expected outcome is
// written here as an envelope and nil is returned: the caller must always
// get HTTP 200 and a (signed) envelope, never Caddy's error page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// The Tracer-Id is read before anything else touches the request's
	// variables (reading the request uuid the first time writes it).
	x := &exchange{r: r, start: time.Now(), clientLabel: "other", tracerID: tracerID(r)}
	// A repeated Client-Id is ambiguous: it is neither echoed nor used
	// (authenticate refuses it).
	ids := r.Header.Values("Client-Id")
	x.clientIDHeaders = len(ids)
	if len(ids) == 1 {
		x.clientID = ids[0]
	}
	if _, ok := h.clients[x.clientID]; ok {
		x.clientLabel = x.clientID
	}
	rep, o := h.process(x, w, next)
	h.finish(w, x, rep, o)
	return nil
}

// process returns either a stored reply to send as is (replay) or an outcome.
func (h *Handler) process(x *exchange, w http.ResponseWriter, next caddyhttp.Handler) (*store.Reply, orderflow.Outcome) {
	r := x.r
	if h.Offline {
		return nil, h.fail(x, orderflow.UnSupportBusiness, "offline", "service: the order sync API is offline for maintenance")
	}
	if r.Method != http.MethodPost {
		return nil, h.fail(x, orderflow.MethodNotSupported, "method", "method: only POST is supported")
	}
	if !jsonContentType(r.Header.Values("Content-Type")) {
		return nil, h.fail(x, orderflow.MediaTypeNotAcceptable, "media_type", "Content-Type: must be application/json")
	}
	raw, err := readBody(w, r, h.MaxBodySize)
	if err != nil {
		return nil, h.fail(x, orderflow.ParamIllegal, "body_size", err.Error())
	}
	x.raw = raw

	if o, ok := h.authenticate(x); !ok {
		return nil, o
	}

	if r.Header.Get("Encrypt") != "" {
		// AlipayHK publishes no cipher details and no SDK implements it.
		return nil, h.fail(x, orderflow.ParamIllegal, "encrypted", "Encrypt: encrypted request bodies are not supported")
	}
	doc, err := message.Decode(raw)
	if err != nil {
		return nil, h.fail(x, orderflow.ParamIllegal, "json", err.Error())
	}
	if err := h.baseSchema.Validate(doc.Tree()); err != nil {
		x.requestID, x.merchantBizNo = loggableIDs(doc)
		return nil, h.fail(x, orderflow.ParamIllegal, "schema", err.Error())
	}
	req, err := doc.Request()
	if err != nil {
		return nil, h.fail(x, orderflow.ParamIllegal, "json", err.Error())
	}
	x.req = req
	if c := h.clients[x.clientID]; c != nil && c.merchants != nil {
		if _, ok := c.merchants[req.MerchantID]; !ok {
			return nil, h.fail(x, orderflow.UnSupportBusiness, "merchant", "merchantId: not allowed for this client")
		}
	}
	sc := h.scenarios.Match(req)
	if sc == nil {
		return nil, h.fail(x, orderflow.UnSupportBusiness, "no_scenario", "merchantBizType: no enabled scenario matches this request")
	}
	x.scenario = sc
	if err := sc.Validate(doc.Tree()); err != nil {
		return nil, h.fail(x, orderflow.ParamIllegal, "schema", err.Error())
	}
	if !sc.Machine().Has(req.OrderStatus) {
		return nil, h.fail(x, orderflow.ParamIllegal, "schema", "orderStatus: not a status of scenario "+sc.Name())
	}
	return h.sync(x, next)
}

// sync is everything after validation: replay check, order lock,
// transition, forward, commit.
func (h *Handler) sync(x *exchange, next caddyhttp.Handler) (*store.Reply, orderflow.Outcome) {
	ctx, cancel := context.WithTimeout(x.r.Context(), time.Duration(h.UpstreamTimeout))
	defer cancel()
	x.answerBy = x.start.Add(time.Duration(h.UpstreamTimeout) + timeBoundGrace - answerReserve)
	req := x.req
	claimKey := store.RequestKey{ClientID: x.clientID, RequestID: req.RequestID}

	began := time.Now()
	claim, err := h.store.Claim(ctx, claimKey, store.HashBody(x.raw), time.Duration(h.ClaimLease))
	h.metrics.observeStore("claim", began, err)
	if err != nil {
		return nil, h.storeDown(x, "claim", err)
	}
	switch claim.Status {
	case store.Done:
		x.replay, x.reason = true, "replay"
		h.metrics.replays.WithLabelValues(x.clientLabel).Inc()
		return claim.Reply, orderflow.Outcome{}
	case store.InFlight:
		// Whatever its body: only a stored answer makes a body final
		// (README, "What the caller gets"); the request in flight may still
		// end U.
		return nil, h.fail(x, orderflow.UnknownException, "in_flight", "requestId: a request with this requestId is still being processed; retry later")
	case store.Mismatch:
		return nil, h.fail(x, orderflow.ParamIllegal, "request_id_reused", "requestId: already used with a different body")
	}
	x.claim = claim

	okey := store.OrderKey{ClientID: x.clientID, MerchantBizNo: req.MerchantBizNo}
	began = time.Now()
	// The claim holds the order's lock and gives it up with itself (a
	// final write that outlives its deadline keeps it until it ends).
	err = claim.LockOrder(ctx, okey, time.Duration(h.ClaimLease))
	h.metrics.observeStore("lock", began, err)
	if err != nil {
		return nil, h.storeDown(x, "lock", err)
	}

	began = time.Now()
	prev, err := h.store.GetOrder(ctx, okey)
	h.metrics.observeStore("get_order", began, err)
	if err != nil {
		return nil, h.storeDown(x, "get_order", err)
	}
	var current *statemachine.State
	if prev != nil {
		x.previous = prev.Status
		if prev.Scenario != x.scenario.Name() {
			h.metrics.rejections.WithLabelValues(x.scenario.Name(), "scenario_changed").Inc()
			return nil, h.final(x, orderflow.OrderStatusInvalid, "scenario_changed", "merchantBizNo: order belongs to scenario "+prev.Scenario)
		}
		current = &statemachine.State{Status: prev.Status, ModifyTime: prev.ModifyTime}
	}
	decision := x.scenario.Machine().Decide(current, req.OrderStatus, req.ModifyTimeMillis())
	switch decision.Verdict {
	case statemachine.Reject:
		h.metrics.rejections.WithLabelValues(x.scenario.Name(), "transition").Inc()
		return nil, h.final(x, orderflow.OrderStatusInvalid, "transition", decision.Reason)
	case statemachine.AlreadyCurrent:
		x.reason = "already_current"
		return nil, h.final(x, orderflow.Success, "already_current", "", withOrder(prev))
	}

	body := req.Normalize(x.clientID, x.scenario.Name(), x.previous)
	up := h.forward(ctx, x.r, next, body, x.clientID, req.RequestID, x.scenario.Name())
	x.calledUp, x.upstream = true, up.duration
	h.metrics.upstream.WithLabelValues(x.scenario.Name()).Observe(up.duration.Seconds())
	m := h.mapReply(up, req.OrderStatus)
	x.reason = m.reason
	if up.err != nil {
		h.logger.Debug("next handler returned an error", zap.Error(up.err))
	}
	switch m.outcome.Code.Status() {
	case orderflow.StatusUnknown:
		h.release(x)
		return nil, m.outcome
	case orderflow.StatusFailure:
		return nil, h.final(x, m.outcome.Code, m.reason, m.outcome.Message)
	}

	// SUCCESS: the new state and the replay record are one durable write,
	// and only then is S sent.
	next2 := store.Order{
		Scenario:         x.scenario.Name(),
		Status:           req.OrderStatus,
		ModifyTime:       req.ModifyTimeMillis(),
		OrderID:          m.outcome.OrderID,
		DistributeResult: m.outcome.DistributeResult,
		RequestID:        req.RequestID,
		UpdatedAt:        time.Now().UTC(),
	}
	if next2.ModifyTime == 0 && prev != nil {
		next2.ModifyTime = prev.ModifyTime
	}
	rep := h.reply(x.r, x.clientID, m.outcome)
	// The commit must be durable by answerBy, or the answer is U: the
	// time bound holds whatever the store does, and S is only sent once
	// the new state is durable. A caller gone meanwhile does not stop it
	// (the upstream already issued).
	cctx, ccancel := context.WithDeadline(context.WithoutCancel(x.r.Context()), x.answerBy)
	defer ccancel()
	change := store.OrderChange{Key: okey, Prev: prev, Next: next2}
	began = time.Now()
	err = x.claim.Commit(cctx, change, rep, time.Duration(h.IdempotencyTTL))
	h.metrics.observeStore("commit", began, err)
	if err != nil {
		return nil, h.storeDown(x, "commit", err)
	}
	x.claim = nil
	return &rep, m.outcome
}

type outcomeOption func(*orderflow.Outcome)

func withOrder(o *store.Order) outcomeOption {
	return func(out *orderflow.Outcome) {
		out.OrderID = o.OrderID
		out.DistributeResult = o.DistributeResult
	}
}

// fail is an answer given before the requestId was claimed: nothing is
// stored, so a corrected retry under the same requestId is processed.
func (h *Handler) fail(x *exchange, rc orderflow.Code, reason, msg string) orderflow.Outcome {
	x.reason = reason
	return orderflow.Outcome{Code: rc, Message: msg}
}

// final is an answer given after the claim: F and S are stored for replay
// (the caller of final writes the stored bytes), U releases the claim.
func (h *Handler) final(x *exchange, rc orderflow.Code, reason, msg string, opts ...outcomeOption) orderflow.Outcome {
	x.reason = reason
	o := orderflow.Outcome{Code: rc, Message: msg}
	if rc == orderflow.Success {
		o.Message = "success"
		o.OrderStatus = x.req.OrderStatus
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// storeDown answers U when the state store fails: never S without durable
// state.
func (h *Handler) storeDown(x *exchange, op string, err error) orderflow.Outcome {
	h.release(x)
	h.logger.Error("state store failed", zap.String("operation", op), zap.Error(err))
	if errors.Is(err, store.ErrLockTimeout) {
		return h.fail(x, orderflow.UnknownException, "order_busy", "merchantBizNo: the order is busy with another request; retry later")
	}
	if errors.Is(err, store.ErrConflict) {
		return h.fail(x, orderflow.UnknownException, "conflict", "merchantBizNo: the order changed concurrently; retry later")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return h.fail(x, orderflow.UnknownException, "store_timeout", "service: state store did not answer in time; retry later")
	}
	return h.fail(x, orderflow.UnknownException, "store_error", "service: state store unavailable; retry later")
}

// release gives the claim up, if this request holds it. The store is
// asked in the background (a hung store must not delay the answer); a
// failure is logged by the store's CleanupFailed hook.
func (h *Handler) release(x *exchange) {
	x.claim.Release()
	x.claim = nil
}

// finish turns the outcome into bytes (unless a stored reply is given),
// stores final answers made after the claim, writes, logs and counts.
func (h *Handler) finish(w http.ResponseWriter, x *exchange, rep *store.Reply, o orderflow.Outcome) {
	if rep == nil {
		built := h.reply(x.r, x.clientID, o)
		if x.claim != nil {
			// Still holding the claim means a final answer (F, or the
			// stored SUCCESS of a re-sent status): keep it for replay,
			// by the answer's time bound.
			ctx, cancel := context.WithDeadline(context.WithoutCancel(x.r.Context()), x.answerBy)
			began := time.Now()
			err := x.claim.Finish(ctx, built, time.Duration(h.IdempotencyTTL))
			cancel()
			h.metrics.observeStore("finish", began, err)
			if err != nil {
				// Unstored, a final answer could differ on retry: say U.
				o = h.storeDown(x, "finish", err)
				built = h.reply(x.r, x.clientID, o)
			}
			x.claim = nil
		}
		rep = &built
	}
	code := o.Code
	if x.replay {
		code = orderflow.CodeOf(rep.Body)
	}
	writeReply(w, *rep, x.tracerID)
	h.observe(x, code)
}

// tracerID reuses Caddy's request id so the Tracer-Id matches Caddy's logs.
func tracerID(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.GetString("http.request.uuid"); ok {
			return strings.ReplaceAll(v, "-", "")
		}
	}
	return ""
}

func jsonContentType(values []string) bool {
	if len(values) == 0 {
		return false
	}
	// The Go SDK sends Content-Type twice (docs/SPEC.md §2); all must agree.
	for _, v := range values {
		mt, params, err := mime.ParseMediaType(v)
		if err != nil || mt != "application/json" {
			return false
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return false
		}
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	tooLarge := fmt.Errorf("body: larger than %d bytes (max_body_size)", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, errors.New("body: could not be read")
	}
	return b, nil
}

// authenticate checks Client-Id, key version, signature and Request-Time.
// Each of Client-Id, Signature and Request-Time must be given once: with
// two, "the first one wins" would let a proxy in front and the gateway
// disagree on who signed what (README, "Security notes").
func (h *Handler) authenticate(x *exchange) (orderflow.Outcome, bool) {
	r := x.r
	if x.clientIDHeaders > 1 {
		h.metrics.signatureFailures.WithLabelValues("client").Inc()
		return h.fail(x, orderflow.InvalidClient, "client", "Client-Id: given more than once"), false
	}
	if x.clientID == "" {
		h.metrics.signatureFailures.WithLabelValues("client").Inc()
		return h.fail(x, orderflow.InvalidClient, "client", "Client-Id: missing"), false
	}
	c := h.clients[x.clientID]
	if h.InsecureSkipVerify {
		return orderflow.Outcome{}, true
	}
	if c == nil {
		h.metrics.signatureFailures.WithLabelValues("client").Inc()
		return h.fail(x, orderflow.InvalidClient, "client", "Client-Id: not a registered client"), false
	}
	for _, name := range []string{"Signature", "Request-Time"} {
		if len(r.Header.Values(name)) > 1 {
			h.metrics.signatureFailures.WithLabelValues("repeated").Inc()
			return h.fail(x, orderflow.InvalidSignature, "signature_repeated", name+": given more than once"), false
		}
	}
	sigHeader := r.Header.Get("Signature")
	if sigHeader == "" {
		h.metrics.signatureFailures.WithLabelValues("missing").Inc()
		return h.fail(x, orderflow.InvalidSignature, "signature_missing", "Signature: missing"), false
	}
	parsed, err := signature.ParseHeader(sigHeader)
	if err != nil {
		h.metrics.signatureFailures.WithLabelValues(signatureReason(err)).Inc()
		return h.fail(x, orderflow.InvalidSignature, "signature_malformed", err.Error()), false
	}
	key, ok := c.keys[parsed.KeyVersion]
	if !ok {
		h.metrics.signatureFailures.WithLabelValues("key_not_found").Inc()
		return h.fail(x, orderflow.KeyNotFound, "key_not_found", "Signature: keyVersion "+safeToken(parsed.KeyVersion)+" is not registered for this client"), false
	}
	reqTime := r.Header.Get("Request-Time")
	if reqTime == "" {
		h.metrics.signatureFailures.WithLabelValues("time").Inc()
		return h.fail(x, orderflow.InvalidSignature, "time", "Request-Time: missing"), false
	}
	if err := key.Verify(r.Method, signedPath(r), x.clientID, reqTime, x.raw, parsed.Signature); err != nil {
		h.metrics.signatureFailures.WithLabelValues(signatureReason(err)).Inc()
		return h.fail(x, orderflow.InvalidSignature, "signature", err.Error()), false
	}
	if h.timeWindow > 0 {
		t, err := signature.ParseTime(reqTime)
		if err == nil {
			err = signature.CheckWindow(t, time.Now(), h.timeWindow)
		}
		if err != nil {
			h.metrics.signatureFailures.WithLabelValues("time").Inc()
			return h.fail(x, orderflow.InvalidSignature, "time", err.Error()), false
		}
	}
	return orderflow.Outcome{}, true
}

// safeToken keeps a short, printable token for a message (key versions are
// small integers; anything else is not echoed).
func safeToken(s string) string {
	if len(s) > 8 {
		return "(invalid)"
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return "(invalid)"
		}
	}
	return s
}

// signatureReason is the bounded metrics label of an authentication error.
func signatureReason(err error) string {
	if r := signature.ReasonOf(err); r != "" {
		return r
	}
	return "other"
}

// signedPath is the path the caller signed: the one it sent, before any
// handle_path or rewrite earlier in the route changed r.URL.
func signedPath(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.URL.Path
	}
	return r.URL.Path
}

// loggableIDs picks requestId and merchantBizNo out of a body that failed
// validation, so its log line can still be found by the caller's ids.
// Values that are not short strings are left out.
func loggableIDs(doc *message.Document) (requestID, merchantBizNo string) {
	pick := func(key string) string {
		if v, ok := doc.String(key); ok && len(v) <= 64 {
			return v
		}
		return ""
	}
	return pick("requestId"), pick("merchantBizNo")
}
