package ordersync

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// The gateway's own reply headers, named as they go on the wire: in
// lowercase, as AlipayHK sends them. The official SDKs read these names, and
// one of them compares them case-sensitively on HTTP/1.1, so they are set as
// header map keys directly: Header.Set would canonicalize them to
// Response-Time and break that SDK. Content-Type keeps Go's spelling.
const (
	headerSignature    = "signature"
	headerResponseTime = "response-time"
	headerClientID     = "client-id"
	headerTracerID     = "tracer-id"
	headerContentType  = "Content-Type"
)

// wireHeaderNames maps the canonical spelling of each reply header to its
// wire name. Replies stored by earlier versions carry canonical names; a
// replay goes out under the wire names all the same.
var wireHeaderNames = map[string]string{
	http.CanonicalHeaderKey(headerSignature):    headerSignature,
	http.CanonicalHeaderKey(headerResponseTime): headerResponseTime,
	http.CanonicalHeaderKey(headerClientID):     headerClientID,
	http.CanonicalHeaderKey(headerTracerID):     headerTracerID,
	http.CanonicalHeaderKey(headerContentType):  headerContentType,
}

// wireHeaderName is the name a stored or built reply header is written
// under; names the gateway does not own are written as stored.
func wireHeaderName(name string) string {
	if wire, ok := wireHeaderNames[http.CanonicalHeaderKey(name)]; ok {
		return wire
	}
	return name
}

// reply turns an outcome into the exact bytes and headers sent to the
// caller; the same value is what the replay store keeps, under the same
// (wire) header names.
func (h *Handler) reply(r *http.Request, clientID string, o orderflow.Outcome) store.Reply {
	body := o.Body()
	now := time.Now()
	respTime := signature.FormatTime(now)
	header := map[string][]string{
		headerContentType:  {"application/json; charset=UTF-8"},
		headerResponseTime: {respTime},
	}
	if clientID != "" {
		header[headerClientID] = []string{clientID}
	}
	if h.signer != nil {
		sig, err := h.signer.key.Sign(r.Method, signedPath(r), clientID, respTime, body)
		if err == nil {
			header[headerSignature] = []string{signature.FormatHeader(h.signer.keyVersion, sig)}
		} else {
			h.logger.Error("signing the response failed", zap.Error(err))
		}
	}
	return store.Reply{Status: http.StatusOK, Header: header, Body: body}
}

// writeReply writes a reply (fresh or replayed) with a new Tracer-Id. Every
// header the gateway owns goes out under its wire name, whatever spelling
// the stored reply has, and never twice under two spellings.
func writeReply(w http.ResponseWriter, rep store.Reply, tracerID string) {
	hdr := w.Header()
	for canonical, wire := range wireHeaderNames {
		if canonical != wire {
			delete(hdr, canonical)
		}
	}
	for k, v := range rep.Header {
		hdr[wireHeaderName(k)] = append([]string(nil), v...)
	}
	if tracerID != "" {
		hdr[headerTracerID] = []string{tracerID}
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(rep.Body)
}
