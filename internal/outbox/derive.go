package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/caddy-alipay/ordersync/message"
)

// DeriveRequestID is the requestId of an order posted without one (the
// package documentation states the rule): the first 32 lowercase hex
// characters of SHA-256 over merchantBizNo, "\n", orderStatus, "\n" and
// orderModifyTime in decimal epoch milliseconds ("" when absent). Pass
// orderModifyTime as a pointer: nil is absent, which is not the same as 0.
func DeriveRequestID(merchantBizNo, orderStatus string, orderModifyTime *int64) string {
	h := sha256.New()
	h.Write([]byte(merchantBizNo))
	h.Write([]byte{'\n'})
	h.Write([]byte(orderStatus))
	h.Write([]byte{'\n'})
	if orderModifyTime != nil {
		h.Write(strconv.AppendInt(nil, *orderModifyTime, 10))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// deriveFrom reads the three fields from a decoded body that has not been
// validated yet: a field that is absent or of the wrong type counts as
// absent (validation then refuses the body anyway).
func deriveFrom(doc *message.Document) string {
	bizNo, _ := doc.String("merchantBizNo")
	status, _ := doc.String("orderStatus")
	var modified *int64
	if tree, ok := doc.Tree().(map[string]any); ok {
		if n, ok := tree["orderModifyTime"].(json.Number); ok {
			if ms, err := message.ParseEpochMillis(string(n)); err == nil {
				modified = &ms
			}
		}
	}
	return DeriveRequestID(bizNo, status, modified)
}

// requestIDAbsent reports whether the body has no requestId: absent, or
// JSON null. Any other value is the caller's, and validation judges it.
func requestIDAbsent(doc *message.Document) bool {
	tree, ok := doc.Tree().(map[string]any)
	if !ok {
		return false
	}
	v, present := tree["requestId"]
	return !present || v == nil
}
