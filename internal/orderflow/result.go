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
//
// The bytes are exactly what encoding/json makes of the Envelope with
// HTML escaping off (TestBodyIsEncodingJSON and FuzzBody compare them):
// fields in the struct's order, omitempty, strings escaped as
// encoding/json escapes them; distributeResult is the one exception: it is
// the upstream's bytes unchanged (not compacted, not escaped), or [] when
// it is not valid JSON in valid UTF-8. It is written by hand
// because it is part of every answer, and the encoder's reflection and
// buffers cost more than the rest of the envelope.
func (o Outcome) Body() []byte {
	msg := truncateMessage(o.Message)
	status := o.Code.Status()
	size := len(`{"result":{"resultCode":"","resultStatus":"","resultMessage":""}}`) + len(o.Code) + len(status) + len(msg) + 16
	if o.Code == Success {
		size += len(`,"orderId":"","orderStatus":"","distributeResult":`) + len(o.OrderID) + len(o.OrderStatus) + max(len(o.DistributeResult), 2)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"result":{"resultCode":`...)
	b = appendJSONString(b, string(o.Code))
	b = append(b, `,"resultStatus":`...)
	b = appendJSONString(b, string(status))
	b = append(b, `,"resultMessage":`...)
	b = appendJSONString(b, msg)
	b = append(b, '}')
	if o.Code == Success {
		if o.OrderID != "" {
			b = append(b, `,"orderId":`...)
			b = appendJSONString(b, o.OrderID)
		}
		if o.OrderStatus != "" {
			b = append(b, `,"orderStatus":`...)
			b = appendJSONString(b, o.OrderStatus)
		}
		b = append(b, `,"distributeResult":`...)
		b = appendRawArray(b, o.DistributeResult)
	}
	return append(b, '}')
}

// appendRawArray appends raw as it is, or [] when raw is empty, not valid
// JSON or not valid UTF-8 (the fallback of Body: the upstream's reply was
// checked when captured).
func appendRawArray(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 || !json.Valid(raw) || !utf8.Valid(raw) {
		return append(b, "[]"...)
	}
	return append(b, raw...)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it with HTML escaping off: " and \ escaped, \b \f \n \r \t
// short, other control characters as \u00XX, invalid UTF-8 as \ufffd,
// U+2028 and U+2029 escaped, everything else as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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

// storedCode is CodeOf for a reply this gateway made (Body), as the replay
// store holds them: Body writes the code first, so it is read from there
// without decoding the envelope. A body that does not start as Body's do
// is read by CodeOf.
func storedCode(body []byte) Code {
	if rest, ok := bytes.CutPrefix(body, []byte(`{"result":{"resultCode":"`)); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			if c, ok := LookupCode(string(rest[:end])); ok {
				return c
			}
		}
	}
	return CodeOf(body)
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
