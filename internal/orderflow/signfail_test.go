package orderflow

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/caddy-alipay/ordersync/signature"
)

// withSigner returns a Flow like h's, over the same store, whose replies
// are signed by a fresh signer of the demo gateway key; the signer is
// returned so that a test can break it (Close makes every later Sign
// fail, as a broken OpenSSL key would).
func (h *harness) withSigner(t *testing.T) (*Flow, *signature.Signer) {
	t.Helper()
	s, err := signature.NewSigner(demoKeys(t).gateway)
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.flow.cfg
	cfg.Signer = &Signer{Key: s, KeyVersion: "1"}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

// TestReplyThatCannotBeSigned: when sign_responses is set and a reply
// cannot be signed, the caller gets an unsigned UNKNOWN_EXCEPTION (U, so
// it retries) that carries neither signature nor response-time (the SDKs
// accept an unsigned reply only when it is F or U and has neither), and
// nothing is stored: no unsigned reply is ever replayed, no S is
// committed that the caller was not told, the requestId is given up. The
// retry, signed again, is processed afresh: an upstream that already
// issued sees the same Idempotency-Key again.
func TestReplyThatCannotBeSigned(t *testing.T) {
	cases := []struct {
		name string
		// setup brings the store to where the case starts (through a
		// working flow) and returns the request to send.
		setup func(h *harness) order
		// upstream answers; breakAfterUpstream closes the signer once
		// the upstream answered (else it is closed before the request).
		upstream           func(Upstream) UpstreamReply
		breakAfterUpstream bool
		forwards           bool
		retry              Code // what the retry with a working signer gets
	}{
		{name: "S: the upstream issued, the reply cannot be signed",
			setup: func(h *harness) order { return newOrder("TICKETED") }, breakAfterUpstream: true, forwards: true, retry: Success},
		{name: "F from the upstream",
			setup:    func(h *harness) order { return newOrder("TICKETED") },
			upstream: replyWith(http.StatusConflict, `conflict`), breakAfterUpstream: true, forwards: true, retry: OrderStatusInvalid},
		{name: "F from the state machine",
			setup: func(h *harness) order { return h.accepted(newOrder("USED")).next("TICKETED") }, retry: OrderStatusInvalid},
		{name: "S of a re-sent current status",
			setup: func(h *harness) order { return h.accepted(newOrder("TICKETED")).next("TICKETED") }, retry: Success},
		{name: "U from the upstream",
			setup:    func(h *harness) order { return newOrder("TICKETED") },
			upstream: replyWith(http.StatusServiceUnavailable, `busy`), breakAfterUpstream: true, forwards: true, retry: UnknownException},
		{name: "F before the claim",
			setup: func(h *harness) order { o := newOrder("TICKETED"); o.status = "LOST"; return o }, retry: ParamIllegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			o := tc.setup(h)
			before := h.storedOrder(o)
			broken, signer := h.withSigner(t)
			if !tc.breakAfterUpstream {
				signer.Close()
			}
			h.up.answer(func(up Upstream) UpstreamReply {
				rep := issued(up)
				if tc.upstream != nil {
					rep = tc.upstream(up)
				}
				if tc.breakAfterUpstream {
					signer.Close()
				}
				return rep
			})
			calls := h.up.calls()
			req := h.request(o.body())
			a := broken.Serve(context.Background(), req, h.up)

			if a.Code != UnknownException || a.SignErr == nil {
				t.Fatalf("answer %s (SignErr %v), want UNKNOWN_EXCEPTION with the signing error: %s", a.Code, a.SignErr, a.Reply.Body)
			}
			var env Envelope
			if err := json.Unmarshal(a.Reply.Body, &env); err != nil || env.Result.ResultCode != string(UnknownException) || env.Result.ResultStatus != "U" {
				t.Errorf("reply body %s, want the U envelope", a.Reply.Body)
			}
			for _, name := range []string{HeaderSignature, HeaderResponseTime} {
				if v, ok := a.Reply.Header[name]; ok {
					t.Errorf("the unsigned reply carries %s %v", name, v)
				}
			}
			if got := a.Reply.Header[HeaderClientID]; len(got) != 1 || got[0] != testClient {
				t.Errorf("client-id %v, want the caller's", got)
			}
			if got := a.Reply.Header[HeaderContentType]; len(got) != 1 || got[0] != ContentTypeJSON {
				t.Errorf("Content-Type %v", got)
			}
			if got := h.up.calls() - calls; got != b2i(tc.forwards) {
				t.Errorf("upstream called %d times, want %d", got, b2i(tc.forwards))
			}
			h.st.Wait()
			if after := h.storedOrder(o); !reflect.DeepEqual(before, after) {
				t.Errorf("the order changed without a signed S: %+v -> %+v", before, after)
			}
			if rec := h.storedReply(o); rec != nil {
				t.Errorf("a reply that could not be signed was stored: %+v", rec)
			}

			// The retry, with the signer working again, is processed
			// afresh and answered signed (h.send checks the signature).
			h.up.answer(tc.upstream)
			calls = h.up.calls()
			again := h.send(o.body())
			if again.Replay || again.Code != tc.retry {
				t.Fatalf("retry: %s (replay %v), want %s processed afresh: %s", again.Code, again.Replay, tc.retry, again.Reply.Body)
			}
			if got := h.up.calls() - calls; got != b2i(tc.forwards) {
				t.Errorf("retry: upstream called %d times, want %d", got, b2i(tc.forwards))
			}
			if tc.forwards {
				sent := h.up.sent
				first, retry := sent[len(sent)-2], sent[len(sent)-1]
				if k := first.Header.Get("Idempotency-Key"); k == "" || k != retry.Header.Get("Idempotency-Key") {
					t.Errorf("Idempotency-Key %q then %q, want the same", k, retry.Header.Get("Idempotency-Key"))
				}
			}
		})
	}
}

// TestReplayNeedsNoSigning: a stored reply is served as stored, signed
// when it was made, even while the signer is broken.
func TestReplayNeedsNoSigning(t *testing.T) {
	h := newHarness(t)
	o := newOrder("TICKETED")
	first := h.send(o.body())
	expect(t, first, Success, "success")
	h.st.Wait()
	broken, signer := h.withSigner(t)
	signer.Close()
	a := broken.Serve(context.Background(), h.request(o.body()), h.up)
	if !a.Replay || a.SignErr != nil || !bytes.Equal(a.Reply.Body, first.Reply.Body) || !reflect.DeepEqual(a.Reply.Header, first.Reply.Header) {
		t.Errorf("replay with a broken signer: replay %v, SignErr %v, %s %v; want the stored %s %v",
			a.Replay, a.SignErr, a.Reply.Body, a.Reply.Header, first.Reply.Body, first.Reply.Header)
	}
}
