package message

import "github.com/go-json-experiment/json/jsontext"

// Normalize returns the body forwarded to the upstream (README, "The
// upstream contract"), keys in this order: requestId, clientId, scenario, merchantId, merchantBizNo,
// merchantBizType, orderStatus, previousStatus, userId, openId, tradeNo,
// orderCreateTime, orderModifyTime, amount, payAmount, extInfo.
//
// String fields are always present ("" when absent; previousStatus is ""
// on an order's first sync); absent times and amounts are omitted. Times
// are YYYY-MM-DDTHH:MM:SS.mmmZ in UTC. Amounts become
// {"cents":<integer>,"currency":"<code>"}, the digits copied with leading
// zeros removed. extInfo is copied byte for byte as received (the README
// promises it), which is why the members are appended here rather than written
// through a jsontext.Encoder: its WriteValue reformats whitespace. Strings
// are quoted by jsontext.
//
// The output is built by appending into one buffer sized up front: this
// runs on every forwarded request.
func (r *Request) Normalize(clientID, scenario, previousStatus string) []byte {
	n := 384 + len(r.RequestID) + len(clientID) + len(scenario) + len(r.MerchantID) +
		len(r.MerchantBizNo) + len(r.MerchantBizType) + len(r.OrderStatus) +
		len(previousStatus) + len(r.UserID) + len(r.OpenID) + len(r.TradeNo) + len(r.ExtInfo)
	b := make([]byte, 0, n)
	b = append(b, `{"requestId":`...)
	b = appendString(b, r.RequestID)
	b = append(b, `,"clientId":`...)
	b = appendString(b, clientID)
	b = append(b, `,"scenario":`...)
	b = appendString(b, scenario)
	b = append(b, `,"merchantId":`...)
	b = appendString(b, r.MerchantID)
	b = append(b, `,"merchantBizNo":`...)
	b = appendString(b, r.MerchantBizNo)
	b = append(b, `,"merchantBizType":`...)
	b = appendString(b, r.MerchantBizType)
	b = append(b, `,"orderStatus":`...)
	b = appendString(b, r.OrderStatus)
	b = append(b, `,"previousStatus":`...)
	b = appendString(b, previousStatus)
	b = append(b, `,"userId":`...)
	b = appendString(b, r.UserID)
	b = append(b, `,"openId":`...)
	b = appendString(b, r.OpenID)
	b = append(b, `,"tradeNo":`...)
	b = appendString(b, r.TradeNo)
	if r.OrderCreateTime != nil {
		b = append(b, `,"orderCreateTime":`...)
		b = appendTime(b, *r.OrderCreateTime)
	}
	if r.OrderModifyTime != nil {
		b = append(b, `,"orderModifyTime":`...)
		b = appendTime(b, *r.OrderModifyTime)
	}
	if r.Amount != nil {
		b = append(b, `,"amount":`...)
		b = appendAmount(b, r.Amount)
	}
	if r.PayAmount != nil {
		b = append(b, `,"payAmount":`...)
		b = appendAmount(b, r.PayAmount)
	}
	b = append(b, `,"extInfo":`...)
	if r.ExtInfo == "" {
		b = append(b, "{}"...) // only a hand-built Request lacks it; keep the body valid
	} else {
		b = append(b, r.ExtInfo...)
	}
	return append(b, '}')
}

func appendAmount(b []byte, a *Amount) []byte {
	b = append(b, `{"cents":`...)
	if isDigits(a.Value) {
		// The digits are copied rather than parsed: 64 digits overflow any
		// machine integer, and a JSON number may have as many as it likes.
		v := a.Value
		for len(v) > 1 && v[0] == '0' {
			v = v[1:]
		}
		b = append(b, v...)
	} else {
		// Not from Request: a string keeps the body valid JSON and makes
		// the upstream fail loudly instead of reading a wrong number.
		b = appendString(b, a.Value)
	}
	b = append(b, `,"currency":`...)
	b = appendString(b, a.Currency)
	return append(b, '}')
}

// appendString writes s as a JSON string with jsontext's escaping, the
// minimal form of RFC 8785: quote, backslash and control characters
// escaped, everything else (U+2028 and U+2029 included: this is not
// embedded in JavaScript) as is. Invalid UTF-8, which a decoded body
// cannot contain but a Client-Id header under insecure_skip_verify can,
// becomes U+FFFD; the error saying so is dropped because the output is
// valid JSON either way.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}
