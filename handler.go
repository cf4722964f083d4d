package ordersync

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/store"
)

// ServeHTTP reads the body, lets the order flow answer (internal/orderflow:
// the whole pipeline is there), writes the answer and observes it. Every
// answer is HTTP 200 with an envelope and nil is returned: the caller must
// never get Caddy's error page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	received := time.Now()
	// The Tracer-Id is read before anything else touches the request's
	// variables (reading the request uuid the first time writes it).
	tracer := tracerID(r)
	body, bodyErr := readBody(w, r, h.MaxBodySize)
	a := h.flow.Serve(r.Context(), &orderflow.Request{
		Received: received,
		Method:   r.Method,
		Path:     signedPath(r),
		Header:   r.Header,
		Body:     body,
		BodyErr:  bodyErr,
	}, &forwarder{r: r, next: next})
	writeReply(w, a.Reply, tracer)
	h.observe(&a, time.Since(received))
	return nil
}

// readBody reads the whole body, at most limit bytes. The flow says what a
// body that could not be read is answered; a body of an answer that does
// not need it (a GET, a wrong Content-Type) is read all the same, bounded,
// as net/http would read it to keep the connection.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, orderflow.ErrBodyTooLarge
	}
	b, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, orderflow.ErrBodyTooLarge
		}
		return nil, err
	}
	return b, nil
}

// readAll is io.ReadAll into a buffer sized for size bytes when the
// request says how many come (Content-Length), so that a body is read
// without growing its buffer. The size only sizes: what arrives is read.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, size+1) // +1: the read that finds EOF
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than announced: grow as io.ReadAll would
		}
	}
}

// writeReply writes a reply (fresh or replayed) with a new Tracer-Id, under
// the reply headers' wire names.
func writeReply(w http.ResponseWriter, rep store.Reply, tracerID string) {
	orderflow.SetReplyHeader(w.Header(), rep, tracerID)
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(rep.Body)
}

// tracerID reuses Caddy's request id so the Tracer-Id matches Caddy's logs.
func tracerID(r *http.Request) string {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.GetString("http.request.uuid"); ok {
			return strings.ReplaceAll(v, "-", "")
		}
	}
	return ""
}

// signedPath is the path the caller signed: the one it sent, before any
// handle_path or rewrite earlier in the route changed r.URL.
func signedPath(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.URL.Path
	}
	return r.URL.Path
}
