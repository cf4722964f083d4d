package orderflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeBoundGrace is how far past upstream_timeout an answer may be,
// whatever the upstream and the state store do (README, "Configuration":
// upstream_timeout).
const TimeBoundGrace = time.Second

// Forwarder sends the normalized request to the issuing backend. The
// Caddy glue implements it over the next handler (reverse_proxy); tests
// use a fake. When ctx ends, the next handler is asked to stop (its
// context is ctx); Forward waits for it until up.GiveUpAt at most and
// then returns without it (NeverDone). A reply that did not end well
// (aborted, cut short, errored) is reported in Err even when a status
// arrived.
type Forwarder interface {
	Forward(ctx context.Context, up Upstream) UpstreamReply
}

// Upstream is what the backend gets (README, "The upstream contract"):
// POST on the path the caller used, no query string, this body and exactly
// these headers. The Forwarder owns Header once it is handed over.
type Upstream struct {
	Body   []byte
	Header http.Header
	// GiveUpAt is when Forward returns whatever the next handler does.
	GiveUpAt time.Time
}

// UpstreamReply is what the backend answered, as captured by a Forwarder.
type UpstreamReply struct {
	Status   int         // 0 if no status was written
	Header   http.Header // the upstream's headers; none reaches the caller
	Body     []byte      // the captured body, at most the capture limit
	TooLarge bool        // the body was larger than the capture limit
	// Err is the error the next handler returned (reverse_proxy's 502 on
	// an unreachable upstream) or its recovered abort.
	Err       error
	TimedOut  bool // ctx's deadline passed during the call
	NeverDone bool // the next handler was still running after TimeBoundGrace
	Duration  time.Duration
}

// headersKeptUpstream are the only caller headers the upstream gets, as
// sent: nothing signs the caller's headers, so only those that carry no
// order data and are useful across the hop (who is calling, the trace) are
// kept (README, "The upstream contract"). Everything else is what the
// gateway sets itself; reverse_proxy adds its own X-Forwarded-* and Via.
var headersKeptUpstream = []string{"User-Agent", "Traceparent", "Tracestate"}

// The headers the gateway sets on the upstream request.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerUpstreamClient = "X-Order-Sync-Client-Id"
	headerUpstreamScen   = "X-Order-Sync-Scenario"
)

// upstreamHeader is the header of the upstream request: the allow-listed
// caller headers and the gateway's own.
func upstreamHeader(caller http.Header, clientID, requestID, scenario string) http.Header {
	h := make(http.Header, len(headersKeptUpstream)+5)
	for _, name := range headersKeptUpstream {
		if vs, ok := caller[name]; ok {
			h[name] = slices.Clone(vs)
		}
	}
	// One array for the gateway's values, each slice capped at its own
	// element so that appending to one never writes into the next.
	vals := [4]string{"application/json", idempotencyKey(clientID, requestID), clientID, scenario}
	h["Content-Type"] = vals[0:1:1]
	h[headerIdempotencyKey] = vals[1:2:2]
	h[headerUpstreamClient] = vals[2:3:3]
	h[headerUpstreamScen] = vals[3:4:4]
	return h
}

// clientIDEscaper percent-encodes the two characters that would make an
// Idempotency-Key ambiguous.
var clientIDEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// idempotencyKey is "<clientId>:<requestId>" with % and : in the Client-Id
// percent-encoded (README, "The upstream contract"): the first : always
// separates the two, so no two (Client-Id, requestId) pairs share a key (K
// with X:Y was K:X:Y, as was K:X with Y). The requestId is left as is, so
// the common case reads naturally.
func idempotencyKey(clientID, requestID string) string {
	return clientIDEscaper.Replace(clientID) + ":" + requestID
}

// StatusMap overrides the mapping of upstream HTTP statuses to result
// codes (map_status). Keys are a status ("409") or a class ("5xx").
type StatusMap map[string]Code

// NewStatusMap checks the map_status option: keys that are an HTTP status
// or a class, values that are result codes. Errors name the option.
func NewStatusMap(m map[string]string) (StatusMap, error) {
	sm := make(StatusMap, len(m))
	for key, name := range m {
		if !validStatusKey(key) {
			return nil, errors.New("map_status " + key + ": expected an HTTP status (e.g. 409) or a class (4xx, 5xx)")
		}
		c, ok := LookupCode(name)
		if !ok {
			return nil, errors.New("map_status " + key + ": unknown result code " + strconv.Quote(name) + " (one of " + strings.Join(CodeNames(), ", ") + ")")
		}
		sm[strings.ToLower(key)] = c
	}
	return sm, nil
}

// validStatusKey reports whether key can be a map_status key: an HTTP
// status from 100 to 599, or a class from 1xx to 5xx.
func validStatusKey(key string) bool {
	k := strings.ToLower(key)
	if len(k) == 3 && k[1:] == "xx" && k[0] >= '1' && k[0] <= '5' {
		return true
	}
	n, err := strconv.Atoi(k)
	return err == nil && n >= 100 && n <= 599
}

