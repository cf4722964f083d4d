package cli_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// fakeGateway is an httptest stand-in for the gateway: it checks the
// request's signature with the merchant key and answers reply, signed with
// the gateway key unless sign is false; tamper edits the body after signing.
type fakeGateway struct {
	t        *testing.T
	merchant *rsa.PublicKey
	gateway  *rsa.PrivateKey
	reply    string
	sign     bool
	tamper   func(body []byte) []byte
	status   int
	received chan []byte // if set, gets each request body
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if g.received != nil {
		g.received <- body
	}
	clientID, reqTime := r.Header.Get("Client-Id"), r.Header.Get("Request-Time")
	h, err := signature.ParseHeader(r.Header.Get("Signature"))
	if err == nil {
		err = signature.Verify(g.merchant, r.Method, r.URL.Path, clientID, reqTime, body, h.Signature)
	}
	reply := []byte(g.reply)
	if err != nil || r.Header.Get("Content-Type") != "application/json; charset=UTF-8" {
		g.t.Errorf("gateway: request does not verify: %v", err)
		reply = []byte(`{"result":{"resultCode":"INVALID_SIGNATURE","resultStatus":"F","resultMessage":"Signature: does not verify"}}`)
	}
	respTime := signature.FormatTime(time.Now())
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Response-Time", respTime)
	w.Header().Set("Client-Id", clientID)
	w.Header().Set("Tracer-Id", "tracer-1")
	if g.sign {
		sig, err := signature.Sign(g.gateway, r.Method, r.URL.Path, clientID, respTime, reply)
		if err != nil {
			g.t.Error(err)
		}
		w.Header().Set("Signature", signature.FormatHeader("1", sig))
	}
	if g.tamper != nil {
		reply = g.tamper(reply)
	}
	if g.status != 0 {
		w.WriteHeader(g.status)
	}
	w.Write(reply)
}

type sendFixture struct {
	merchantKey, gatewayPub, otherPub, body string
}

func sendSetup(t *testing.T) sendFixture {
	t.Helper()
	merchant, gateway := sharedKeys(t)
	dir := t.TempDir()
	return sendFixture{
		merchantKey: writeFile(t, dir, "merchant-private.pem", signature.EncodePrivateKeyPEM(merchant)),
		gatewayPub:  writeFile(t, dir, "gateway-public.pem", signature.EncodePublicKeyPEM(&gateway.PublicKey)),
		otherPub:    writeFile(t, dir, "merchant-public.pem", signature.EncodePublicKeyPEM(&merchant.PublicKey)),
		body:        writeFile(t, dir, "body.json", []byte(`{"requestId":"r1","merchantBizNo":"b1"}`+"\n")),
	}
}

const successReply = `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"o1","orderStatus":"TICKETED","distributeResult":[{"sceneCode":"PASS"}]}`

func sendVia(t *testing.T, f sendFixture, g *fakeGateway, extra ...string) (string, string, error) {
	t.Helper()
	merchant, gateway := sharedKeys(t)
	g.t, g.merchant, g.gateway = t, &merchant.PublicKey, gateway
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	args := append([]string{"send", "--url", srv.URL + "/api/open/alipay/v1/merchant/order/sync",
		"--client-id", "CLIENT-1", "--key", f.merchantKey}, extra...)
	return run(t, "", append(args, f.body)...)
}

func TestSendVerified(t *testing.T) {
	f := sendSetup(t)
	out, _, err := sendVia(t, f, &fakeGateway{reply: successReply, sign: true}, "--verify-key", f.gatewayPub)
	if err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	for _, want := range []string{
		"< Response-Time: ", "< Client-Id: CLIENT-1\n", "< Tracer-Id: tracer-1\n",
		"< Signature: algorithm=RSA256,keyVersion=1,signature=",
		"signature: verified\n",
		"{\n  \"result\": {\n    \"resultCode\": \"SUCCESS\",", // pretty, original key order
		"\nSUCCESS/S\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "signature: verified") > strings.Index(out, "{") {
		t.Error("verification line should precede the envelope")
	}

	// Without --verify-key the reply is shown but not judged.
	out, _, err = sendVia(t, f, &fakeGateway{reply: successReply, sign: true})
	if err != nil || strings.Contains(out, "signature: verified") || !strings.HasSuffix(out, "SUCCESS/S\n") {
		t.Fatalf("send without --verify-key: %v\n%s", err, out)
	}
}

func TestSendTamperedReply(t *testing.T) {
	f := sendSetup(t)
	tamper := func(b []byte) []byte { return bytes.Replace(b, []byte(`"o1"`), []byte(`"o2"`), 1) }
	out, _, err := sendVia(t, f, &fakeGateway{reply: successReply, sign: true, tamper: tamper}, "--verify-key", f.gatewayPub)
	if err == nil || !strings.Contains(err.Error(), "does not verify") || !strings.Contains(err.Error(), "--verify-key") {
		t.Fatalf("tampered reply: err = %v\n%s", err, out)
	}
	if strings.Contains(out, "signature: verified") || strings.Contains(out, "SUCCESS/S") {
		t.Fatalf("tampered reply reported as good:\n%s", out)
	}

	// The wrong public key fails the same way.
	_, _, err = sendVia(t, f, &fakeGateway{reply: successReply, sign: true}, "--verify-key", f.otherPub)
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("wrong --verify-key: err = %v", err)
	}
}

