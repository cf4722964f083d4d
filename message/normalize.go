package message

import (
	"time"
	"unicode/utf8"
)

// timeLayout is the form the upstream is promised: always three fractional
// digits, always "Z" (time.RFC3339Nano would drop trailing zeros).
const timeLayout = "2006-01-02T15:04:05.000Z"

// Normalize returns the body forwarded to the upstream (README, "The
// upstream contract"), keys
// in this order: requestId, clientId, scenario, merchantId, merchantBizNo,
// merchantBizType, orderStatus, previousStatus, userId, openId, tradeNo,
// orderCreateTime, orderModifyTime, amount, payAmount, extInfo.
//
// String fields are always present ("" when absent; previousStatus is ""
// on an order's first sync); absent times and amounts are omitted. Times
// are YYYY-MM-DDTHH:MM:SS.mmmZ in UTC. Amounts become
// {"cents":<integer>,"currency":"<code>"}, the digits copied with leading
// zeros removed rather than parsed, since 64 digits overflow any machine
// integer. extInfo is copied byte for byte as received.
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
	if len(r.ExtInfo) == 0 {
		b = append(b, "{}"...) // only a hand-built Request lacks it; keep the body valid
	} else {
		b = append(b, r.ExtInfo...)
	}
	return append(b, '}')
}

func appendTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = time.UnixMilli(ms).UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

func appendAmount(b []byte, a *Amount) []byte {
	b = append(b, `{"cents":`...)
	if isDigits(a.Value) {
		v := a.Value
		for len(v) > 1 && v[0] == '0' {
			v = v[1:]
		}
		b = append(b, v...)
	} else {
		// Not from Parse: a string keeps the body valid JSON and makes the
		// upstream fail loudly instead of reading a wrong number.
		b = appendString(b, a.Value)
	}
	b = append(b, `,"currency":`...)
	b = appendString(b, a.Currency)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string with encoding/json's escaping minus
// HTML escaping: quote, backslash and control characters escaped, U+2028
// and U+2029 escaped (they end lines in JavaScript), invalid UTF-8 replaced
// by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
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
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
