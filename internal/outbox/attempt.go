package outbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// headerKeyVersion is the one attempt header outside AlipayHK's signature
// scheme (package signature names those): the Go SDK sends the keyVersion
// of the Signature header again in it.
const headerKeyVersion = "Key-Version"

// jsonUTF8 is the Content-Type of every attempt and of every answer to the
// legacy system.
const jsonUTF8 = orderflow.ContentTypeJSON

// signAttempt returns the headers of one attempt at now: a fresh
// Request-Time in epoch milliseconds (as the Java and Go SDKs send it) and
// a fresh signature over "POST <path>\n<client_id>.<Request-Time>.<body>".
func signAttempt(cfg *Config, body []byte, now time.Time) (http.Header, error) {
	reqTime := signature.FormatEpochMillis(now)
	sig, err := cfg.Signer.Sign(http.MethodPost, cfg.Path, cfg.ClientID, reqTime, body)
	if err != nil {
		return nil, err
	}
	// Set: canonical names (Client-Id, Request-Time...), as the official
	// Go SDK's request carries them.
	h := make(http.Header, 5)
	h.Set("Content-Type", jsonUTF8)
	h.Set(signature.HeaderClientID, cfg.ClientID)
	h.Set(signature.HeaderRequestTime, reqTime)
	h.Set(headerKeyVersion, cfg.KeyVersion)
	h.Set(signature.HeaderSignature, signature.FormatHeader(cfg.KeyVersion, sig))
	return h, nil
}

// judgement is what one attempt came to.
type judgement struct {
	Outcome Outcome
	// Error is why a retryable attempt did not end the entry: the entry's
	// lastError. It names the rule and never quotes the body.
	Error string
	// The verified envelope's result, and for S its order fields.
	ResultCode, ResultStatus string
	OrderID                  string
	DistributeResult         json.RawMessage
	// Reply is what is stored of a final reply: status, AlipayHK's
	// headers that identify and prove it, body byte for byte.
	Reply *store.Reply
}

// maxQuoted bounds how much of AlipayHK's resultMessage goes into
// lastError.
const maxQuoted = 160

// judge decides an attempt from its reply (or sendErr), as the package
// documentation says: final only when HTTP 200, signed by AlipayHK over
// what it sent, and an envelope whose resultStatus is S or F.
func judge(cfg *Config, rep Reply, sendErr error, timedOut bool) judgement {
	switch {
	case sendErr != nil && timedOut:
		return judgement{Outcome: OutcomeTimeout, Error: "timeout: no reply within attempt_timeout (" + cfg.AttemptTimeout.String() + ")"}
	case sendErr != nil:
		return judgement{Outcome: OutcomeTransport, Error: "transport: " + quote(sendErr.Error())}
	case rep.Status != http.StatusOK:
		return judgement{Outcome: OutcomeHTTPStatus, Error: "HTTP " + strconv.Itoa(rep.Status)}
	}
	sigs := headerValues(rep.Header, signature.HeaderSignature)
	times := headerValues(rep.Header, signature.HeaderResponseTime)
	ids := headerValues(rep.Header, signature.HeaderClientID)
	switch {
	case len(sigs) == 0:
		return judgement{Outcome: OutcomeUnsigned, Error: "reply: no Signature header"}
	case len(times) == 0:
		return judgement{Outcome: OutcomeUnsigned, Error: "reply: no Response-Time header"}
	case len(sigs) > 1 || len(times) > 1 || len(ids) > 1:
		return judgement{Outcome: OutcomeBadSignature, Error: "reply: more than one Signature, Response-Time or Client-Id header"}
	case len(ids) == 1 && ids[0] != cfg.ClientID:
		return judgement{Outcome: OutcomeBadSignature, Error: "reply: Client-Id is not ours"}
	}
	h, err := signature.ParseHeader(sigs[0])
	if err == nil {
		err = cfg.AlipayKey.Verify(http.MethodPost, cfg.Path, cfg.ClientID, times[0], rep.Body, h.Signature)
	}
	if err != nil {
		// signature's messages name the header and the rule, never the
		// value.
		return judgement{Outcome: OutcomeBadSignature, Error: "reply: " + err.Error()}
	}

	var env orderflow.Envelope
	if !utf8.Valid(rep.Body) || json.Unmarshal(rep.Body, &env) != nil {
		return judgement{Outcome: OutcomeBadReply, Error: "reply: signed, but not a JSON envelope"}
	}
	j := judgement{ResultCode: env.Result.ResultCode, ResultStatus: env.Result.ResultStatus}
	switch orderflow.Status(env.Result.ResultStatus) {
	case orderflow.StatusSuccess:
		j.Outcome = OutcomeSucceeded
		j.OrderID = env.OrderID
		if len(env.DistributeResult) > 0 && !bytes.Equal(env.DistributeResult, []byte("null")) {
			j.DistributeResult = append(json.RawMessage(nil), env.DistributeResult...)
		}
	case orderflow.StatusFailure:
		j.Outcome = OutcomeFailed
	case orderflow.StatusUnknown:
		j.Outcome = OutcomeUnknown
		j.Error = "AlipayHK: " + quote(env.Result.ResultCode) + " (U)"
		if m := env.Result.ResultMessage; m != "" {
			j.Error += ": " + quote(m)
		}
		return j
	default:
		return judgement{Outcome: OutcomeBadReply, Error: "reply: signed, but result.resultStatus is not S, F or U"}
	}
	j.Reply = storedReply(rep)
	return j
}

// storedReply keeps a final reply: its status, the headers that identify
// and prove it (under their wire names, as ingress stores its replies),
// and the body byte for byte.
func storedReply(rep Reply) *store.Reply {
	h := map[string][]string{}
	for _, name := range []string{orderflow.HeaderContentType, orderflow.HeaderResponseTime, orderflow.HeaderClientID, orderflow.HeaderSignature, orderflow.HeaderTracerID} {
		if v := headerValues(rep.Header, name); len(v) > 0 {
			h[name] = append([]string(nil), v...)
		}
	}
	return &store.Reply{Status: rep.Status, Header: h, Body: append([]byte(nil), rep.Body...)}
}

// headerValues returns every value of the header name, whatever the case
// of the keys in h: a Sender may hand over a header map written with
// lowercase names (as AlipayHK and this project's ingress write them)
// rather than one parsed by net/http.
func headerValues(h http.Header, name string) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// quote bounds a text from AlipayHK for lastError and log lines: one line,
// at most maxQuoted bytes.
func quote(s string) string { return message.Truncate(oneLine(s), maxQuoted) }

// oneLine replaces control characters so that a text cannot forge a log
// line or a header.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
