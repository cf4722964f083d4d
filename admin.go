package ordersync

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
	"github.com/caddy-alipay/ordersync/signature"
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

func activeStores() []*store.Store {
	activeHandlersMu.RLock()
	defer activeHandlersMu.RUnlock()
	// Handlers sharing one bbolt file answer alike; asking each is cheap.
	out := make([]*store.Store, 0, len(activeHandlers))
	for h := range activeHandlers {
		out = append(out, h.store)
	}
	return out
}

// AdminAPI adds read-only routes to Caddy's admin endpoint:
//
//	GET /alipay_order_sync/order?client_id=…&merchant_biz_no=…
//	GET /alipay_order_sync/request?client_id=…&request_id=…
//
// Their paths, parameters and views are in internal/adminapi, shared with
// the CLI that calls them.
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
		{Pattern: adminapi.OrderRoute, Handler: caddy.AdminHandlerFunc(a.handleOrder)},
		{Pattern: adminapi.RequestRoute, Handler: caddy.AdminHandlerFunc(a.handleRequest)},
	}
}

func (a *AdminAPI) handleOrder(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	q := r.URL.Query()
	key := store.OrderKey{ClientID: q.Get(adminapi.ParamClientID), MerchantBizNo: q.Get(adminapi.ParamMerchantBizNo)}
	if key.ClientID == "" || key.MerchantBizNo == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("client_id and merchant_biz_no are required")}
	}
	for _, st := range activeStores() {
		o, err := st.GetOrder(r.Context(), key)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("state store: %v", err)}
		}
		if o != nil {
			return writeJSON(w, adminapi.OrderView{
				ClientID: key.ClientID, MerchantBizNo: key.MerchantBizNo, Scenario: o.Scenario,
				Status: o.Status, OrderModifyTime: o.ModifyTime, OrderID: o.OrderID,
				DistributeResult: o.DistributeResult, RequestID: o.RequestID,
				LastChange: signature.FormatTime(o.UpdatedAt),
			})
		}
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New(adminapi.NoSuchOrder)}
}

func (a *AdminAPI) handleRequest(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	q := r.URL.Query()
	key := store.RequestKey{ClientID: q.Get(adminapi.ParamClientID), RequestID: q.Get(adminapi.ParamRequestID)}
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
		view := adminapi.RequestView{ClientID: key.ClientID, RequestID: key.RequestID, State: "in_flight",
			ExpiresAt: signature.FormatTime(rec.ExpiresAt)}
		if rec.Done && rec.Reply != nil {
			view.State = "done"
			view.Header = rec.Reply.Header
			if json.Valid(rec.Reply.Body) {
				view.Reply = rec.Reply.Body
			}
		}
		return writeJSON(w, view)
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New(adminapi.NoSuchRequest)}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // detailLink URLs stay readable
	return enc.Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
