package orderflow

import (
	"net/http"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// The gateway's own reply headers, named as they go on the wire: in
// lowercase, as AlipayHK sends them (package signature names those of its
// signature scheme). The official SDKs read these names, and one of them
// compares them case-sensitively on HTTP/1.1, so they are set as header
// map keys directly: Header.Set would canonicalize them to Response-Time
// and break that SDK. Content-Type keeps Go's spelling.
const (
	HeaderSignature    = signature.HeaderSignature
	HeaderResponseTime = signature.HeaderResponseTime
	HeaderClientID     = signature.HeaderClientID
	HeaderTracerID     = "tracer-id"
	HeaderContentType  = "Content-Type"
)

// wireHeaderNames maps the canonical spelling of each reply header to its
// wire name. Replies stored by earlier versions carry canonical names; a
// replay goes out under the wire names all the same.
var wireHeaderNames = map[string]string{
	http.CanonicalHeaderKey(HeaderSignature):    HeaderSignature,
	http.CanonicalHeaderKey(HeaderResponseTime): HeaderResponseTime,
	http.CanonicalHeaderKey(HeaderClientID):     HeaderClientID,
	http.CanonicalHeaderKey(HeaderTracerID):     HeaderTracerID,
	http.CanonicalHeaderKey(HeaderContentType):  HeaderContentType,
}

// wireSpellings maps both spellings of each reply header the gateway
// owns (its wire name, and the canonical one) to the wire name: the names
// replies are built and stored under are found without canonicalizing
// them, which allocates for a lowercase name.
var wireSpellings = func() map[string]string {
	m := make(map[string]string, 2*len(wireHeaderNames))
	for canonical, wire := range wireHeaderNames {
		m[canonical], m[wire] = wire, wire
	}
	return m
}()

// wireHeaderName is the name a stored or built reply header is written
// under; names the gateway does not own are written as stored.
func wireHeaderName(name string) string {
	if wire, ok := wireSpellings[name]; ok {
		return wire
	}
	if wire, ok := wireHeaderNames[http.CanonicalHeaderKey(name)]; ok {
		return wire
	}
	return name
}

// SetReplyHeader puts the headers of rep (fresh or replayed) into dst, the
// header map of the response about to be written, with tracerID as the
// Tracer-Id when it is not empty. Every header the gateway owns goes out
// under its wire name, whatever spelling rep or an earlier handler used,
// and never twice under two spellings. dst takes rep's value slices, not
// copies: rep is the one answer to one request, written once.
func SetReplyHeader(dst http.Header, rep store.Reply, tracerID string) {
	for canonical, wire := range wireHeaderNames {
		if canonical != wire {
			delete(dst, canonical)
		}
	}
	for k, v := range rep.Header {
		dst[wireHeaderName(k)] = v
	}
	if tracerID != "" {
		dst[HeaderTracerID] = []string{tracerID}
	}
}

// Signer signs the gateway's replies (sign_responses).
type Signer struct {
	// Key is loaded once, at provision. The glue does not Close it when a
	// config is cleaned up: a request that outlives a reload's grace
	// period may still sign, and must not get an unsigned reply. The
	// Signer frees its OpenSSL key (-tags openssl) when it is garbage
	// collected.
	Key        *signature.Signer
	KeyVersion string
}

// reply turns an outcome into the exact bytes and headers sent to the
// caller; the same value is what the replay store keeps, under the same
// (wire) header names. The signature covers the method and path the
// caller signed. When the reply cannot be signed (a failing OpenSSL key),
// the error comes back with unsignedUnknown instead of the outcome: the
// flow must neither send nor store an unsigned final answer.
func (s *Signer) reply(method, path, clientID string, o Outcome) (store.Reply, error) {
	body := o.Body()
	respTime := signature.FormatTime(time.Now())
	// One array for the header's values, each slice capped at its own
	// element so that appending to one never writes into the next.
	vals := [4]string{ContentTypeJSON, respTime, clientID}
	header := make(map[string][]string, 4)
	header[HeaderContentType] = vals[0:1:1]
	header[HeaderResponseTime] = vals[1:2:2]
	if clientID != "" {
		header[HeaderClientID] = vals[2:3:3]
	}
	if s != nil {
		sig, err := s.Key.Sign(method, path, clientID, respTime, body)
		if err != nil {
			return unsignedUnknown(clientID), err
		}
		vals[3] = signature.FormatHeader(s.KeyVersion, sig)
		header[HeaderSignature] = vals[3:4:4]
	}
	return store.Reply{Status: http.StatusOK, Header: header, Body: body}, nil
}

// unsignedUnknown is the answer to a request whose reply could not be
// signed: U, so that the caller retries, with neither signature nor
// response-time, since the SDKs accept an unsigned reply only when it is F
// or U and carries neither (docs/SPEC.md §3). It is never stored.
func unsignedUnknown(clientID string) store.Reply {
	header := make(map[string][]string, 2)
	header[HeaderContentType] = []string{ContentTypeJSON}
	if clientID != "" {
		header[HeaderClientID] = []string{clientID}
	}
	body := Outcome{Code: UnknownException, Message: "service: the reply could not be signed; retry later"}.Body()
	return store.Reply{Status: http.StatusOK, Header: header, Body: body}
}
