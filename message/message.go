// Package message is the typed AlipayHK order-sync request and the
// normalized body the gateway forwards to the issuing backend (README, "The
// upstream contract"):
// fixed key order, RFC 3339 UTC times with milliseconds, amounts in integer
// minor units, extInfo passed through as received.
//
// Parse expects a body that already passed schema validation; it re-checks
// only what Normalize relies on to emit valid JSON.
package message

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxMillis is the latest epoch-millisecond time accepted,
// 9999-12-31T23:59:59.999Z, so a normalized time always has a four-digit
// year. The base schema enforces the same bound.
const MaxMillis = 253402300799999

// maxAmountDigits is the spec's limit on amount.value (docs/SPEC.md §4).
const maxAmountDigits = 64

// Amount is a money value as AlipayHK sends it: integer minor units (cents)
// as a decimal string, and an ISO 4217 currency code.
type Amount struct {
	Value    string `json:"value"`
	Currency string `json:"currency"`
}

// Request is an order-sync request body (docs/SPEC.md §4). Absent string
// fields are "", absent times and amounts are nil. A Request is built by
// Parse and passed by pointer: it holds a sync.Once for the extInfo cache.
type Request struct {
	RequestID       string          `json:"requestId"`
	MerchantID      string          `json:"merchantId"`
	MerchantBizNo   string          `json:"merchantBizNo"`
	MerchantBizType string          `json:"merchantBizType"`
	OrderStatus     string          `json:"orderStatus"`
	UserID          string          `json:"userId"`
	OpenID          string          `json:"openId"`
	TradeNo         string          `json:"tradeNo"`
	OrderCreateTime *int64          `json:"orderCreateTime,omitempty"`
	OrderModifyTime *int64          `json:"orderModifyTime,omitempty"`
	Amount          *Amount         `json:"amount,omitempty"`
	PayAmount       *Amount         `json:"payAmount,omitempty"`
	ExtInfo         json.RawMessage `json:"extInfo"` // as received

	extOnce sync.Once
	ext     map[string]string // top-level string values of ExtInfo
}

// Parse builds a Request from a body that passed schema validation.
//
// Keys are matched exactly. encoding/json's case-insensitive matching would
// let an extra "RequestId" (allowed by the schema as an unknown field)
// override the validated "requestId", so Parse walks the top-level object
// itself: one validity check, then substrings of a single copy of the body.
// Times must be plain integer literals within [0, MaxMillis], as the base
// schema's epoch-millis format requires. A repeated key keeps its last
// value, as in encoding/json; schema.Decode rejects such bodies before
// Parse is reached. Errors name the field, never the value.
func Parse(raw []byte) (*Request, error) {
	if !json.Valid(raw) {
		return nil, errors.New("message: body is not valid JSON")
	}
	body := string(raw) // the one copy; the Request's strings share it
	it, ok := newObjectIter(body)
	if !ok {
		return nil, errors.New("message: body is not a JSON object")
	}
	r := &Request{}
	var ext string
	for {
		key, val, more := it.next()
		if !more {
			break
		}
		var dst *string
		switch key {
		case "requestId":
			dst = &r.RequestID
		case "merchantId":
			dst = &r.MerchantID
		case "merchantBizNo":
			dst = &r.MerchantBizNo
		case "merchantBizType":
			dst = &r.MerchantBizType
		case "orderStatus":
			dst = &r.OrderStatus
		case "userId":
			dst = &r.UserID
		case "openId":
			dst = &r.OpenID
		case "tradeNo":
			dst = &r.TradeNo
		case "orderCreateTime", "orderModifyTime":
			ms, err := parseMillis(val)
			if err != nil {
				return nil, fieldErr(key, err.Error())
			}
			if key == "orderCreateTime" {
				r.OrderCreateTime = ms
			} else {
				r.OrderModifyTime = ms
			}
		case "amount", "payAmount":
			a, err := parseAmount(key, val)
			if err != nil {
				return nil, err
			}
			if key == "amount" {
				r.Amount = a
			} else {
				r.PayAmount = a
			}
		case "extInfo":
			ext = val
		}
		if dst != nil {
			s, err := decodeString(val)
			if err != nil {
				return nil, fieldErr(key, "must be a string")
			}
			*dst = s
		}
	}
	if len(ext) == 0 || ext[0] != '{' {
		return nil, fieldErr("extInfo", "must be an object")
	}
	r.ExtInfo = json.RawMessage(ext)
	return r, nil
}