// codeForStatus is step (c) of the mapping: map_status first, then the
// README's status table.
func (sm StatusMap) codeForStatus(status int) (Code, bool) {
	if len(sm) > 0 {
		if c, ok := sm[strconv.Itoa(status)]; ok {
			return c, true
		}
		if c, ok := sm[strconv.Itoa(status/100)+"xx"]; ok {
			return c, true
		}
	}
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ParamIllegal, true
	case http.StatusConflict:
		return OrderStatusInvalid, true
	case http.StatusNotFound, http.StatusNotImplemented:
		return UnSupportBusiness, true
	case http.StatusTooManyRequests:
		return RequestTrafficExceedLimit, true
	}
	return "", false
}

// MapReply turns what the upstream answered into the outcome of the
// request, by the README's upstream table ("The upstream contract"): a
// known resultCode first, then 2xx with an orderId, then the status table
// (with sm's overrides), and UNKNOWN_EXCEPTION for everything else,
// including any reply that did not end well. orderStatus is the status
// the request asked for, which a SUCCESS envelope carries. reason is the
// short label of the rule that decided, for logs and metrics.
func MapReply(up UpstreamReply, orderStatus string, sm StatusMap) (o Outcome, reason string) {
	unknown := func(reason, msg string) (Outcome, string) {
		return Outcome{Code: UnknownException, Message: msg}, reason
	}
	switch {
	case up.NeverDone || up.TimedOut:
		return unknown("timeout", "upstream: no answer within upstream_timeout; retry later")
	case up.Err != nil && up.Status == 0:
		return unknown("unreachable", "upstream: unreachable or failed; retry later")
	case up.Err != nil:
		// A status line arrived but the reply did not end well (a body
		// shorter than its Content-Length, a chunked body without its
		// last chunk, a reset): what was captured may parse, but it is
		// not the reply the upstream meant to send.
		return unknown("aborted", "upstream: reply cut short or aborted; retry later")
	case up.Status == 0:
		return unknown("no_reply", "upstream: no reply (is reverse_proxy configured after alipay_order_sync?)")
	case up.TooLarge:
		return unknown("too_large", "upstream: reply larger than the capture limit")
	case !utf8.Valid(up.Body):
		// A broken upstream; passed on, its bytes would make a signed
		// envelope that is not UTF-8 JSON (distributeResult is copied).
		return unknown("not_utf8", "upstream: reply is not valid UTF-8")
	}

	parsed, isJSON := parseUpstreamBody(up.Body)
	// (a) a known resultCode wins whatever the HTTP status.
	if isJSON && parsed.code != "" {
		c, known := LookupCode(parsed.code)
		if !known {
			return unknown("unknown_code", "upstream: answered an unknown resultCode")
		}
		if c != Success {
			msg := parsed.message
			if msg == "" {
				msg = "upstream: " + string(c)
			}
			return Outcome{Code: c, Message: msg}, "result_code"
		}
		if parsed.orderID == "" {
			return unknown("no_order_id", "upstream: SUCCESS without orderId")
		}
		return successOutcome(parsed, orderStatus), "result_code"
	}
	// (b) 2xx with orderId.
	if up.Status >= 200 && up.Status < 300 {
		if !isJSON {
			return unknown("not_json", "upstream: reply is not JSON")
		}
		if parsed.orderID == "" {
			return unknown("no_order_id", "upstream: 2xx reply without orderId")
		}
		return successOutcome(parsed, orderStatus), "success"
	}
	// (c) the status table, with map_status overrides.
	if c, ok := sm.codeForStatus(up.Status); ok {
		return Outcome{Code: c, Message: "upstream: HTTP " + strconv.Itoa(up.Status)}, "status"
	}
	// (d) everything else.
	return unknown("status", "upstream: HTTP "+strconv.Itoa(up.Status)+"; retry later")
}

func successOutcome(p parsedReply, orderStatus string) Outcome {
	return Outcome{
		Code:             Success,
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
		// The upstream's array byte for byte (CONTRACT: unchanged): a
		// RawMessage holds the value's own bytes, without the whitespace
		// around it, and Unmarshal has checked that they are JSON.
		p.distributeResult = ub.DistributeResult
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

// flatItem is the Alipay array's item made of a flat success, its keys in
// the order of the Alipay shape (sceneCode, then extInfo); a nil field is
// a key absent in the flat reply, left out.
type flatItem struct {
	SceneCode *string  `json:"sceneCode,omitempty"`
	ExtInfo   *flatExt `json:"extInfo,omitempty"`
}

type flatExt struct {
	BenefitID  *string `json:"benefitId,omitempty"`
	DetailLink *string `json:"detailLink,omitempty"`
}

// flatDistributeResult turns the flat success form into the Alipay array
// (README, "The upstream contract"): [{"sceneCode":…,"extInfo":
// {"benefitId":…,"detailLink":…}}]; keys absent in the flat reply are left
// out.
func flatDistributeResult(ub upstreamBody) json.RawMessage {
	item := flatItem{SceneCode: ub.SceneCode}
	if ub.BenefitID != nil || ub.DetailLink != nil {
		item.ExtInfo = &flatExt{BenefitID: ub.BenefitID, DetailLink: ub.DetailLink}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode([]flatItem{item})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
