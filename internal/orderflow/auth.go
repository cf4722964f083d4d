package orderflow

import (
	"mime"
	"strings"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// authenticate checks Client-Id, key version, signature and Request-Time
// (step 3 of Serve). It returns the refusal, or nil; a refusal's metrics
// label is left in a.AuthFailure. clientIDs is how many Client-Id headers came.
//
// Each of Client-Id, Signature and Request-Time must be given once: with
// two, "the first one wins" would let a proxy in front and the gateway
// disagree on who signed what (README, "Security notes").
func (f *Flow) authenticate(a *Answer, req *Request, c *Client, clientIDs int) *Refusal {
	refuse := func(label string, code Code, reason, msg string) *Refusal {
		a.AuthFailure = label
		return &Refusal{code, reason, msg}
	}
	switch {
	case clientIDs > 1:
		return refuse("client", InvalidClient, "client", "Client-Id: given more than once")
	case a.ClientID == "":
		return refuse("client", InvalidClient, "client", "Client-Id: missing")
	case f.cfg.InsecureSkipVerify:
		return nil
	case c == nil:
		return refuse("client", InvalidClient, "client", "Client-Id: not a registered client")
	}
	sigs, times := req.Header.Values(signature.HeaderSignature), req.Header.Values(signature.HeaderRequestTime)
	switch {
	case len(sigs) > 1:
		return refuse("repeated", InvalidSignature, "signature_repeated", "Signature: given more than once")
	case len(times) > 1:
		return refuse("repeated", InvalidSignature, "signature_repeated", "Request-Time: given more than once")
	case len(sigs) == 0 || sigs[0] == "":
		return refuse("missing", InvalidSignature, "signature_missing", "Signature: missing")
	}
	parsed, err := signature.ParseHeader(sigs[0])
	if err != nil {
		return refuse(signatureReason(err), InvalidSignature, "signature_malformed", err.Error())
	}
	key, ok := c.Keys[parsed.KeyVersion]
	if !ok {
		// ParseHeader applied the keyVersion rule: it is safe to echo.
		return refuse("key_not_found", KeyNotFound, "key_not_found", "Signature: keyVersion "+parsed.KeyVersion+" is not registered for this client")
	}
	if len(times) == 0 || times[0] == "" {
		return refuse("time", InvalidSignature, "time", "Request-Time: missing")
	}
	reqTime := times[0]
	if err := key.Verify(req.Method, req.Path, a.ClientID, reqTime, req.Body, parsed.Signature); err != nil {
		return refuse(signatureReason(err), InvalidSignature, "signature", err.Error())
	}
	if f.cfg.TimeWindow > 0 {
		t, err := signature.ParseTime(reqTime)
		if err == nil {
			err = signature.CheckWindow(t, time.Now(), f.cfg.TimeWindow)
		}
		if err != nil {
			return refuse("time", InvalidSignature, "time", err.Error())
		}
	}
	return nil
}

// signatureReason is the bounded metrics label of an authentication error.
func signatureReason(err error) string {
	if r := signature.ReasonOf(err); r != "" {
		return r
	}
	return "other"
}

// JSONContentType is the media type rule of every request the gateway
// reads, ingress and egress: each Content-Type value is application/json,
// with no charset or a UTF-8 one.
func JSONContentType(values []string) bool {
	if len(values) == 0 {
		return false
	}
	// The Go SDK sends Content-Type twice (docs/SPEC.md §2); all must agree.
	for _, v := range values {
		if v == ContentTypeJSON || v == "application/json" {
			continue // the common forms, without parsing (and its map)
		}
		mt, params, err := mime.ParseMediaType(v)
		if err != nil || mt != "application/json" {
			return false
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return false
		}
	}
	return true
}
