package caddytest

// The legacy system's callback receiver (Standard Webhooks), and the relay
// that sits between an egress Caddy and an ingress Caddy to lose or hold
// the ingress's answers after the ingress has acted on them.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pushNewSecret returns a fresh Standard Webhooks secret: "whsec_" and the
// base64 of 24 random bytes.
func pushNewSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// webhookSign is the Standard Webhooks signature of one delivery:
// v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>, where key is
// the base64 after an optional "whsec_" prefix of secret.
func webhookSign(secret, id, timestamp string, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("secret is not base64 after the optional whsec_ prefix: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// webhookVerify checks a delivery as a Standard Webhooks library does: the
// webhook-signature header is a space-separated list, one matching v1
// signature is enough; the timestamp must be within 5 minutes of now.
func webhookVerify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing webhook-id, webhook-timestamp or webhook-signature (%q, %q, %q)", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %q is %s away from now", ts, d)
	}
	want, err := webhookSign(secret, id, ts, body)
	if err != nil {
		return err
	}
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no v1 signature in webhook-signature matches")
}

// hookDelivery is one callback the receiver got.
type hookDelivery struct {
	at        time.Time
	id        string
	timestamp string
	body      []byte
	problem   string // "" when it verified
	status    int    // what the receiver answered
	entry     pushEntry
}

// hookReceiver is the legacy system's callback endpoint. It verifies each
// delivery with the secret and can fail the first deliveries of an entry.
type hookReceiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []hookDelivery
	fail   map[string]int // requestId -> deliveries still to answer 500
}

func newHookReceiver(t testing.TB, secret string) *hookReceiver {
	t.Helper()
	h := &hookReceiver{t: t, secret: secret, fail: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + "/hooks/order-push" }

// failFirst makes the first n deliveries for requestID answer HTTP 500.
func (h *hookReceiver) failFirst(requestID string, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[requestID] = n
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d := hookDelivery{at: time.Now(), id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"), body: body}
	if r.Method != http.MethodPost || r.URL.Path != "/hooks/order-push" {
		d.problem = "callback sent as " + r.Method + " " + r.URL.Path
	} else if err := webhookVerify(h.secret, r.Header, body, d.at); err != nil {
		d.problem = err.Error()
	}
	var e pushEntry
	if err := json.Unmarshal(body, &e); err != nil {
		d.problem += "; body is not the entry: " + err.Error()
	}
	_ = json.Unmarshal(body, &e.raw)
	d.entry = e
	h.mu.Lock()
	d.status = http.StatusNoContent // a 2xx that is not 200
	if h.fail[e.RequestID] > 0 {
		h.fail[e.RequestID]--
		d.status = http.StatusInternalServerError
	}
	h.got = append(h.got, d)
	h.mu.Unlock()
	w.WriteHeader(d.status)
}

// of is every delivery about requestID, in arrival order.
func (h *hookReceiver) of(requestID string) []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookDelivery
	for _, d := range h.got {
		if d.entry.RequestID == requestID {
			out = append(out, d)
		}
	}
	return out
}

// await waits until a delivery about requestID in state was answered 2xx
// and returns every delivery about it so far.
func (h *hookReceiver) await(t testing.TB, requestID, state string, timeout time.Duration) []hookDelivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ds := h.of(requestID)
		for _, d := range ds {
			if d.entry.State == state && d.status/100 == 2 {
				return ds
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acknowledged callback for %s in state %s after %s; deliveries: %d", requestID, state, timeout, len(ds))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkVerified asserts that every delivery verified.
func (h *hookReceiver) checkVerified(t testing.TB, ds []hookDelivery) {
	t.Helper()
	for i, d := range ds {
		if d.problem != "" {
			t.Errorf("callback %d (webhook-id %q) does not verify as Standard Webhooks: %s", i+1, d.id, d.problem)
		}
	}
}

// pushRelay forwards the egress's attempts to an ingress Caddy and can lose
// or hold the ingress's answers. It always lets the ingress finish (the
// forward does not depend on the egress's connection), so an answer that is
// lost or held here was acted on by the ingress: the case the ingress's
// replay exists for.
type pushRelay struct {
	t      testing.TB
	srv    *httptest.Server
	target string // base URL of the ingress
	client *http.Client

	mu       sync.Mutex
	seen     map[string]int      // requestId -> attempts relayed
	replies  map[string][][]byte // requestId -> the ingress's answers, in order
	lose     map[string]int      // requestId -> answers to replace with a 502
	passLeft int                 // answers to pass before holding (when holding)
	holding  bool
	gate     chan struct{}
	held     map[string]bool // requestIds whose answer is being held
}

func newPushRelay(t testing.TB, target string) *pushRelay {
	t.Helper()
	p := &pushRelay{t: t, target: target, client: &http.Client{Timeout: 60 * time.Second},
		seen: map[string]int{}, replies: map[string][][]byte{}, lose: map[string]int{}, held: map[string]bool{}, gate: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.release()
		p.srv.Close()
	})
	return p
}

func (p *pushRelay) addr() string { return p.srv.Listener.Addr().String() }

// loseNext replaces the next n answers for requestID with an HTTP 502.
func (p *pushRelay) loseNext(requestID string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose[requestID] = n
}

// holdAfter passes n more answers, then holds every answer until release.
func (p *pushRelay) holdAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.passLeft, p.holding = n, true
}

// release lets held answers go (to callers still there) and stops holding.
func (p *pushRelay) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holding = false
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// heldIDs lists the requestIds whose answer was held.
func (p *pushRelay) heldIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.held {
		out = append(out, id)
	}
	return out
}

