package orderflow

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/caddy-alipay/ordersync/message"
)

// Status is a result's status letter (docs/SPEC.md §5): the caller's
// SDK decides from it alone whether to stop (S, F) or retry (U).
type Status string

// The three status letters.
const (
	StatusSuccess Status = "S" // done; the answer is final
	StatusFailure Status = "F" // refused; the answer is final
	StatusUnknown Status = "U" // not known; retry with the same requestId
)

// Code is an AlipayHK result code. Its status letter is fixed by the code
// (Status); the codes below are the only ones the gateway answers with
// and the only ones it accepts from an upstream.
type Code string

// The result codes (docs/SPEC.md §5; the README's "What the caller gets"
// says which situation gets which).
const (
	Success                   Code = "SUCCESS"
	MethodNotSupported        Code = "METHOD_NOT_SUPPORTED"
	MediaTypeNotAcceptable    Code = "MEDIA_TYPE_NOT_ACCEPTABLE"
	InvalidClient             Code = "INVALID_CLIENT"
	KeyNotFound               Code = "KEY_NOT_FOUND"
	InvalidSignature          Code = "INVALID_SIGNATURE"
	ParamIllegal              Code = "PARAM_ILLEGAL"
	UnSupportBusiness         Code = "UN_SUPPORT_BUSINESS"
	OrderStatusInvalid        Code = "ORDER_STATUS_INVALID"
	UnknownException          Code = "UNKNOWN_EXCEPTION"
	RequestTrafficExceedLimit Code = "REQUEST_TRAFFIC_EXCEED_LIMIT"
)

// statuses is the one table of codes and their letters: LookupCode,
// CodeNames and Code.Status all read it.
var statuses = map[Code]Status{
	Success:                   StatusSuccess,
	MethodNotSupported:        StatusFailure,
	MediaTypeNotAcceptable:    StatusFailure,
	InvalidClient:             StatusFailure,
	KeyNotFound:               StatusFailure,
	InvalidSignature:          StatusFailure,
	ParamIllegal:              StatusFailure,
	UnSupportBusiness:         StatusFailure,
	OrderStatusInvalid:        StatusFailure,
	UnknownException:          StatusUnknown,
	RequestTrafficExceedLimit: StatusUnknown,
}

// codeNames is CodeNames' answer, sorted once.
var codeNames = func() []string {
	names := make([]string, 0, len(statuses))
	for c := range statuses {
		names = append(names, string(c))
	}
	slices.Sort(names)
	return names
}()

// Status returns the code's status letter, or "" for a string that is not
// one of the codes.
func (c Code) Status() Status { return statuses[c] }

// LookupCode returns the code named name, if it is one.
func LookupCode(name string) (Code, bool) {
	c := Code(name)
	_, ok := statuses[c]
	return c, ok
}

// CodeNames returns every code's name, sorted, for messages that list the
// choices (a map_status with an unknown code). The slice is a copy.
func CodeNames() []string { return slices.Clone(codeNames) }

// Outcome is the answer to one request before it is serialized.
type Outcome struct {
	Code    Code
	Message string // resultMessage; cut to message.MaxResultMessageLen in Body
	// The order fields, sent on SUCCESS only.
	OrderID          string
	OrderStatus      string
	DistributeResult json.RawMessage // a JSON array; nil is sent as []
}

// Envelope is the body of every answer (docs/SPEC.md §5; the README's
// "What the caller gets"), as written by Outcome.Body and as read back
// (CodeOf, and AlipayHK's own replies, which have the same shape).
type Envelope struct {
	Result           EnvelopeResult  `json:"result"`
	OrderID          string          `json:"orderId,omitempty"`
	OrderStatus      string          `json:"orderStatus,omitempty"`
	DistributeResult json.RawMessage `json:"distributeResult,omitempty"`
}

// EnvelopeResult is the envelope's result object.
type EnvelopeResult struct {
	ResultCode    string `json:"resultCode"`
	ResultStatus  string `json:"resultStatus"`
	ResultMessage string `json:"resultMessage"`
}

// Body serializes the envelope. Only SUCCESS carries the order fields.
func (o Outcome) Body() []byte {
	env := Envelope{Result: EnvelopeResult{
		ResultCode:    string(o.Code),
		ResultStatus:  string(o.Code.Status()),
		ResultMessage: truncateMessage(o.Message),
	}}
	if o.Code == Success {
		env.OrderID = o.OrderID
		env.OrderStatus = o.OrderStatus
		env.DistributeResult = o.DistributeResult
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

// CodeOf reads the result code back from an envelope, so that a replayed
// answer is counted under what it answers. A body that is not an envelope
// of a known code reads as UnknownException.
func CodeOf(body []byte) Code {
	var env struct {
		Result EnvelopeResult `json:"result"`
	}
	if json.Unmarshal(body, &env) != nil {
		return UnknownException
	}
	if c, ok := LookupCode(env.Result.ResultCode); ok {
		return c
	}
	return UnknownException
}