func TestSendUnsignedReply(t *testing.T) {
	f := sendSetup(t)
	const fail = `{"result":{"resultCode":"PARAM_ILLEGAL","resultStatus":"F","resultMessage":"requestId: required"}}`
	out, errOut, err := sendVia(t, f, &fakeGateway{reply: fail}, "--verify-key", f.gatewayPub)
	if err != nil || !strings.Contains(errOut, "warning: the reply has no Signature") || !strings.HasSuffix(out, "PARAM_ILLEGAL/F\n") {
		t.Fatalf("unsigned F reply: err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	_, _, err = sendVia(t, f, &fakeGateway{reply: successReply}, "--verify-key", f.gatewayPub)
	if err == nil || !strings.Contains(err.Error(), "no Signature header") {
		t.Fatalf("unsigned S reply: err = %v, want a failure", err)
	}
}

func TestSendBadReplies(t *testing.T) {
	f := sendSetup(t)
	_, _, err := sendVia(t, f, &fakeGateway{reply: `{"error":"bad gateway"}`, status: http.StatusBadGateway})
	if err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("502: err = %v", err)
	}
	out, _, err := sendVia(t, f, &fakeGateway{reply: `<html>hello</html>`})
	if err == nil || !strings.Contains(err.Error(), "not an order-sync envelope") || !strings.Contains(out, "<html>") {
		t.Fatalf("non-envelope: err = %v\n%s", err, out)
	}
	// A raw '+' in the signature fails the Go SDK's query-style unescape,
	// even though the lenient signature.ParseHeader would accept it.
	_, gateway := sharedKeys(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var respTime, raw string
		for i := int64(0); !strings.Contains(raw, "+"); i++ {
			respTime = strconv.FormatInt(1742977506708+i, 10)
			sig, _ := signature.Sign(gateway, "POST", r.URL.Path, "CLIENT-1", respTime, []byte(successReply))
			raw = base64.StdEncoding.EncodeToString(sig)
		}
		w.Header().Set("Response-Time", respTime)
		w.Header().Set("Client-Id", "CLIENT-1")
		w.Header().Set("Signature", "algorithm=RSA256,keyVersion=1,signature="+raw)
		io.WriteString(w, successReply)
	}))
	defer srv.Close()
	_, _, err = run(t, "", "send", "--url", srv.URL+"/x", "--client-id", "CLIENT-1", "--key", f.merchantKey,
		"--verify-key", f.gatewayPub, f.body)
	if err == nil || !strings.Contains(err.Error(), "%2B") {
		t.Fatalf("raw base64 signature: err = %v", err)
	}
}

func TestSendTimeout(t *testing.T) {
	f := sendSetup(t)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	_, _, err := run(t, "", "send", "--url", srv.URL, "--client-id", "C", "--key", f.merchantKey, "--timeout", "200ms", f.body)
	if err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("err = %v, want a timeout naming --timeout", err)
	}
}

// TestSendSet: --set changes the body before it is signed (the gateway
// verifies the signature over what it received) and nothing else of it.
func TestSendSet(t *testing.T) {
	f := sendSetup(t)
	g := &fakeGateway{reply: successReply, sign: true, received: make(chan []byte, 1)}
	out, _, err := sendVia(t, f, g, "--verify-key", f.gatewayPub,
		"--set", "requestId=r2", "--set", "orderModifyTime:=1742977600000")
	if err != nil {
		t.Fatalf("send --set: %v\n%s", err, out)
	}
	want := `{"requestId":"r2","merchantBizNo":"b1","orderModifyTime":1742977600000}` + "\n"
	if got := string(<-g.received); got != want {
		t.Errorf("the gateway received\n%s\nwant\n%s", got, want)
	}

	// A mistake is reported before anything is sent.
	for _, set := range []string{"requestId", "=x", "amount:={", ":=1"} {
		_, _, err := sendVia(t, f, &fakeGateway{reply: successReply}, "--set", set)
		if err == nil || !strings.Contains(err.Error(), "--set") {
			t.Errorf("--set %q: got %v, want an error naming --set", set, err)
		}
	}
}