func (p *pushRelay) count(requestID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[requestID]
}

func (p *pushRelay) answers(requestID string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.replies[requestID]...)
}

func (p *pushRelay) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var f struct {
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal(body, &f)
	// The ingress finishes whatever the egress does meanwhile.
	ctx := context.WithoutCancel(r.Context())
	req, err := http.NewRequestWithContext(ctx, r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection":
			continue
		}
		req.Header[k] = vs
	}
	p.mu.Lock()
	p.seen[f.RequestID]++
	p.mu.Unlock()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}

	p.mu.Lock()
	p.replies[f.RequestID] = append(p.replies[f.RequestID], answer)
	lost := p.lose[f.RequestID] > 0
	if lost {
		p.lose[f.RequestID]--
	}
	hold := false
	if p.holding && !lost {
		if p.passLeft > 0 {
			p.passLeft--
		} else {
			hold = true
			p.held[f.RequestID] = true
		}
	}
	gate := p.gate
	p.mu.Unlock()

	if lost {
		http.Error(w, "answer lost on the way back", http.StatusBadGateway)
		return
	}
	if hold {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	for k, vs := range resp.Header {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// pushIssuer is the ingress's upstream in the loop tests: it issues an
// orderId per call and records every call, so that effects can be counted
// per requestId. Orders whose merchantBizNo starts with "UPF-" are refused
// with PARAM_ILLEGAL.
type pushIssuer struct {
	*fakeUpstream
	mu     sync.Mutex
	calls  map[string]int    // requestId -> calls
	issued map[string]string // requestId -> orderId of its last call
	status map[string]string // requestId -> orderStatus
	bizNo  map[string]string // requestId -> merchantBizNo
	order  map[string][]string
}

func newPushIssuer(t testing.TB) *pushIssuer {
	t.Helper()
	p := &pushIssuer{calls: map[string]int{}, issued: map[string]string{}, status: map[string]string{},
		bizNo: map[string]string{}, order: map[string][]string{}}
	p.fakeUpstream = newUpstream(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct{ RequestID, MerchantBizNo, OrderStatus string }
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(req.MerchantBizNo, "UPF-") {
			p.mu.Lock()
			p.calls[req.RequestID]++
			p.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"resultCode":"PARAM_ILLEGAL","resultMessage":"extInfo.product_id: unknown product"}`)
			return
		}
		id := "ISS-" + uid(12)
		p.mu.Lock()
		p.calls[req.RequestID]++
		p.issued[req.RequestID] = id
		p.status[req.RequestID] = req.OrderStatus
		p.bizNo[req.RequestID] = req.MerchantBizNo
		p.order[req.MerchantBizNo] = append(p.order[req.MerchantBizNo], req.OrderStatus)
		p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"orderId": id, "distributeResult": []any{map[string]any{"sceneCode": "PASS"}}})
	})
	return p
}

func (p *pushIssuer) callsOf(requestID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[requestID]
}

func (p *pushIssuer) orderIDOf(requestID string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issued[requestID]
}

// effects summarizes the calls: requestIds called more than once, and
// (merchantBizNo, orderStatus) pairs that arrived under more than one
// requestId. Both must be empty for "exactly one effect".
func (p *pushIssuer) effects() (repeated []string, split []string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := map[string]map[string]bool{}
	for id, n := range p.calls {
		total++
		if n > 1 {
			repeated = append(repeated, fmt.Sprintf("%s called %d times", id, n))
		}
		key := p.bizNo[id] + "/" + p.status[id]
		if ids[key] == nil {
			ids[key] = map[string]bool{}
		}
		ids[key][id] = true
	}
	for key, set := range ids {
		if len(set) > 1 {
			split = append(split, fmt.Sprintf("%s under %d requestIds", key, len(set)))
		}
	}
	return repeated, split, total
}

// laneOrder is the statuses of one order as they reached the issuer.
func (p *pushIssuer) laneOrder(bizNo string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.order[bizNo]...)
}
