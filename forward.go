package ordersync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// maxReplySize caps how much of the upstream's reply is captured; a larger
// reply is a broken upstream (UNKNOWN_EXCEPTION).
const maxReplySize = 1 << 20

// timeBoundGrace is how far past upstream_timeout an answer may be, whatever
// the upstream and the state store do (README, "Configuration":
// upstream_timeout): the next handler gets that long, less answerReserve, to
// notice its cancelled context, and the store writes after the upstream
// call (the commit of an S, the storing of an F) must end by then.
const timeBoundGrace = time.Second

// answerReserve is kept free at the end of the time bound for what comes
// after the last wait: releasing the claim (store.DefaultReleaseWait),
// building and signing the U, writing it.
const answerReserve = 100 * time.Millisecond

// headersKeptUpstream are the only caller headers the upstream gets, as
// sent: nothing signs the caller's headers, so only those that carry no
// order data and are useful across the hop (who is calling, the trace) are
// kept (README, "The upstream contract"). Everything else is an allow-list of what the gateway
// itself sets; reverse_proxy adds its own X-Forwarded-* and Via.
var headersKeptUpstream = []string{"User-Agent", "Traceparent", "Tracestate"}

// clientIDEscaper percent-encodes the two characters that would make an
// Idempotency-Key ambiguous.
var clientIDEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// idempotencyKey is "<clientId>:<requestId>" with % and : in the Client-Id
// percent-encoded (README, "The upstream contract"): the first : always separates the two, so
// no two (Client-Id, requestId) pairs share a key (K with X:Y was K:X:Y,
// as was K:X with Y). The requestId is left as is, so the common case
// reads naturally.
func idempotencyKey(clientID, requestID string) string {
	return clientIDEscaper.Replace(clientID) + ":" + requestID
}

// upstreamReply is what the next handler answered.
type upstreamReply struct {
	status    int
	header    http.Header
	body      []byte
	tooLarge  bool
	err       error // returned by the next handler (e.g. reverse_proxy's 502)
	timedOut  bool
	duration  time.Duration
	neverDone bool // next handler still running after the grace period
}

// forward sends the normalized body to the next handler and captures its
// reply in a private buffer, so nothing the upstream sets reaches the
// caller.
// ctx carries the request's upstream_timeout deadline, which started
// before the order lock was awaited: the whole answer is bounded by it.
func (h *Handler) forward(ctx context.Context, r *http.Request, next caddyhttp.Handler, body []byte, clientID, requestID, scenario string) upstreamReply {
	// The upstream request gets its own copy of Caddy's request variables:
	// net/http may still be dialing for it after it has been given up on,
	// and the transport reads those variables while the handler goes on.
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, maps.Clone(vars))
	}
	up := r.Clone(ctx)
	up.Method = http.MethodPost
	// Only signed and normalized data goes on: no query string (the
	// signature covers the path only) and no header outside the allow-list.
	up.URL.RawQuery, up.URL.ForceQuery = "", false
	up.RequestURI = up.URL.RequestURI()
	up.Trailer = nil
	up.Header = make(http.Header, len(headersKeptUpstream)+5)
	for _, name := range headersKeptUpstream {
		if vs, ok := r.Header[name]; ok {
			up.Header[name] = slices.Clone(vs)
		}
	}
	up.Header.Set("Content-Type", "application/json")
	up.Header.Set("Idempotency-Key", idempotencyKey(clientID, requestID))
	up.Header.Set("X-Order-Sync-Client-Id", clientID)
	up.Header.Set("X-Order-Sync-Scenario", scenario)
	up.Header.Set("Content-Length", strconv.Itoa(len(body)))
	up.Body = http.NoBody
	if len(body) > 0 {
		up.Body = io.NopCloser(bytes.NewReader(body))
	}
	up.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	up.ContentLength = int64(len(body))
	up.TransferEncoding = nil
	return serveCaptured(ctx, next, up)
}

