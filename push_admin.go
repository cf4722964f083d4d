package ordersync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
	"github.com/caddy-alipay/ordersync/internal/outbox"
	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(PushAdminAPI{})
}

// activeRunners lists the running delivery runners, so that the admin API
// (which Caddy builds apart from the HTTP app) can reach their outboxes.
var (
	activeRunnersMu sync.RWMutex
	activeRunners   = map[*sharedRunner]struct{}{}
)

func addActiveRunner(s *sharedRunner) {
	activeRunnersMu.Lock()
	activeRunners[s] = struct{}{}
	activeRunnersMu.Unlock()
}

func removeActiveRunner(s *sharedRunner) {
	activeRunnersMu.Lock()
	delete(activeRunners, s)
	activeRunnersMu.Unlock()
}

// runnersOf returns the runners delivering for clientID (one per store
// that holds an outbox for it; normally one).
func runnersOf(clientID string) []*outbox.Runner {
	activeRunnersMu.RLock()
	defer activeRunnersMu.RUnlock()
	var out []*outbox.Runner
	for s := range activeRunners {
		if s.runner.ClientID() == clientID {
			out = append(out, s.runner)
		}
	}
	return out
}

// PushAdminAPI adds the egress routes to Caddy's admin endpoint (their
// paths and views are in internal/adminapi, shared with the CLI):
//
//	GET  /alipay_order_push/entry/<client_id>/<requestId>
//	GET  /alipay_order_push/lane/<client_id>/<merchantBizNo>
//	GET  /alipay_order_push/entries/<client_id>?state=&limit=
//	POST /alipay_order_push/entry/<client_id>/<requestId>/retry
//	POST /alipay_order_push/entry/<client_id>/<requestId>/drop
//
// Unlike the ingress routes, two of them change state: the operator's
// retry and drop act on the outbox of the running Caddy and wake its
// delivery, which nothing outside the process can do. Caddy's admin
// endpoint listens on localhost only unless configured otherwise; whoever
// can reach it can reconfigure Caddy anyway.
type PushAdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (PushAdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.alipay_order_push",
		New: func() caddy.Module { return new(PushAdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *PushAdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminapi.PushRoute, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// serve dispatches on the path's segments.
func (a *PushAdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), adminapi.PushRoute)
	var segs []string
	for _, s := range strings.Split(rest, "/") {
		v, err := url.PathUnescape(s)
		if err != nil || v == "" {
			return apiError(http.StatusBadRequest, "malformed path: every id is one non-empty, escaped path segment")
		}
		segs = append(segs, v)
	}
	method := func(want string) error {
		if r.Method != want {
			return apiError(http.StatusMethodNotAllowed, "method not allowed: use %s", want)
		}
		return nil
	}
	switch {
	case len(segs) == 3 && segs[0] == adminapi.PushEntry:
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return a.entry(w, r.Context(), segs[1], segs[2])
	case len(segs) == 4 && segs[0] == adminapi.PushEntry && (segs[3] == adminapi.PushRetry || segs[3] == adminapi.PushDrop):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return a.act(w, r.Context(), segs[1], segs[2], segs[3])
	case len(segs) == 3 && segs[0] == adminapi.PushLane:
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return a.lane(w, r.Context(), segs[1], segs[2])
	case len(segs) == 2 && segs[0] == adminapi.PushEntries:
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return a.list(w, r, segs[1])
	}
	return apiError(http.StatusNotFound, "unknown route; see the README, \"Egress\", for the admin routes")
}

// find returns the runner that holds the entry, and the entry.
func (a *PushAdminAPI) find(ctx context.Context, clientID, requestID string) (*outbox.Runner, *store.Entry, error) {
	runners := runnersOf(clientID)
	if len(runners) == 0 {
		return nil, nil, apiError(http.StatusNotFound, "%s", adminapi.NoSuchClient)
	}
	for _, rn := range runners {
		e, err := rn.Entry(ctx, requestID)
		if err != nil {
			return nil, nil, apiError(http.StatusServiceUnavailable, "state store: %v", err)
		}
		if e != nil {
			return rn, e, nil
		}
	}
	return nil, nil, apiError(http.StatusNotFound, "%s", adminapi.NoSuchEntry)
}

func (a *PushAdminAPI) entry(w http.ResponseWriter, ctx context.Context, clientID, requestID string) error {
	_, e, err := a.find(ctx, clientID, requestID)
	if err != nil {
		return err
	}
	return writeJSON(w, pushEntryView(e))
}

func (a *PushAdminAPI) lane(w http.ResponseWriter, ctx context.Context, clientID, merchantBizNo string) error {
	runners := runnersOf(clientID)
	if len(runners) == 0 {
		return apiError(http.StatusNotFound, "%s", adminapi.NoSuchClient)
	}
	var lane *store.Lane
	for _, rn := range runners {
		l, err := rn.Lane(ctx, merchantBizNo)
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "state store: %v", err)
		}
		if lane == nil || l.Version > 0 {
			lane = l
		}
	}
	view := adminapi.PushLaneView{ClientID: clientID, MerchantBizNo: merchantBizNo, Version: lane.Version, Queued: []adminapi.PushEntryView{}}
	if acc := lane.Accepted; acc != nil {
		view.Accepted = &adminapi.PushAcceptedView{
			Scenario: acc.Scenario, OrderStatus: acc.Status, OrderModifyTime: acc.ModifyTime,
			OrderID: acc.OrderID, DistributeResult: acc.DistributeResult, RequestID: acc.RequestID,
			UpdatedAt: outbox.FormatTime(acc.UpdatedAt),
		}
	}
	for _, e := range lane.Queued {
		view.Queued = append(view.Queued, pushEntryView(e))
	}
	return writeJSON(w, view)
}