// fieldErr names the field and rule, never the value, like schema errors.
func fieldErr(field, rule string) error {
	return errors.New("message: " + field + ": " + rule)
}

// decodeString decodes a JSON string token (null counts as absent, as in
// encoding/json). Most values have no escapes and are valid UTF-8: they are
// returned as a substring of the token.
func decodeString(v string) (string, error) {
	if v == "null" {
		return "", nil
	}
	if len(v) < 2 || v[0] != '"' {
		return "", errors.New("not a string")
	}
	inner := v[1 : len(v)-1]
	if strings.IndexByte(inner, '\\') < 0 && utf8.ValidString(inner) {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return "", err
	}
	return s, nil
}

// parseMillis reads an optional epoch-millisecond time with the base
// schema's epoch-millis rule: a plain integer literal in [0, MaxMillis].
func parseMillis(v string) (*int64, error) {
	if v == "null" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if isIntegerLiteral(v) {
			return nil, errors.New("must be between 0 and 253402300799999 (epoch milliseconds)")
		}
		return nil, errors.New("must be an integer (epoch milliseconds)")
	}
	if n < 0 || n > MaxMillis {
		return nil, errors.New("must be between 0 and 253402300799999 (epoch milliseconds)")
	}
	return &n, nil
}

// isIntegerLiteral tells an out-of-range integer from a non-integer.
func isIntegerLiteral(v string) bool {
	return isDigitRun(strings.TrimPrefix(v, "-"))
}

func isDigitRun(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseAmount reads an optional amount; field prefixes its errors.
func parseAmount(field, v string) (*Amount, error) {
	if v == "null" {
		return nil, nil
	}
	it, ok := newObjectIter(v)
	if !ok {
		return nil, fieldErr(field, "must be an object")
	}
	var value, cur string
	var hasValue, hasCur bool
	for {
		key, val, more := it.next()
		if !more {
			break
		}
		switch key {
		case "value":
			value, hasValue = val, true
		case "currency":
			cur, hasCur = val, true
		}
	}
	a := &Amount{}
	var err error
	if a.Value, err = decodeString(value); err != nil || !hasValue || !isDigits(a.Value) {
		return nil, fieldErr(field+".value", "must be a non-negative integer string of at most 64 digits")
	}
	if a.Currency, err = decodeString(cur); err != nil || !hasCur || a.Currency == "" {
		return nil, fieldErr(field+".currency", "not an ISO 4217 code")
	}
	return a, nil
}

func isDigits(s string) bool {
	return len(s) <= maxAmountDigits && isDigitRun(s)
}

// ExtString returns a top-level string value of extInfo, for scenario
// matching (match_ext). Non-string values are reported as absent. The
// decoded map is built on first use and cached; it is safe for concurrent
// callers.
func (r *Request) ExtString(key string) (string, bool) {
	r.extOnce.Do(r.decodeExt)
	s, ok := r.ext[key]
	return s, ok
}

func (r *Request) decodeExt() {
	if !json.Valid(r.ExtInfo) {
		return
	}
	it, ok := newObjectIter(string(r.ExtInfo))
	if !ok {
		return
	}
	r.ext = make(map[string]string)
	for {
		key, val, more := it.next()
		if !more {
			return
		}
		if len(val) == 0 || val[0] != '"' {
			continue
		}
		if s, err := decodeString(val); err == nil {
			r.ext[key] = s
		}
	}
}

// ModifyTimeMillis returns orderModifyTime, or 0 when the request has none,
// which sorts before any real time in the staleness check.
func (r *Request) ModifyTimeMillis() int64 {
	if r.OrderModifyTime == nil {
		return 0
	}
	return *r.OrderModifyTime
}
