// Package message is the AlipayHK order-sync request body: its strict
// decode (Decode: one pass of a maintained tokenizer that builds the tree
// the JSON Schema validator walks), the typed Request read from that tree,
// and the normalized body the gateway forwards to the issuing backend
// (README, "The upstream contract"): fixed key order, RFC 3339 UTC times
// with milliseconds, amounts in integer minor units, extInfo passed through
// as received.
//
// The steps are separate so that each caller runs what it needs in the
// order it needs: Decode, then validation (package schema) of Tree, then
// Request. A body posted without a requestId can get one with SetString
// before validation, and Canonical gives the bytes to sign and send.
package message

import "encoding/json"

// maxAmountDigits is the spec's limit on amount.value (docs/SPEC.md §4).
const maxAmountDigits = 64

// Amount is a money value as AlipayHK sends it: integer minor units (cents)
// as a decimal string, and an ISO 4217 currency code.
type Amount struct {
	Value    string
	Currency string
}

// Request is an order-sync request body (docs/SPEC.md §4). Absent string
// fields are "", absent times and amounts are nil.
type Request struct {
	RequestID       string
	MerchantID      string
	MerchantBizNo   string
	MerchantBizType string
	OrderStatus     string
	UserID          string
	OpenID          string
	TradeNo         string
	OrderCreateTime *int64
	OrderModifyTime *int64
	Amount          *Amount
	PayAmount       *Amount
	ExtInfo         string // the raw JSON of extInfo, as received

	ext map[string]any // extInfo's decoded members, for ExtString
}

// Request reads the typed request from a document that passed the base
// schema. Keys match exactly (an extra "RequestId", which the schema
// allows as an unknown field, is not requestId), and JSON null counts as
// absent. The base schema guarantees what this relies on; on a document
// that did not pass it, the error is a *FieldError naming the field.
func (d *Document) Request() (*Request, error) {
	r := &Request{}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"requestId", &r.RequestID},
		{"merchantId", &r.MerchantID},
		{"merchantBizNo", &r.MerchantBizNo},
		{"merchantBizType", &r.MerchantBizType},
		{"orderStatus", &r.OrderStatus},
		{"userId", &r.UserID},
		{"openId", &r.OpenID},
		{"tradeNo", &r.TradeNo},
	} {
		switch v := d.tree[f.key].(type) {
		case string:
			*f.dst = v
		case nil:
		default:
			return nil, NewFieldError(f.key, "must be a string")
		}
	}
	var err error
	if r.OrderCreateTime, err = d.millis("orderCreateTime"); err != nil {
		return nil, err
	}
	if r.OrderModifyTime, err = d.millis("orderModifyTime"); err != nil {
		return nil, err
	}
	if r.Amount, err = d.amount("amount"); err != nil {
		return nil, err
	}
	if r.PayAmount, err = d.amount("payAmount"); err != nil {
		return nil, err
	}
	ext, ok := d.tree["extInfo"].(map[string]any)
	if !ok || d.ext == (span{}) {
		return nil, NewFieldError("extInfo", "must be an object")
	}
	r.ext = ext
	r.ExtInfo = d.src[d.ext.start:d.ext.end]
	return r, nil
}

// millis reads an optional epoch-millisecond time (ParseEpochMillis).
func (d *Document) millis(key string) (*int64, error) {
	switch v := d.tree[key].(type) {
	case nil:
		return nil, nil
	case json.Number:
		ms, err := ParseEpochMillis(string(v))
		if err != nil {
			return nil, NewFieldError(key, err.Error())
		}
		return &ms, nil
	}
	return nil, NewFieldError(key, ErrNotEpochInt.Error())
}

// amount reads an optional amount.
func (d *Document) amount(key string) (*Amount, error) {
	var m map[string]any
	switch v := d.tree[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		m = v
	default:
		return nil, NewFieldError(key, "must be an object")
	}
	value, _ := m["value"].(string)
	if !isDigits(value) {
		return nil, NewFieldError(key+".value", "must be a non-negative integer string of at most 64 digits")
	}
	currency, _ := m["currency"].(string)
	if currency == "" {
		return nil, NewFieldError(key+".currency", "not an ISO 4217 code")
	}
	return &Amount{Value: value, Currency: currency}, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > maxAmountDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ExtString returns a top-level string value of extInfo, for scenario
// matching (match_ext). Non-string values are reported as absent. It reads
// the decoded tree: nothing is parsed again.
func (r *Request) ExtString(key string) (string, bool) {
	s, ok := r.ext[key].(string)
	return s, ok
}

// ModifyTimeMillis returns orderModifyTime, or 0 when the request has none,
// which sorts before any real time in the staleness check.
func (r *Request) ModifyTimeMillis() int64 {
	if r.OrderModifyTime == nil {
		return 0
	}
	return *r.OrderModifyTime
}
