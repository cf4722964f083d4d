// Package adminapi is the wire contract of the module's routes on Caddy's
// admin endpoint: their paths, query parameters, not-found answers and JSON
// views. The routes (admin.go at the module root) and the CLI that calls
// them (internal/cli) both use it, so the two cannot drift apart. It imports
// nothing from Caddy.
package adminapi

import (
	"encoding/json"
	"net/url"
	"strings"
)

// Routes, read-only (GET).
const (
	// OrderRoute answers an OrderView for ParamClientID and
	// ParamMerchantBizNo.
	OrderRoute = "/alipay_order_sync/order"
	// RequestRoute answers a RequestView for ParamClientID and
	// ParamRequestID.
	RequestRoute = "/alipay_order_sync/request"
)

// Query parameters of the routes.
const (
	ParamClientID      = "client_id"
	ParamMerchantBizNo = "merchant_biz_no"
	ParamRequestID     = "request_id"
)

// Error texts of a 404 from OrderRoute and RequestRoute, in Caddy's
// {"error": "..."} body. The CLI turns exactly these into its own error so
// that scripts can test for them; any other 404 (a Caddy without this
// module) stays an admin failure.
const (
	NoSuchOrder   = "no such order"
	NoSuchRequest = "no such request"
)

// OrderView is the admin API's view of one order.
type OrderView struct {
	ClientID         string          `json:"clientId"`
	MerchantBizNo    string          `json:"merchantBizNo"`
	Scenario         string          `json:"scenario"`
	Status           string          `json:"orderStatus"`
	OrderModifyTime  int64           `json:"orderModifyTime"`
	OrderID          string          `json:"orderId"`
	DistributeResult json.RawMessage `json:"distributeResult,omitempty"`
	RequestID        string          `json:"lastRequestId"`
	LastChange       string          `json:"lastChange"`
}

// RequestView is the admin API's view of one replay record.
type RequestView struct {
	ClientID  string              `json:"clientId"`
	RequestID string              `json:"requestId"`
	State     string              `json:"state"` // in_flight or done
	ExpiresAt string              `json:"expiresAt"`
	Header    map[string][]string `json:"header,omitempty"`
	Reply     json.RawMessage     `json:"reply,omitempty"`
}

// The egress handler's routes (alipay_order_push). Their path parameters
// are path segments, each escaped with url.PathEscape (PushPath builds the
// path): ids may hold any character, "/" included.
//
//	GET  /alipay_order_push/entry/<client_id>/<requestId>          PushEntryView
//	GET  /alipay_order_push/lane/<client_id>/<merchantBizNo>       PushLaneView
//	GET  /alipay_order_push/entries/<client_id>?state=&limit=      PushListView
//	POST /alipay_order_push/entry/<client_id>/<requestId>/retry    PushActionView
//	POST /alipay_order_push/entry/<client_id>/<requestId>/drop     PushActionView
//
// The two POST routes change state: they are the operator's retry and drop,
// which can only reach a running Caddy's outbox (and wake its delivery)
// through its admin endpoint.
const (
	// PushRoute is the prefix of every egress route.
	PushRoute = "/alipay_order_push/"

	PushEntry   = "entry"
	PushLane    = "lane"
	PushEntries = "entries"
	PushRetry   = "retry"
	PushDrop    = "drop"

	// ParamState and ParamLimit filter PushEntries.
	ParamState = "state"
	ParamLimit = "limit"
	// DefaultListLimit is the number of entries PushEntries returns when
	// no limit is given; MaxListLimit the most it returns.
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Error texts of a 404 from the egress routes.
const (
	NoSuchEntry  = "no such outbox entry"
	NoSuchClient = "no alipay_order_push handler delivers for this client_id"
)

// PushPath builds an egress route's path from its segments:
// PushPath(PushEntry, clientID, requestID[, PushRetry]).
func PushPath(segments ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(PushRoute, "/"))
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// PushEntryView is the admin API's view of one outbox entry: the entry the
// legacy system reads, plus what an operator needs (never the body).
type PushEntryView struct {
	ClientID        string `json:"clientId"`
	RequestID       string `json:"requestId"`
	MerchantBizNo   string `json:"merchantBizNo"`
	Scenario        string `json:"scenario"`
	OrderStatus     string `json:"orderStatus"`
	OrderModifyTime int64  `json:"orderModifyTime,omitempty"`
	State           string `json:"state"`
	Attempts        int    `json:"attempts"`
	CreatedAt       string `json:"createdAt"`
	// QueuedAt is when it last joined its lane (max_age counts from it).
	QueuedAt      string `json:"queuedAt"`
	UpdatedAt     string `json:"updatedAt"`
	NextAttemptAt string `json:"nextAttemptAt,omitempty"`
	LastError     string `json:"lastError"`
	// ExpiresAt is when a final entry is forgotten.
	ExpiresAt string `json:"expiresAt,omitempty"`
	// Reply is AlipayHK's final envelope, once there is one.
	Reply    json.RawMessage   `json:"reply,omitempty"`
	Callback *PushCallbackView `json:"callback,omitempty"`
}

// PushCallbackView is an entry's callback, when one was scheduled.
type PushCallbackView struct {
	Pending       bool   `json:"pending"`
	WebhookID     string `json:"webhookId"`
	Attempts      int    `json:"attempts"`
	NextAttemptAt string `json:"nextAttemptAt,omitempty"`
	LastError     string `json:"lastError,omitempty"`
}

// PushLaneView is one order's lane: what AlipayHK last accepted, and the
// entries queued after it, in delivery order.
type PushLaneView struct {
	ClientID      string            `json:"clientId"`
	MerchantBizNo string            `json:"merchantBizNo"`
	Version       uint64            `json:"version"`
	Accepted      *PushAcceptedView `json:"accepted"`
	Queued        []PushEntryView   `json:"queued"`
}

// PushAcceptedView is a lane's last state AlipayHK accepted.
type PushAcceptedView struct {
	Scenario         string          `json:"scenario"`
	OrderStatus      string          `json:"orderStatus"`
	OrderModifyTime  int64           `json:"orderModifyTime,omitempty"`
	OrderID          string          `json:"orderId"`
	DistributeResult json.RawMessage `json:"distributeResult,omitempty"`
	RequestID        string          `json:"requestId"`
	UpdatedAt        string          `json:"updatedAt"`
}

// PushListView is a list of a client's entries.
type PushListView struct {
	ClientID string          `json:"clientId"`
	State    string          `json:"state,omitempty"`
	Entries  []PushEntryView `json:"entries"`
}

// PushActionView is what an operator action changed: the action taken
// (retry, requeue, drop), a sentence saying what changed, and the entry
// as it is now.
type PushActionView struct {
	Action  string        `json:"action"`
	Changed string        `json:"changed"`
	Entry   PushEntryView `json:"entry"`
}
