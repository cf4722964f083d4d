package ordersync

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// resultCode is one AlipayHK result code with its status letter.
type resultCode struct {
	Code   string
	Status string // S, F or U
}

// The result codes the gateway answers with (docs/SPEC.md §5; the README's
// "What the caller gets" says which situation gets which).
var (
	codeSuccess            = resultCode{"SUCCESS", "S"}
	codeMethodNotSupported = resultCode{"METHOD_NOT_SUPPORTED", "F"}
	codeMediaType          = resultCode{"MEDIA_TYPE_NOT_ACCEPTABLE", "F"}
	codeInvalidClient      = resultCode{"INVALID_CLIENT", "F"}
	codeKeyNotFound        = resultCode{"KEY_NOT_FOUND", "F"}
	codeInvalidSignature   = resultCode{"INVALID_SIGNATURE", "F"}
	codeParamIllegal       = resultCode{"PARAM_ILLEGAL", "F"}
	codeUnsupported        = resultCode{"UN_SUPPORT_BUSINESS", "F"}
	codeOrderStatus        = resultCode{"ORDER_STATUS_INVALID", "F"}
	codeUnknown            = resultCode{"UNKNOWN_EXCEPTION", "U"}
	codeTrafficExceed      = resultCode{"REQUEST_TRAFFIC_EXCEED_LIMIT", "U"}
)

var knownCodes = map[string]resultCode{}

func init() {
	for _, rc := range []resultCode{codeSuccess, codeMethodNotSupported, codeMediaType, codeInvalidClient,
		codeKeyNotFound, codeInvalidSignature, codeParamIllegal, codeUnsupported, codeOrderStatus,
		codeUnknown, codeTrafficExceed} {
		knownCodes[rc.Code] = rc
	}
}

func lookupResultCode(code string) (resultCode, bool) {
	rc, ok := knownCodes[code]
	return rc, ok
}

func resultCodeNames() []string {
	names := make([]string, 0, len(knownCodes))
	for name := range knownCodes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// outcome is the answer to one request before it is serialized.
type outcome struct {
	code             resultCode
	message          string
	orderID          string
	orderStatus      string
	distributeResult json.RawMessage
}

type envelopeResult struct {
	ResultCode    string `json:"resultCode"`
	ResultStatus  string `json:"resultStatus"`
	ResultMessage string `json:"resultMessage"`
}

type envelope struct {
	Result           envelopeResult  `json:"result"`
	OrderID          string          `json:"orderId,omitempty"`
	OrderStatus      string          `json:"orderStatus,omitempty"`
	DistributeResult json.RawMessage `json:"distributeResult,omitempty"`
}

// body serializes the envelope. Only SUCCESS carries the order fields.
func (o outcome) body() []byte {
	env := envelope{Result: envelopeResult{
		ResultCode:    o.code.Code,
		ResultStatus:  o.code.Status,
		ResultMessage: truncateMessage(o.message),
	}}
	if o.code == codeSuccess {
		env.OrderID = o.orderID
		env.OrderStatus = o.orderStatus
		env.DistributeResult = o.distributeResult
		if len(env.DistributeResult) == 0 {
			env.DistributeResult = json.RawMessage("[]")
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		// Only a malformed distributeResult can fail here, and it was
		// validated as JSON when captured; fall back to a bare envelope.
		env.DistributeResult = json.RawMessage("[]")
		buf.Reset()
		_ = enc.Encode(env)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// truncateMessage keeps resultMessage within its cap (docs/SPEC.md §5),
// the same message.MaxResultMessageLen the field errors are bounded by.
func truncateMessage(s string) string {
	if len(s) <= message.MaxResultMessageLen {
		return s
	}
	s = s[:message.MaxResultMessageLen]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// The gateway's own reply headers, named as they go on the wire: in
// lowercase, as AlipayHK sends them. The official SDKs read these names, and
// one of them compares them case-sensitively on HTTP/1.1, so they are set as
// header map keys directly: Header.Set would canonicalize them to
// Response-Time and break that SDK. Content-Type keeps Go's spelling.
const (
	headerSignature    = "signature"
	headerResponseTime = "response-time"
	headerClientID     = "client-id"
	headerTracerID     = "tracer-id"
	headerContentType  = "Content-Type"
)

// wireHeaderNames maps the canonical spelling of each reply header to its
// wire name. Replies stored by earlier versions carry canonical names; a
// replay goes out under the wire names all the same.
var wireHeaderNames = map[string]string{
	http.CanonicalHeaderKey(headerSignature):    headerSignature,
	http.CanonicalHeaderKey(headerResponseTime): headerResponseTime,
	http.CanonicalHeaderKey(headerClientID):     headerClientID,
	http.CanonicalHeaderKey(headerTracerID):     headerTracerID,
	http.CanonicalHeaderKey(headerContentType):  headerContentType,
}

// wireHeaderName is the name a stored or built reply header is written
// under; names the gateway does not own are written as stored.
func wireHeaderName(name string) string {
	if wire, ok := wireHeaderNames[http.CanonicalHeaderKey(name)]; ok {
		return wire
	}
	return name
}

// reply turns an outcome into the exact bytes and headers sent to the
// caller; the same value is what the replay store keeps, under the same
// (wire) header names.
func (h *Handler) reply(r *http.Request, clientID string, o outcome) store.Reply {
	body := o.body()
	now := time.Now()
	respTime := signature.FormatTime(now)
	header := map[string][]string{
		headerContentType:  {"application/json; charset=UTF-8"},
		headerResponseTime: {respTime},
	}
	if clientID != "" {
		header[headerClientID] = []string{clientID}
	}
	if h.signer != nil {
		sig, err := signature.Sign(h.signer.key, r.Method, signedPath(r), clientID, respTime, body)
		if err == nil {
			header[headerSignature] = []string{signature.FormatHeader(h.signer.keyVersion, sig)}
		} else {
			h.logger.Error("signing the response failed", zap.Error(err))
		}
	}
	return store.Reply{Status: http.StatusOK, Header: header, Body: body}
}

// writeReply writes a reply (fresh or replayed) with a new Tracer-Id. Every
// header the gateway owns goes out under its wire name, whatever spelling
// the stored reply has, and never twice under two spellings.
func writeReply(w http.ResponseWriter, rep store.Reply, tracerID string) {
	hdr := w.Header()
	for canonical, wire := range wireHeaderNames {
		if canonical != wire {
			delete(hdr, canonical)
		}
	}
	for k, v := range rep.Header {
		hdr[wireHeaderName(k)] = append([]string(nil), v...)
	}
	if tracerID != "" {
		hdr[headerTracerID] = []string{tracerID}
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(rep.Body)
}