// serveCaptured runs next on up with a bounded, private capture of its
// reply, and gives up on it timeBoundGrace after ctx ends. Both handlers
// reach their upstream through it: ingress through the next handler of
// the request, egress through the handlers after it in its route.
func serveCaptured(ctx context.Context, next caddyhttp.Handler, up *http.Request) upstreamReply {
	rec := &captureWriter{header: make(http.Header)}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		defer func() {
			// reverse_proxy panics with http.ErrAbortHandler when the
			// upstream's body breaks off after the status was written.
			if p := recover(); p != nil {
				done <- fmt.Errorf("next handler aborted its reply: %v", p)
			}
		}()
		done <- next.ServeHTTP(rec, up)
	}()

	var out upstreamReply
	select {
	case err := <-done:
		out.err = err
	case <-ctx.Done():
		// reverse_proxy aborts on a cancelled context; give it a moment
		// to return, then answer without it.
		select {
		case err := <-done:
			out.err = err
		case <-time.After(timeBoundGrace - answerReserve):
			out.neverDone = true
		}
	}
	out.duration = time.Since(start)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		out.timedOut = true
	}
	if out.neverDone {
		return out
	}
	out.status, out.body, out.tooLarge = rec.result()
	// The next handler has returned: nothing writes the map any more.
	out.header = rec.header
	return out
}