func (a *PushAdminAPI) list(w http.ResponseWriter, r *http.Request, clientID string) error {
	q := r.URL.Query()
	state := store.EntryState(q.Get(adminapi.ParamState))
	if state != "" && !state.Valid() {
		return apiError(http.StatusBadRequest, "state: one of queued, succeeded, failed, expired")
	}
	limit := adminapi.DefaultListLimit
	if v := q.Get(adminapi.ParamLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > adminapi.MaxListLimit {
			return apiError(http.StatusBadRequest, "limit: a number from 1 to %d", adminapi.MaxListLimit)
		}
		limit = n
	}
	runners := runnersOf(clientID)
	if len(runners) == 0 {
		return apiError(http.StatusNotFound, "%s", adminapi.NoSuchClient)
	}
	view := adminapi.PushListView{ClientID: clientID, State: string(state), Entries: []adminapi.PushEntryView{}}
	for _, rn := range runners {
		entries, err := rn.List(r.Context(), state, limit-len(view.Entries))
		if err != nil {
			return apiError(http.StatusServiceUnavailable, "state store: %v", err)
		}
		for _, e := range entries {
			view.Entries = append(view.Entries, pushEntryView(e))
		}
		if len(view.Entries) >= limit {
			break
		}
	}
	return writeJSON(w, view)
}

// act carries out retry or drop and says what changed.
func (a *PushAdminAPI) act(w http.ResponseWriter, ctx context.Context, clientID, requestID, action string) error {
	rn, before, err := a.find(ctx, clientID, requestID)
	if err != nil {
		return err
	}
	var after *store.Entry
	var done outbox.OperatorAction
	if action == adminapi.PushDrop {
		after, err = rn.Drop(ctx, requestID)
		done = outbox.ActionDrop
	} else {
		after, done, err = rn.Retry(ctx, requestID)
	}
	switch {
	case errors.Is(err, store.ErrEntryNotFound):
		return apiError(http.StatusNotFound, "%s", adminapi.NoSuchEntry)
	case errors.Is(err, store.ErrWrongState), errors.Is(err, outbox.ErrRefused), errors.Is(err, store.ErrConflict):
		return apiError(http.StatusConflict, "%s %s: nothing changed: %v", action, requestID, err)
	case err != nil:
		return apiError(http.StatusServiceUnavailable, "state store: %v", err)
	}
	return writeJSON(w, adminapi.PushActionView{
		Action:  string(done),
		Changed: changedText(done, before, after),
		Entry:   pushEntryView(after),
	})
}

// changedText says in a sentence what an operator action changed.
func changedText(action outbox.OperatorAction, before, after *store.Entry) string {
	switch action {
	case outbox.ActionRetry:
		return fmt.Sprintf("entry %s stays queued and is due now (attempts so far: %d); it is sent once the entries before it in lane %s are final",
			after.RequestID, after.Attempts, after.MerchantBizNo)
	case outbox.ActionRequeue:
		return fmt.Sprintf("entry %s was %s; it is queued again at the tail of lane %s, due now, with its attempts and reply cleared and max_age counting anew",
			after.RequestID, before.State, after.MerchantBizNo)
	case outbox.ActionDrop:
		s := fmt.Sprintf("entry %s was queued; it is failed now (lastError %q) and out of lane %s, which goes on with its next entry",
			after.RequestID, after.LastError, after.MerchantBizNo)
		if after.Callback.Pending {
			s += "; its callback is scheduled"
		}
		return s
	}
	return string(action)
}

// pushEntryView is the admin view of an entry: never its body.
func pushEntryView(e *store.Entry) adminapi.PushEntryView {
	v := adminapi.PushEntryView{
		ClientID: e.ClientID, RequestID: e.RequestID, MerchantBizNo: e.MerchantBizNo,
		Scenario: e.Scenario, OrderStatus: e.OrderStatus, OrderModifyTime: e.OrderModifyTime,
		State: string(e.State), Attempts: e.Attempts,
		CreatedAt: outbox.FormatTime(e.CreatedAt), QueuedAt: outbox.FormatTime(e.QueuedAt),
		UpdatedAt: outbox.FormatTime(e.UpdatedAt), LastError: e.LastError,
		ExpiresAt: outbox.FormatTime(e.ExpiresAt),
	}
	if e.State == store.EntryQueued {
		v.NextAttemptAt = outbox.FormatTime(e.NextAttemptAt)
	}
	if e.Reply != nil {
		v.Reply = outbox.View(e).Reply
	}
	if cb := e.Callback; cb.WebhookID != "" {
		v.Callback = &adminapi.PushCallbackView{
			Pending: cb.Pending, WebhookID: cb.WebhookID, Attempts: cb.Attempts,
			NextAttemptAt: outbox.FormatTime(cb.NextAttemptAt), LastError: cb.LastError,
		}
		if !cb.Pending {
			v.Callback.NextAttemptAt = ""
		}
	}
	return v
}

// Interface guards
var _ caddy.AdminRouter = (*PushAdminAPI)(nil)
