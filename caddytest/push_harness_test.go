package caddytest

// Checks of the egress tests' own parts: the AlipayHK stand-in, the
// Standard Webhooks verifier, the relay. They do not need the egress
// handler; they keep the egress tests from passing or failing because a
// helper is wrong.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// pushSignedAttempt is an attempt as the egress delivery rule "Each attempt"
// describes it, made by the test itself: what an egress must send.
func pushSignedAttempt(t testing.TB, url string, body []byte, key string) (*http.Response, []byte, error) {
	t.Helper()
	rt := fmt.Sprint(time.Now().UnixMilli())
	sig, err := signature.Sign(demoKeys(t).merchant, http.MethodPost, syncPath, testClient, rt, body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("Client-Id", testClient)
	req.Header.Set("Request-Time", rt)
	req.Header.Set("Signature", signature.FormatHeader(key, sig))
	// A connection of its own each time: a pooled one to a listener that
	// was closed since would fail with EOF rather than "refused".
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// pushReplyVerifies is the egress delivery rule "Reply check", as the tests
// understand it: HTTP 200, and the signature verifies over
// POST <path>\n<Client-Id>.<Response-Time>.<body> with AlipayHK's key.
func pushReplyVerifies(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	h, err := signature.ParseHeader(resp.Header.Get("signature"))
	if err != nil {
		return err
	}
	k := keys.gatewayPublic
	return signature.Verify(k, http.MethodPost, syncPath, resp.Header.Get("client-id"), resp.Header.Get("response-time"), body, h.Signature)
}

func TestPushHarnessStandIn(t *testing.T) {
	t.Parallel()
	a := newAlipayStandIn(t)
	a.setKeyVersion("2")
	url := "http://" + a.addr() + syncPath
	o := newOrder()
	id, biz := o.str("requestId"), o.str("merchantBizNo")
	a.script(biz, ahkU, ahkUnsigned, ahkWrongKey, ahkTruncated, ahkReset, ahk5xx, ahkF("ORDER_STATUS_INVALID"))

	// U: signed, verifies, not final.
	resp, body, err := pushSignedAttempt(t, url, o.bytes(), "2")
	if err != nil || pushReplyVerifies(resp, body) != nil || !strings.Contains(string(body), `"resultStatus":"U"`) {
		t.Fatalf("U: %v %s", err, body)
	}
	if resp.Header.Get("response-time") == "" || resp.Header.Get("client-id") != testClient {
		t.Errorf("U: headers %v", resp.Header)
	}
	// Unsigned: no signature.
	resp, body, _ = pushSignedAttempt(t, url, o.bytes(), "2")
	if pushReplyVerifies(resp, body) == nil || !strings.Contains(string(body), `"resultStatus":"S"`) {
		t.Errorf("unsigned S verified: %v %s", resp.Header, body)
	}
	// Wrong key: signed, does not verify.
	resp, body, _ = pushSignedAttempt(t, url, o.bytes(), "2")
	if resp.Header.Get("signature") == "" || pushReplyVerifies(resp, body) == nil {
		t.Errorf("wrong-key S: %v", resp.Header)
	}
	// Truncated: the client sees the body cut short.
	if _, _, err := pushSignedAttempt(t, url, o.bytes(), "2"); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("truncated: err %v, want unexpected EOF", err)
	}
	// Reset: a transport error.
	if _, _, err := pushSignedAttempt(t, url, o.bytes(), "2"); err == nil {
		t.Error("reset: no transport error")
	}
	resp, _, _ = pushSignedAttempt(t, url, o.bytes(), "2")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("5xx: HTTP %d", resp.StatusCode)
	}
	// F, then the last step sticks.
	for i := 0; i < 2; i++ {
		resp, body, _ = pushSignedAttempt(t, url, o.bytes(), "2")
		if pushReplyVerifies(resp, body) != nil || !strings.Contains(string(body), `"resultCode":"ORDER_STATUS_INVALID"`) {
			t.Errorf("F %d: %s", i, body)
		}
	}
	atts := a.attemptsOf(id)
	if len(atts) != 8 {
		t.Fatalf("recorded %d attempts, want 8", len(atts))
	}
	a.checkWellFormed(t, id)
	if got := a.finalReply(t, id); !bytes.Equal(got, body) {
		t.Errorf("finalReply %s, want %s", got, body)
	}

	// A wrong keyVersion, a bad signature and an ISO Request-Time are
	// recorded as problems.
	o2 := newOrder()
	_, _, _ = pushSignedAttempt(t, url, o2.bytes(), "1")
	if p := a.attemptsOf(o2.str("requestId"))[0].problem; !strings.Contains(p, "keyVersion=2") {
		t.Errorf("keyVersion 1 not refused: %q", p)
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(o2.bytes()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Client-Id", testClient)
	req.Header.Set("Request-Time", time.Now().UTC().Format(time.RFC3339))
	req.Header.Set("Signature", "algorithm=RSA256,keyVersion=2,signature=AAAA")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if atts := a.attemptsOf(o2.str("requestId")); len(atts) != 2 || !strings.Contains(atts[1].problem, "epoch milliseconds") {
		t.Errorf("ISO Request-Time not refused: %+v", atts)
	}

	// Replay mode: the same requestId and body get the same bytes and
	// headers; another body gets PARAM_ILLEGAL.
	a.setReplay(true)
	o3 := newOrder()
	r1, b1, _ := pushSignedAttempt(t, url, o3.bytes(), "2")
	time.Sleep(5 * time.Millisecond)
	r2, b2, _ := pushSignedAttempt(t, url, o3.bytes(), "2")
	if !bytes.Equal(b1, b2) || r1.Header.Get("signature") != r2.Header.Get("signature") || r1.Header.Get("response-time") != r2.Header.Get("response-time") {
		t.Errorf("replay differs:\n%s %v\n%s %v", b1, r1.Header, b2, r2.Header)
	}
	_, b3, _ := pushSignedAttempt(t, url, o3.with("tradeNo", "other").bytes(), "2")
	if !strings.Contains(string(b3), "PARAM_ILLEGAL") {
		t.Errorf("replay with another body: %s", b3)
	}

	// Hold: decided on arrival, answered on release.
	o4 := newOrder()
	a.script(o4.str("requestId"), ahkHold)
	done := make(chan []byte)
	go func() { _, b, _ := pushSignedAttempt(t, url, o4.bytes(), "2"); done <- b }()
	select {
	case <-done:
		t.Fatal("hold answered before release")
	case <-time.After(300 * time.Millisecond):
	}
	a.release()
	if b := <-done; !strings.Contains(string(b), `"resultStatus":"S"`) {
		t.Errorf("hold: %s", b)
	}

	// Closed listener: refused; reopened: same address.
	a.closeListener()
	if _, _, err := pushSignedAttempt(t, url, newOrder().bytes(), "2"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed listener: %v", err)
	}
	a.reopen(t)
	if resp, _, err := pushSignedAttempt(t, url, newOrder().bytes(), "2"); err != nil || resp.StatusCode != 200 {
		t.Errorf("reopened: %v", err)
	}
}

func TestPushHarnessWebhookVerifier(t *testing.T) {
	t.Parallel()
	// The published Standard Webhooks test vector.
	const secret, id, ts, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232314}`
	got, err := webhookSign(secret, id, ts, []byte(body))
	if err != nil || got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("webhookSign = %q, %v", got, err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", ts)
	h.Set("webhook-signature", "v1,bm9wZQ== "+got)
	if err := webhookVerify(secret, h, []byte(body), time.Unix(1614265330, 0)); err != nil {
		t.Errorf("vector does not verify: %v", err)
	}
	if err := webhookVerify(strings.TrimPrefix(secret, "whsec_"), h, []byte(body), time.Unix(1614265330, 0)); err != nil {
		t.Errorf("vector without the whsec_ prefix does not verify: %v", err)
	}
	if webhookVerify(secret, h, []byte(body+" "), time.Unix(1614265330, 0)) == nil {
		t.Error("a changed body verifies")
	}
	if webhookVerify(secret, h, []byte(body), time.Unix(1614265330+3600, 0)) == nil {
		t.Error("an hour-old timestamp verifies")
	}

	// The receiver: fails the first deliveries, then 204.
	s := pushNewSecret()
	rcv := newHookReceiver(t, s)
	rcv.failFirst("R1", 1)
	entry := []byte(`{"requestId":"R1","state":"succeeded"}`)
	for i, want := range []int{500, 204} {
		now := fmt.Sprint(time.Now().Unix())
		sig, _ := webhookSign(s, "wh-1", now, entry)
		req, _ := http.NewRequest(http.MethodPost, rcv.url(), bytes.NewReader(entry))
		req.Header.Set("webhook-id", "wh-1")
		req.Header.Set("webhook-timestamp", now)
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("delivery %d: %v %v, want %d", i, err, resp, want)
		}
		resp.Body.Close()
	}
	ds := rcv.await(t, "R1", "succeeded", time.Second)
	rcv.checkVerified(t, ds)
	if len(ds) != 2 {
		t.Errorf("%d deliveries recorded", len(ds))
	}
}

// TestPushHarnessRelayToIngress: the relay passes a signed attempt to a
// real ingress unchanged (it verifies there), and a lost answer is
// replayed byte for byte by the ingress on the next attempt.
func TestPushHarnessRelayToIngress(t *testing.T) {
	t.Parallel()
	issuer := newPushIssuer(t)
	ingress := gateway{upstream: issuer.addr(), options: allScenarios}.start(t)
	relay := newPushRelay(t, fmt.Sprintf("http://127.0.0.1:%d", ingress.port))
	o := newOrder()
	id := o.str("requestId")
	relay.loseNext(id, 1)
	url := "http://" + relay.addr() + syncPath
	resp, _, err := pushSignedAttempt(t, url, o.bytes(), "1")
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("lost answer: %v %v", err, resp)
	}
	resp, body, err := pushSignedAttempt(t, url, o.bytes(), "1")
	if err != nil || pushReplyVerifies(resp, body) != nil {
		t.Fatalf("second attempt: %v %s", err, body)
	}
	var env envelope
	_ = json.Unmarshal(body, &env)
	if env.Result.ResultCode != "SUCCESS" || env.OrderID != issuer.orderIDOf(id) {
		t.Errorf("answer %s, issued %s", body, issuer.orderIDOf(id))
	}
	if ans := relay.answers(id); len(ans) != 2 || !bytes.Equal(ans[0], ans[1]) {
		t.Errorf("the ingress did not replay byte for byte: %q", ans)
	}
	if n := issuer.callsOf(id); n != 1 {
		t.Errorf("issuer called %d times", n)
	}
	relay.holdAfter(0)
	o2 := newOrder()
	done := make(chan error, 1)
	go func() { _, _, err := pushSignedAttempt(t, url, o2.bytes(), "1"); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for len(relay.heldIDs()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if issuer.callsOf(o2.str("requestId")) != 1 {
		t.Error("a held answer was not acted on by the ingress first")
	}
	relay.release()
	if err := <-done; err != nil {
		t.Errorf("held answer after release: %v", err)
	}
}
