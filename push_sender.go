package ordersync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/internal/outbox"
)

// The egress handler sends every attempt through the handlers that follow
// it in its route (normally reverse_proxy to AlipayHK), so that everything
// reverse_proxy offers (TLS, load balancing, timeouts, header_up…) applies
// to AlipayHK as configured. Attempts are made by the delivery runner, not
// while a request is served: after a restart with a queued outbox, nobody
// may post anything for a while, and delivery must resume by itself.
//
// So the chain is found in the configuration itself. When the http app
// has been provisioned (the alipay_order_sync app's Start, before any
// delivery), routeAfter walks its servers' routes, into subroutes, to this
// handler instance, and compiles what would run after it: the rest of its
// route's handlers, then the routes after it in its list (their matchers
// evaluated per attempt as Caddy does), then, out of a subroute, what
// follows the subroute in the enclosing list. Each attempt is a request
// made from scratch and prepared with caddyhttp.PrepareRequest (replacer,
// variables, server), as Caddy's server prepares the requests it serves;
// the legacy system's request is never reused (an attempt may run long
// after it, or without it).

// errNotInRoutes is returned by routeAfter when the handler is not in the
// http app's routes (e.g. only in a named route, whose continuation
// depends on who invokes it).
var errNotInRoutes = errors.New("alipay_order_push is not in the routes of any http server; put it in a route, followed by reverse_proxy")

// endOfRoutes is what runs when the routes end without an answer: nothing
// (the capture then has no status, which the sender reports).
var endOfRoutes caddyhttp.Handler = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// routeAfter returns the handler chain that follows target in app's
// routes, and the server whose routes hold target.
func routeAfter(app *caddyhttp.App, target caddyhttp.MiddlewareHandler) (caddyhttp.Handler, *caddyhttp.Server, error) {
	for _, srv := range app.Servers {
		if h, ok := findAfter(srv.Routes, target, endOfRoutes); ok {
			return h, srv, nil
		}
		if srv.Errors != nil {
			if h, ok := findAfter(srv.Errors.Routes, target, endOfRoutes); ok {
				return h, srv, nil
			}
		}
	}
	return nil, nil, errNotInRoutes
}

// findAfter looks for target in routes, where next is what runs when the
// routes are done, and returns what runs after target.
func findAfter(routes caddyhttp.RouteList, target caddyhttp.MiddlewareHandler, next caddyhttp.Handler) (caddyhttp.Handler, bool) {
	for i, rt := range routes {
		// What runs after route i: nothing more at all when it is
		// terminal (Caddy then ends the whole chain, not just this list).
		afterRoute := endOfRoutes
		if !rt.Terminal {
			afterRoute = routes[i+1:].Compile(next)
		}
		for j, mh := range rt.Handlers {
			if mh == target {
				return chainHandlers(rt.Handlers[j+1:], afterRoute), true
			}
			sr, ok := mh.(*caddyhttp.Subroute)
			if !ok {
				continue
			}
			afterSub := chainHandlers(rt.Handlers[j+1:], afterRoute)
			if h, ok := findAfter(sr.Routes, target, afterSub); ok {
				return h, true
			}
			if sr.Errors != nil {
				if h, ok := findAfter(sr.Errors.Routes, target, afterSub); ok {
					return h, true
				}
			}
		}
	}
	return nil, false
}

// chainHandlers chains middleware handlers in front of next, as a route
// chains its handlers.
func chainHandlers(handlers []caddyhttp.MiddlewareHandler, next caddyhttp.Handler) caddyhttp.Handler {
	for i := len(handlers) - 1; i >= 0; i-- {
		next = wrapHandler(handlers[i], next)
	}
	return next
}

func wrapHandler(mh caddyhttp.MiddlewareHandler, next caddyhttp.Handler) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return mh.ServeHTTP(w, r, next)
	})
}

// routeSender is the outbox.Sender of one generation: attempts go
// through the chain compiled from the handlers after the egress handler.
type routeSender struct {
	chain  caddyhttp.Handler
	server *caddyhttp.Server
}

func newRouteSender(chain caddyhttp.Handler, srv *caddyhttp.Server) *routeSender {
	return &routeSender{chain: chain, server: srv}
}

// Send makes one attempt: POST a.Path with a.Header and a.Body through the
// chain, its reply captured privately and bounded. An error means no
// complete reply arrived (transport error, timeout, a reply cut short or
// too large, nothing answered); ctx (attempt_timeout) bounds the attempt.
func (s *routeSender) Send(ctx context.Context, a outbox.Attempt) (outbox.Reply, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+a.Path, bytes.NewReader(a.Body))
	if err != nil {
		return outbox.Reply{}, fmt.Errorf("building the request: %v", err)
	}
	r.Header = a.Header.Clone()
	r.Header.Set("Content-Length", strconv.Itoa(len(a.Body)))
	// No Host of its own: the attempt is the gateway's own request to
	// AlipayHK, not a request passed on, so it goes out with the Host of
	// the upstream reverse_proxy dials, as a client calling AlipayHK
	// directly sends it (reverse_proxy passes an incoming request's Host
	// on; with none, the upstream's address is the Host). header_up Host
	// still changes it.
	r.Host, r.URL.Host = "", ""
	r.RequestURI = r.URL.RequestURI()
	// The gateway itself is the client: reverse_proxy's X-Forwarded-For
	// says loopback.
	r.RemoteAddr = "127.0.0.1:0"
	// ContentLength and GetBody: set by NewRequestWithContext for a
	// bytes.Reader.
	rec := &captureWriter{header: make(http.Header)}
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), rec, s.server)
	up := serveCaptured(ctx, s.chain, r, time.Time{})
	switch {
	case up.NeverDone || up.TimedOut:
		return outbox.Reply{}, errors.New("no answer within attempt_timeout")
	case up.Err != nil && up.Status == 0:
		return outbox.Reply{}, fmt.Errorf("unreachable: %v", briefError(up.Err))
	case up.Err != nil:
		return outbox.Reply{}, errors.New("reply cut short or aborted")
	case up.Status == 0:
		return outbox.Reply{}, errors.New("no reply (is reverse_proxy configured after alipay_order_push?)")
	case up.TooLarge:
		return outbox.Reply{}, fmt.Errorf("reply larger than %d bytes", maxReplySize)
	}
	return outbox.Reply{Status: up.Status, Header: up.Header, Body: up.Body}, nil
}

// briefError keeps an error short and printable for lastError: a handler
// error's own message (reverse_proxy's dial errors name the upstream).
func briefError(err error) string {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.Err != nil {
		err = he.Err
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	return msg
}
