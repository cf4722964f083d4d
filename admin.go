package ordersync

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// activeHandlers lists the provisioned handlers, so the admin API (which
// Caddy builds apart from the HTTP app) can reach their stores. Old and new
// configs overlap during a reload; both are listed until the old one is
// cleaned up.
var (
	activeHandlersMu sync.RWMutex
	activeHandlers   = map[*Handler]struct{}{}
)

func registerHandler(h *Handler) {
	activeHandlersMu.Lock()
	activeHandlers[h] = struct{}{}
	activeHandlersMu.Unlock()
}

func unregisterHandler(h *Handler) {
	activeHandlersMu.Lock()
	delete(activeHandlers, h)
	activeHandlersMu.Unlock()
}

func activeStores() []store.Store {
	activeHandlersMu.RLock()
	defer activeHandlersMu.RUnlock()
	// Handlers sharing one bbolt file answer alike; asking each is cheap.
	out := make([]store.Store, 0, len(activeHandlers))
	for h := range activeHandlers {
		out = append(out, h.store)
	}
	return out
}

// AdminAPI adds read-only routes to Caddy's admin endpoint:
//
//	GET /alipay_order_sync/order?client_id=…&merchant_biz_no=…
//	GET /alipay_order_sync/request?client_id=…&request_id=…
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.alipay_order_sync",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/alipay_order_sync/order", Handler: caddy.AdminHandlerFunc(a.handleOrder)},
		{Pattern: "/alipay_order_sync/request", Handler: caddy.AdminHandlerFunc(a.handleRequest)},
	}
}

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

func (a *AdminAPI) handleOrder(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	key := store.OrderKey{ClientID: r.URL.Query().Get("client_id"), MerchantBizNo: r.URL.Query().Get("merchant_biz_no")}
	if key.ClientID == "" || key.MerchantBizNo == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("client_id and merchant_biz_no are required")}
	}
	for _, st := range activeStores() {
		o, err := st.GetOrder(r.Context(), key)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("state store: %v", err)}
		}
		if o != nil {
			return writeJSON(w, OrderView{
				ClientID: key.ClientID, MerchantBizNo: key.MerchantBizNo, Scenario: o.Scenario,
				Status: o.Status, OrderModifyTime: o.ModifyTime, OrderID: o.OrderID,
				DistributeResult: o.DistributeResult, RequestID: o.RequestID,
				LastChange: o.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			})
		}
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such order")}
}

func (a *AdminAPI) handleRequest(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	key := store.RequestKey{ClientID: r.URL.Query().Get("client_id"), RequestID: r.URL.Query().Get("request_id")}
	if key.ClientID == "" || key.RequestID == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("client_id and request_id are required")}
	}
	for _, st := range activeStores() {
		rec, err := st.GetRequest(r.Context(), key)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("state store: %v", err)}
		}
		if rec == nil {
			continue
		}
		view := RequestView{ClientID: key.ClientID, RequestID: key.RequestID, State: "in_flight",
			ExpiresAt: rec.ExpiresAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
		if rec.Done && rec.Reply != nil {
			view.State = "done"
			view.Header = rec.Reply.Header
			if json.Valid(rec.Reply.Body) {
				view.Reply = rec.Reply.Body
			}
		}
		return writeJSON(w, view)
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such request")}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // detailLink URLs stay readable
	return enc.Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