// captureWriter is a bounded, private http.ResponseWriter. It is not tied to
// the caller's writer, so a next handler that outlives the time bound writes
// into nothing the caller sees.
type captureWriter struct {
	mu       sync.Mutex
	header   http.Header
	status   int
	buf      bytes.Buffer
	tooLarge bool
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 && status >= 200 {
		c.status = status
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.tooLarge {
		return len(p), nil
	}
	if c.buf.Len()+len(p) > maxReplySize {
		c.tooLarge = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

// Flush is a no-op: the reply is consumed whole.
func (c *captureWriter) Flush() {}

func (c *captureWriter) result() (int, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.buf.Bytes(), c.tooLarge
}

// mapped is an upstream reply turned into an outcome.
type mapped struct {
	outcome orderflow.Outcome
	reason  string // short label for logs and metrics
}

// mapReply applies the README's upstream table ("The upstream contract"):
// a known resultCode first, then 2xx with an orderId, then the status table,
// and UNKNOWN_EXCEPTION for everything else.
func (h *Handler) mapReply(up upstreamReply, orderStatus string) mapped {
	unknown := func(reason, msg string) mapped {
		return mapped{outcome: orderflow.Outcome{Code: orderflow.UnknownException, Message: msg}, reason: reason}
	}
	switch {
	case up.neverDone || up.timedOut:
		return unknown("timeout", "upstream: no answer within upstream_timeout; retry later")
	case up.err != nil && up.status == 0:
		return unknown("unreachable", "upstream: unreachable or failed; retry later")
	case up.err != nil:
		// A status line arrived but the reply did not end well (a body
		// shorter than its Content-Length, a chunked body without its
		// last chunk, a reset): what was captured may parse, but it is
		// not the reply the upstream meant to send.
		return unknown("aborted", "upstream: reply cut short or aborted; retry later")
	case up.status == 0:
		return unknown("no_reply", "upstream: no reply (is reverse_proxy configured after alipay_order_sync?)")
	case up.tooLarge:
		return unknown("too_large", "upstream: reply larger than the capture limit")
	case !utf8.Valid(up.body):
		// A broken upstream; passed on, its bytes would make a signed
		// envelope that is not UTF-8 JSON (distributeResult is copied).
		return unknown("not_utf8", "upstream: reply is not valid UTF-8")
	}

	parsed, isJSON := parseUpstreamBody(up.body)
	// (a) a known resultCode wins whatever the HTTP status.
	if isJSON && parsed.code != "" {
		rc, known := orderflow.LookupCode(parsed.code)
		if !known {
			return unknown("unknown_code", "upstream: answered an unknown resultCode")
		}
		if rc != orderflow.Success {
			msg := parsed.message
			if msg == "" {
				msg = "upstream: " + string(rc)
			}
			return mapped{outcome: orderflow.Outcome{Code: rc, Message: msg}, reason: "result_code"}
		}
		if parsed.orderID == "" {
			return unknown("no_order_id", "upstream: SUCCESS without orderId")
		}
		return mapped{outcome: successOutcome(parsed, orderStatus), reason: "result_code"}
	}
	// (b) 2xx with orderId.
	if up.status >= 200 && up.status < 300 {
		if !isJSON {
			return unknown("not_json", "upstream: reply is not JSON")
		}
		if parsed.orderID == "" {
			return unknown("no_order_id", "upstream: 2xx reply without orderId")
		}
		return mapped{outcome: successOutcome(parsed, orderStatus), reason: "success"}
	}
	// (c) the status table, with map_status overrides.
	if rc, ok := h.codeForStatus(up.status); ok {
		return mapped{outcome: orderflow.Outcome{Code: rc, Message: "upstream: HTTP " + strconv.Itoa(up.status)}, reason: "status"}
	}
	// (d) everything else.
	return unknown("status", "upstream: HTTP "+strconv.Itoa(up.status)+"; retry later")
}

func (h *Handler) codeForStatus(status int) (orderflow.Code, bool) {
	if rc, ok := h.statusMap[strconv.Itoa(status)]; ok {
		return rc, true
	}
	if rc, ok := h.statusMap[strconv.Itoa(status/100)+"xx"]; ok {
		return rc, true
	}
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return orderflow.ParamIllegal, true
	case http.StatusConflict:
		return orderflow.OrderStatusInvalid, true
	case http.StatusNotFound, http.StatusNotImplemented:
		return orderflow.UnSupportBusiness, true
	case http.StatusTooManyRequests:
		return orderflow.RequestTrafficExceedLimit, true
	}
	return "", false
}

func successOutcome(p parsedReply, orderStatus string) orderflow.Outcome {
	return orderflow.Outcome{
		Code:             orderflow.Success,
		Message:          "success",
		OrderID:          p.orderID,
		OrderStatus:      orderStatus,
		DistributeResult: p.distributeResult,
	}
}

// parsedReply holds the fields the gateway reads from an upstream reply.
type parsedReply struct {
	code             string
	message          string
	orderID          string
	distributeResult json.RawMessage
}

// upstreamBody accepts both success shapes, a flat or nested result, and
// numeric orderIds that a loosely typed backend may send.
type upstreamBody struct {
	ResultCode       string          `json:"resultCode"`
	ResultMessage    string          `json:"resultMessage"`
	Result           *upstreamResult `json:"result"`
	OrderID          json.RawMessage `json:"orderId"`
	DistributeResult json.RawMessage `json:"distributeResult"`
	BenefitID        *string         `json:"benefitId"`
	DetailLink       *string         `json:"detailLink"`
	SceneCode        *string         `json:"sceneCode"`
}

type upstreamResult struct {
	ResultCode    string `json:"resultCode"`
	ResultMessage string `json:"resultMessage"`
}

func parseUpstreamBody(b []byte) (parsedReply, bool) {
	var ub upstreamBody
	if len(bytes.TrimSpace(b)) == 0 || json.Unmarshal(b, &ub) != nil {
		return parsedReply{}, false
	}
	p := parsedReply{code: ub.ResultCode, message: ub.ResultMessage}
	if p.code == "" && ub.Result != nil {
		p.code, p.message = ub.Result.ResultCode, ub.Result.ResultMessage
	}
	p.orderID = rawString(ub.OrderID)
	if len(ub.DistributeResult) > 0 && bytes.HasPrefix(bytes.TrimSpace(ub.DistributeResult), []byte("[")) {
		p.distributeResult = compactJSON(ub.DistributeResult)
	} else if ub.BenefitID != nil || ub.DetailLink != nil || ub.SceneCode != nil {
		p.distributeResult = flatDistributeResult(ub)
	}
	return p, true
}

// rawString reads an orderId given as a JSON string or number.
func rawString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return nil
	}
	return buf.Bytes()
}

// flatDistributeResult turns the flat success form into the Alipay array
// (README, "The upstream contract"); keys absent in the flat reply are left
// out.
func flatDistributeResult(ub upstreamBody) json.RawMessage {
	item := map[string]any{}
	if ub.SceneCode != nil {
		item["sceneCode"] = *ub.SceneCode
	}
	ext := map[string]string{}
	if ub.BenefitID != nil {
		ext["benefitId"] = *ub.BenefitID
	}
	if ub.DetailLink != nil {
		ext["detailLink"] = *ub.DetailLink
	}
	if len(ext) > 0 {
		item["extInfo"] = ext
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode([]any{item})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
