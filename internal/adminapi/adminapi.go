// Package adminapi is the wire contract of the module's routes on Caddy's
// admin endpoint: their paths, query parameters, not-found answers and JSON
// views. The routes (admin.go at the module root) and the CLI that calls
// them (internal/cli) both use it, so the two cannot drift apart. It imports
// nothing from Caddy.
package adminapi

import "encoding/json"

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
