package ordersync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// maxReplySize caps how much of the upstream's reply is captured; a larger
// reply is a broken upstream (UNKNOWN_EXCEPTION).
const maxReplySize = 1 << 20

// forwarder is the order flow's Forwarder over the next handler of the
// route (normally reverse_proxy), for one request.
type forwarder struct {
	r    *http.Request
	next caddyhttp.Handler
}

// Forward sends up to the next handler as a POST on the caller's path and
// captures its reply in a private buffer, so that nothing the upstream
// sets reaches the caller. The request is the caller's, with nothing of
// it but what the flow put in up: no query string (the signature covers
// the path only), no header outside up.Header.
//
// ctx carries the request's upstream_timeout deadline; when it ends the
// next handler's context ends with it, and the next handler gets until
// up.GiveUpAt to notice (reverse_proxy aborts on a cancelled context)
// before the answer goes out without it.
func (f *forwarder) Forward(ctx context.Context, up orderflow.Upstream) orderflow.UpstreamReply {
	r := f.r
	// The upstream request gets its own copy of Caddy's request variables:
	// net/http may still be dialing for it after it has been given up on,
	// and the transport reads those variables while the handler goes on.
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, maps.Clone(vars))
	}
	// A shallow copy: every field that differs is replaced, not changed
	// in place (reverse_proxy clones the request again itself).
	req := r.WithContext(ctx)
	u := *r.URL
	u.RawQuery, u.ForceQuery = "", false
	req.URL = &u
	req.RequestURI = u.RequestURI()
	req.Method = http.MethodPost
	req.Trailer = nil
	req.Header = up.Header
	req.Header["Content-Length"] = []string{strconv.Itoa(len(up.Body))}
	body := up.Body
	req.Body = http.NoBody
	if len(body) > 0 {
		req.Body = newBodyReader(body)
	}
	req.GetBody = func() (io.ReadCloser, error) { return newBodyReader(body), nil }
	req.ContentLength = int64(len(body))
	req.TransferEncoding = nil

	return serveCaptured(ctx, f.next, req, up.GiveUpAt)
}

// bodyReader is the upstream request's body: io.NopCloser of a
// bytes.Reader in one allocation.
type bodyReader struct{ bytes.Reader }

func newBodyReader(b []byte) *bodyReader {
	r := new(bodyReader)
	r.Reset(b)
	return r
}

func (*bodyReader) Close() error { return nil }

// serveCaptured runs next on req with a bounded, private capture of its
// reply. When ctx ends, next's context ends with it (reverse_proxy aborts
// then) and next gets until giveUpAt (zero: TimeBoundGrace after ctx
// ended) to return before the reply is given up on (NeverDone). Both
// handlers reach their upstream through it: ingress through the next
// handler of the request, egress through the handlers after it in its
// route.
func serveCaptured(ctx context.Context, next caddyhttp.Handler, req *http.Request, giveUpAt time.Time) orderflow.UpstreamReply {
	rec := &captureWriter{header: make(http.Header)}
	done := make(chan error, 1)
	start := time.Now()
	runNext(&nextCall{next: next, w: rec, req: req, done: done})

	var out orderflow.UpstreamReply
	select {
	case err := <-done:
		out.Err = err
	case <-ctx.Done():
		wait := orderflow.TimeBoundGrace
		if !giveUpAt.IsZero() {
			wait = time.Until(giveUpAt)
		}
		giveUp := time.NewTimer(wait)
		select {
		case err := <-done:
			out.Err = err
		case <-giveUp.C:
			out.NeverDone = true
		}
		giveUp.Stop()
	}
	out.Duration = time.Since(start)
	out.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
	if out.NeverDone {
		return out
	}
	out.Status, out.Body, out.TooLarge = rec.result()
	// The next handler has returned: nothing writes the map any more.
	out.Header = rec.header
	return out
}

// nextCall is one call of a next handler, run on a goroutine of its own
// so that the caller can stop waiting for it (serveCaptured); its error,
// or its recovered panic, goes to done (buffered: never blocks).
type nextCall struct {
	next caddyhttp.Handler
	w    http.ResponseWriter
	req  *http.Request
	done chan<- error
}

func (c *nextCall) run() {
	defer func() {
		// reverse_proxy panics with http.ErrAbortHandler when the
		// upstream's body breaks off after the status was written.
		if p := recover(); p != nil {
			c.done <- fmt.Errorf("next handler aborted its reply: %v", p)
		}
	}()
	c.done <- c.next.ServeHTTP(c.w, c.req)
}

// nextCalls hands calls to idle nextWorkers. A new goroutine starts with
// a small stack, and reverse_proxy's calls are deep: a goroutine per call
// grew its stack (copying it, twice) on every request. Workers keep
// theirs between calls. A call that finds no idle worker starts one, so
// a next handler that never returns (the time bound's case) holds up
// nothing but its own worker.
var nextCalls = make(chan *nextCall)

// nextWorkerIdle is how long a worker waits for another call before it
// ends: the workers are about as many as the calls in flight.
const nextWorkerIdle = 10 * time.Second

// runNext runs c on an idle worker, or on a new one.
func runNext(c *nextCall) {
	select {
	case nextCalls <- c:
	default:
		go nextWorker(c)
	}
}

func nextWorker(c *nextCall) {
	idle := time.NewTimer(nextWorkerIdle)
	defer idle.Stop()
	for {
		c.run()
		c = nil // keep nothing of a finished call alive while idle
		idle.Reset(nextWorkerIdle)
		select {
		case c = <-nextCalls:
		case <-idle.C:
			return
		}
	}
}

// captureWriter is a bounded, private http.ResponseWriter. It is not tied to
// the caller's writer, so a next handler that outlives the time bound writes
// into nothing the caller sees.
type captureWriter struct {
	mu       sync.Mutex
	header   http.Header
	status   int
	buf      bytes.Buffer
	tooLarge bool
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 && status >= 200 {
		c.status = status
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.tooLarge {
		return len(p), nil
	}
	if c.buf.Len()+len(p) > maxReplySize {
		c.tooLarge = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

// Flush is a no-op: the reply is consumed whole.
func (c *captureWriter) Flush() {}

func (c *captureWriter) result() (int, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.buf.Bytes(), c.tooLarge
}
