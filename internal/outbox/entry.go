package outbox

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/store"
)

// EntryView is an entry as the legacy system reads it: the body of a 202,
// of a lookup and of a callback. Every key is always present; a value the
// entry does not have yet is null (nextAttemptAt of a final entry, reply
// of an entry without AlipayHK's final answer) or "" (lastError).
type EntryView struct {
	RequestID     string           `json:"requestId"`
	MerchantBizNo string           `json:"merchantBizNo"`
	OrderStatus   string           `json:"orderStatus"`
	State         store.EntryState `json:"state"`
	Attempts      int              `json:"attempts"`
	CreatedAt     string           `json:"createdAt"`
	UpdatedAt     string           `json:"updatedAt"`
	// NextAttemptAt is when a queued entry is due (it may still wait for
	// the entries before it in its lane); null once final.
	NextAttemptAt *string `json:"nextAttemptAt"`
	LastError     string  `json:"lastError"`
	// Reply is AlipayHK's envelope as a JSON value, for an entry that ended
	// with its final answer; null otherwise.
	Reply json.RawMessage `json:"reply"`
}

// View returns e as the legacy system reads it.
func View(e *store.Entry) EntryView {
	v := EntryView{
		RequestID:     e.RequestID,
		MerchantBizNo: e.MerchantBizNo,
		OrderStatus:   e.OrderStatus,
		State:         e.State,
		Attempts:      e.Attempts,
		CreatedAt:     FormatTime(e.CreatedAt),
		UpdatedAt:     FormatTime(e.UpdatedAt),
		LastError:     e.LastError,
	}
	if e.State == store.EntryQueued {
		next := FormatTime(e.NextAttemptAt)
		v.NextAttemptAt = &next
	}
	if e.Reply != nil && json.Valid(e.Reply.Body) {
		// Valid always: a reply is final only once it parsed. Checked
		// anyway so that a damaged record cannot break the whole view.
		v.Reply = json.RawMessage(e.Reply.Body)
	}
	return v
}

// JSON returns the view's JSON.
func (v EntryView) JSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only Reply could fail, and it was checked.
		v.Reply = nil
		buf.Reset()
		_ = enc.Encode(v)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// EntryJSON is View(e).JSON().
func EntryJSON(e *store.Entry) []byte { return View(e).JSON() }

// FormatTime writes an entry's time as the gateway writes every time
// (message.TimeLayout: RFC 3339, UTC, three fractional digits), and the
// zero time as "" (not yet, or no longer).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return message.FormatTime(t)
}
