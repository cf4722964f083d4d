package ordersync

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-alipay/ordersync/signature"
)

// cliRun runs `caddy alipay-order-sync ARGS` through a command tree built
// as Caddy builds it (caddyCmdToCobra + CobraFunc), and returns stdout, stderr and the error
// that makes Caddy exit non-zero.
func cliRun(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := &cobra.Command{
		Use:   cliCommand.Name + " " + cliCommand.Usage,
		Short: cliCommand.Short,
		Long:  cliCommand.Long,
	}
	cliCommand.CobraFunc(cmd)
	// Under a root, as in Caddy: cobra treats root commands differently.
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	root.AddCommand(cmd)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{cliCommand.Name}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

var cliTestKeys struct {
	once              sync.Once
	merchant, gateway *rsa.PrivateKey
	err               error
}

// cliKeys returns two key pairs shared by the tests: RSA generation is the
// slowest part of this file under -race.
func cliKeys(t *testing.T) (merchant, gateway *rsa.PrivateKey) {
	t.Helper()
	k := &cliTestKeys
	k.once.Do(func() {
		if k.merchant, k.err = signature.GenerateKey(); k.err == nil {
			k.gateway, k.err = signature.GenerateKey()
		}
	})
	if k.err != nil {
		t.Fatal(k.err)
	}
	return k.merchant, k.gateway
}

func cliWriteFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func cliCheckPair(t *testing.T, priv *rsa.PrivateKey, pub *rsa.PublicKey) {
	t.Helper()
	body := []byte(`{"a":1}`)
	sig, err := signature.Sign(priv, "POST", "/p", "C", "1", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.Verify(pub, "POST", "/p", "C", "1", body, sig); err != nil {
		t.Fatalf("the generated keys do not pair up: %v", err)
	}
}

func TestCommandRegistered(t *testing.T) {
	c, ok := caddycmd.Commands()["alipay-order-sync"]
	if !ok {
		t.Fatal("alipay-order-sync is not registered with caddycmd")
	}
	if c.CobraFunc == nil || c.Short == "" {
		t.Fatal("registered command lacks CobraFunc or Short")
	}
	cmd := &cobra.Command{Use: c.Name}
	c.CobraFunc(cmd)
	for _, name := range []string{"keygen", "sign", "send", "order", "request"} {
		sub, _, err := cmd.Find([]string{name})
		if err != nil || sub == cmd {
			t.Fatalf("sub-command %s missing: %v", name, err)
		}
		if sub.Short == "" || sub.Long == "" || sub.Example == "" || sub.RunE == nil {
			t.Errorf("%s: want Short, Long, Example and RunE", name)
		}
	}
}

func TestCommandUnknownSubcommand(t *testing.T) {
	_, _, err := cliRun(t, "", "sgin")
	if err == nil || !strings.Contains(err.Error(), `unknown sub-command "sgin"`) || !strings.Contains(err.Error(), "did you mean sign?") {
		t.Fatalf("err = %v, want an unknown sub-command error suggesting sign", err)
	}
	out, _, err := cliRun(t, "")
	if err != nil || !strings.Contains(out, "keygen") {
		t.Fatalf("bare command: err %v, out %q; want help listing sub-commands", err, out)
	}
}

func TestKeygenOutDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, err := cliRun(t, "", "keygen", "--out", dir, "--name", "gw")
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "gw-private.pem"), filepath.Join(dir, "gw-public.pem")
	privPEM, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(privPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("private key file is not a PKCS#8 PEM block")
	}
	if b, _ := pem.Decode(pubPEM); b == nil || b.Type != "PUBLIC KEY" {
		t.Fatalf("public key file is not an SPKI PEM block")
	}
	priv, err := signature.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if priv.N.BitLen() != 2048 {
		t.Fatalf("key is %d bits, want 2048", priv.N.BitLen())
	}
	cliCheckPair(t, priv, pub)
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(privPath); fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
		}
	}

	// The printed SDK forms are the same keys: one label line, then the value.
	lines := strings.Split(out, "\n")
	var privB64, pubB64 string
	for i, l := range lines {
		switch {
		case strings.Contains(l, "private key, SDK form (base64 PKCS#8 DER") && i+1 < len(lines):
			privB64 = lines[i+1]
		case strings.Contains(l, "public key, SDK form (base64 SPKI DER") && i+1 < len(lines):
			pubB64 = lines[i+1]
		}
	}
	if strings.Contains(out, "BEGIN") {
		t.Fatal("with --out, PEM must go to the files, not stdout")
	}
	sdkPriv, err := signature.ParsePrivateKey([]byte(privB64))
	if err != nil {
		t.Fatalf("printed private key: %v", err)
	}
	sdkPub, err := signature.ParsePublicKey([]byte(pubB64))
	if err != nil {
		t.Fatalf("printed public key: %v", err)
	}
	if !sdkPriv.Equal(priv) || !sdkPub.Equal(pub) {
		t.Fatal("printed base64 keys differ from the files")
	}
	if _, err := base64.StdEncoding.DecodeString(privB64); err != nil {
		t.Fatal("private SDK form is not std base64")
	}

	// A second run must not touch the existing pair.
	_, _, err = cliRun(t, "", "keygen", "--out", dir, "--name", "gw")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen: err = %v, want a refusal to overwrite", err)
	}
	if again, _ := os.ReadFile(privPath); !bytes.Equal(again, privPEM) {
		t.Fatal("existing private key was overwritten")
	}
	// Nor a half-existing one.
	os.Remove(privPath)
	if _, _, err = cliRun(t, "", "keygen", "--out", dir, "--name", "gw"); err == nil {
		t.Fatal("keygen overwrote an existing public key")
	}
	if _, err := os.Stat(privPath); !os.IsNotExist(err) {
		t.Fatal("refused keygen still left a private key behind")
	}
}

func TestKeygenStdout(t *testing.T) {
	out, _, err := cliRun(t, "", "keygen")
	if err != nil {
		t.Fatal(err)
	}
	var priv *rsa.PrivateKey
	var pub *rsa.PublicKey
	rest := []byte(out)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			priv, err = signature.ParsePrivateKey(pem.EncodeToMemory(b))
		case "PUBLIC KEY":
			pub, err = signature.ParsePublicKey(pem.EncodeToMemory(b))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if priv == nil || pub == nil {
		t.Fatalf("stdout lacks a PEM pair:\n%s", out)
	}
	cliCheckPair(t, priv, pub)
	if !strings.Contains(out, "merchant public key, SDK form") {
		t.Fatal("stdout lacks the labelled SDK forms (default --name merchant)")
	}
}

func TestKeygenBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"keygen", "--name", "../evil"},
		{"keygen", "--name", ""},
		{"keygen", "stray"},
	} {
		if _, _, err := cliRun(t, "", args...); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

// cliSignOutput parses the four header lines sign prints.
func cliSignOutput(t *testing.T, out string) map[string]string {
	t.Helper()
	h := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("sign printed %d lines, want 4:\n%s", len(lines), out)
	}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		h[name] = value
	}
	return h
}

func TestSignBodyFile(t *testing.T) {
	merchant, _ := cliKeys(t)
	dir := t.TempDir()
	keyFile := cliWriteFile(t, dir, "m.pem", signature.EncodePrivateKeyPEM(merchant))
	// A trailing newline is part of what gets sent with --data-binary.
	body := []byte("{\"requestId\":\"r1\", \"amount\":{\"value\":\"100\"}}\n")
	bodyFile := cliWriteFile(t, dir, "body.json", body)

	before := time.Now().UnixMilli()
	out, _, err := cliRun(t, "", "sign", "--client-id", "CLIENT-1", "--key", keyFile, "--key-version", "3", bodyFile)
	if err != nil {
		t.Fatal(err)
	}
	h := cliSignOutput(t, out)
	if h["Client-Id"] != "CLIENT-1" || h["Content-Type"] != "application/json; charset=UTF-8" {
		t.Fatalf("headers %v", h)
	}
	reqTime, err := signature.ParseTime(h["Request-Time"])
	if err != nil || reqTime.UnixMilli() < before || reqTime.UnixMilli() > time.Now().UnixMilli() {
		t.Fatalf("Request-Time %q is not now in epoch ms (%v)", h["Request-Time"], err)
	}
	if !strings.HasPrefix(h["Signature"], "algorithm=RSA256,keyVersion=3,signature=") {
		t.Fatalf("Signature %q", h["Signature"])
	}
	parsed, err := signature.ParseHeader(h["Signature"])
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/open/alipay/v1/merchant/order/sync"
	if err := signature.Verify(&merchant.PublicKey, "POST", path, "CLIENT-1", h["Request-Time"], body, parsed.Signature); err != nil {
		t.Fatalf("printed Signature does not verify: %v", err)
	}
	if signature.Verify(&merchant.PublicKey, "POST", path, "CLIENT-1", h["Request-Time"], bytes.TrimSpace(body), parsed.Signature) == nil {
		t.Fatal("the body was trimmed before signing")
	}

	// stdin, explicit method, path and ISO time.
	const iso = "2024-05-22T06:42:21+05:30"
	out, _, err = cliRun(t, string(body), "sign", "--client-id", "CLIENT-1", "--key", keyFile,
		"--method", "PUT", "--path", "/other", "--time", iso, "-")
	if err != nil {
		t.Fatal(err)
	}
	h = cliSignOutput(t, out)
	parsed, err = signature.ParseHeader(h["Signature"])
	if err != nil || h["Request-Time"] != iso || parsed.KeyVersion != "1" {
		t.Fatalf("headers %v, %v", h, err)
	}
	if err := signature.Verify(&merchant.PublicKey, "PUT", "/other", "CLIENT-1", iso, body, parsed.Signature); err != nil {
		t.Fatalf("stdin signature does not verify: %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	merchant, _ := cliKeys(t)
	dir := t.TempDir()
	privFile := cliWriteFile(t, dir, "m.pem", signature.EncodePrivateKeyPEM(merchant))
	pubFile := cliWriteFile(t, dir, "m-pub.pem", signature.EncodePublicKeyPEM(&merchant.PublicKey))
	bodyFile := cliWriteFile(t, dir, "b.json", []byte(`{}`))
	missing := filepath.Join(dir, "nope.pem")

	cases := []struct {
		args []string
		want []string // substrings of the error
	}{
		{[]string{"sign", "--client-id", "C", "--key", missing, bodyFile}, []string{"--key", "nope.pem"}},
		{[]string{"sign", "--client-id", "C", "--key", pubFile, bodyFile}, []string{"--key", "m-pub.pem", "public key"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, filepath.Join(dir, "nobody.json")}, []string{"BODY_FILE", "nobody.json"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile}, []string{"missing BODY_FILE"}},
		{[]string{"sign", "--key", privFile, bodyFile}, []string{"client-id"}},
		{[]string{"sign", "--client-id", " C", "--key", privFile, bodyFile}, []string{"--client-id"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--time", "yesterday", bodyFile}, []string{"--time"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--key-version", "1;2", bodyFile}, []string{"--key-version"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--path", "api", bodyFile}, []string{"--path"}},
	}
	pubB64 := signature.EncodePublicKeyBase64(&merchant.PublicKey)
	for _, tc := range cases {
		out, errOut, err := cliRun(t, "", tc.args...)
		if err == nil {
			t.Errorf("%q: accepted", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.args, err, w)
			}
		}
		// No key material, ever, in any output of a failed run.
		for _, s := range []string{err.Error(), out, errOut} {
			if strings.Contains(s, "MII") || strings.Contains(s, pubB64[40:80]) {
				t.Errorf("%q: output contains key material", tc.args)
			}
		}
	}
}

// cliGateway is an httptest stand-in for the gateway: it checks the
// request's signature with the merchant key and answers reply, signed with
// the gateway key unless sign is false; tamper edits the body after signing.
type cliGateway struct {
	t        *testing.T
	merchant *rsa.PublicKey
	gateway  *rsa.PrivateKey
	reply    string
	sign     bool
	tamper   func(body []byte) []byte
	status   int
	received chan []byte // if set, gets each request body
}

func (g *cliGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

type cliSendFixture struct {
	merchantKey, gatewayPub, otherPub, body string
}

func cliSendSetup(t *testing.T) cliSendFixture {
	t.Helper()
	merchant, gateway := cliKeys(t)
	dir := t.TempDir()
	return cliSendFixture{
		merchantKey: cliWriteFile(t, dir, "merchant-private.pem", signature.EncodePrivateKeyPEM(merchant)),
		gatewayPub:  cliWriteFile(t, dir, "gateway-public.pem", signature.EncodePublicKeyPEM(&gateway.PublicKey)),
		otherPub:    cliWriteFile(t, dir, "merchant-public.pem", signature.EncodePublicKeyPEM(&merchant.PublicKey)),
		body:        cliWriteFile(t, dir, "body.json", []byte(`{"requestId":"r1","merchantBizNo":"b1"}`+"\n")),
	}
}

const cliSuccessReply = `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"o1","orderStatus":"TICKETED","distributeResult":[{"sceneCode":"PASS"}]}`

func cliSendVia(t *testing.T, f cliSendFixture, g *cliGateway, extra ...string) (string, string, error) {
	t.Helper()
	merchant, gateway := cliKeys(t)
	g.t, g.merchant, g.gateway = t, &merchant.PublicKey, gateway
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	args := append([]string{"send", "--url", srv.URL + "/api/open/alipay/v1/merchant/order/sync",
		"--client-id", "CLIENT-1", "--key", f.merchantKey}, extra...)
	return cliRun(t, "", append(args, f.body)...)
}

func TestSendVerified(t *testing.T) {
	f := cliSendSetup(t)
	out, _, err := cliSendVia(t, f, &cliGateway{reply: cliSuccessReply, sign: true}, "--verify-key", f.gatewayPub)
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
	out, _, err = cliSendVia(t, f, &cliGateway{reply: cliSuccessReply, sign: true})
	if err != nil || strings.Contains(out, "signature: verified") || !strings.HasSuffix(out, "SUCCESS/S\n") {
		t.Fatalf("send without --verify-key: %v\n%s", err, out)
	}
}

func TestSendTamperedReply(t *testing.T) {
	f := cliSendSetup(t)
	tamper := func(b []byte) []byte { return bytes.Replace(b, []byte(`"o1"`), []byte(`"o2"`), 1) }
	out, _, err := cliSendVia(t, f, &cliGateway{reply: cliSuccessReply, sign: true, tamper: tamper}, "--verify-key", f.gatewayPub)
	if err == nil || !strings.Contains(err.Error(), "does not verify") || !strings.Contains(err.Error(), "--verify-key") {
		t.Fatalf("tampered reply: err = %v\n%s", err, out)
	}
	if strings.Contains(out, "signature: verified") || strings.Contains(out, "SUCCESS/S") {
		t.Fatalf("tampered reply reported as good:\n%s", out)
	}

	// The wrong public key fails the same way.
	_, _, err = cliSendVia(t, f, &cliGateway{reply: cliSuccessReply, sign: true}, "--verify-key", f.otherPub)
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("wrong --verify-key: err = %v", err)
	}
}

func TestSendUnsignedReply(t *testing.T) {
	f := cliSendSetup(t)
	const fail = `{"result":{"resultCode":"PARAM_ILLEGAL","resultStatus":"F","resultMessage":"requestId: required"}}`
	out, errOut, err := cliSendVia(t, f, &cliGateway{reply: fail}, "--verify-key", f.gatewayPub)
	if err != nil || !strings.Contains(errOut, "warning: the reply has no Signature") || !strings.HasSuffix(out, "PARAM_ILLEGAL/F\n") {
		t.Fatalf("unsigned F reply: err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	_, _, err = cliSendVia(t, f, &cliGateway{reply: cliSuccessReply}, "--verify-key", f.gatewayPub)
	if err == nil || !strings.Contains(err.Error(), "no Signature header") {
		t.Fatalf("unsigned S reply: err = %v, want a failure", err)
	}
}

func TestSendBadReplies(t *testing.T) {
	f := cliSendSetup(t)
	_, _, err := cliSendVia(t, f, &cliGateway{reply: `{"error":"bad gateway"}`, status: http.StatusBadGateway})
	if err == nil || !strings.Contains(err.Error(), "HTTP 502") {
		t.Fatalf("502: err = %v", err)
	}
	out, _, err := cliSendVia(t, f, &cliGateway{reply: `<html>hello</html>`})
	if err == nil || !strings.Contains(err.Error(), "not an order-sync envelope") || !strings.Contains(out, "<html>") {
		t.Fatalf("non-envelope: err = %v\n%s", err, out)
	}
	// A raw '+' in the signature fails the Go SDK's query-style unescape,
	// even though the lenient signature.ParseHeader would accept it.
	_, gateway := cliKeys(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var respTime, raw string
		for i := int64(0); !strings.Contains(raw, "+"); i++ {
			respTime = strconv.FormatInt(1742977506708+i, 10)
			sig, _ := signature.Sign(gateway, "POST", r.URL.Path, "CLIENT-1", respTime, []byte(cliSuccessReply))
			raw = base64.StdEncoding.EncodeToString(sig)
		}
		w.Header().Set("Response-Time", respTime)
		w.Header().Set("Client-Id", "CLIENT-1")
		w.Header().Set("Signature", "algorithm=RSA256,keyVersion=1,signature="+raw)
		io.WriteString(w, cliSuccessReply)
	}))
	defer srv.Close()
	_, _, err = cliRun(t, "", "send", "--url", srv.URL+"/x", "--client-id", "CLIENT-1", "--key", f.merchantKey,
		"--verify-key", f.gatewayPub, f.body)
	if err == nil || !strings.Contains(err.Error(), "%2B") {
		t.Fatalf("raw base64 signature: err = %v", err)
	}
}

func TestSendTimeout(t *testing.T) {
	f := cliSendSetup(t)
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	_, _, err := cliRun(t, "", "send", "--url", srv.URL, "--client-id", "C", "--key", f.merchantKey, "--timeout", "200ms", f.body)
	if err == nil || !strings.Contains(err.Error(), "--timeout") {
		t.Fatalf("err = %v, want a timeout naming --timeout", err)
	}
}

// cliAdmin stands in for Caddy's admin endpoint on the CLI client side only;
// the real routes are tested end to end elsewhere.
func cliAdmin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("admin: method %s", r.Method)
		}
		q := r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/alipay_order_sync/order" && q.Get("client_id") == "C 1&x" && q.Get("merchant_biz_no") == "B/2+=?#":
			json.NewEncoder(w).Encode(OrderView{ClientID: "C 1&x", MerchantBizNo: "B/2+=?#", Scenario: "gift_card", Status: "TICKETED", OrderID: "o1"})
		case r.URL.Path == "/alipay_order_sync/request" && q.Get("client_id") == "C" && q.Get("request_id") == "r 1":
			json.NewEncoder(w).Encode(RequestView{ClientID: "C", RequestID: "r 1", State: "done", Reply: json.RawMessage(`{"result":{"resultCode":"SUCCESS"}}`)})
		case q.Get("client_id") == "down":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"state store: down"}`)
		case r.URL.Path == "/alipay_order_sync/order":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such order"}`+"\n")
		case r.URL.Path == "/alipay_order_sync/request":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such request"}`+"\n")
		default:
			t.Errorf("admin: unexpected %s", r.URL)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestCommandOrder(t *testing.T) {
	addr := cliAdmin(t)
	out, _, err := cliRun(t, "", "order", "--admin", addr, "--client-id", "C 1&x", "--merchant-biz-no", "B/2+=?#")
	if err != nil {
		t.Fatal(err)
	}
	var v OrderView
	if json.Unmarshal([]byte(out), &v) != nil || v.OrderID != "o1" || v.Status != "TICKETED" || !strings.Contains(out, "\n  \"clientId\"") {
		t.Fatalf("output:\n%s", out)
	}
	// A URL works as --admin too.
	if _, _, err = cliRun(t, "", "order", "--admin", "http://"+addr+"/", "--client-id", "C 1&x", "--merchant-biz-no", "B/2+=?#"); err != nil {
		t.Fatal(err)
	}
	_, _, err = cliRun(t, "", "order", "--admin", addr, "--client-id", "C", "--merchant-biz-no", "unknown")
	if err == nil || err.Error() != "no such order" {
		t.Fatalf("unknown order: err = %v", err)
	}
}

func TestCommandRequest(t *testing.T) {
	addr := cliAdmin(t)
	out, _, err := cliRun(t, "", "request", "--admin", addr, "--client-id", "C", "--request-id", "r 1")
	if err != nil || !strings.Contains(out, `"state": "done"`) || !strings.Contains(out, `"resultCode": "SUCCESS"`) {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	_, _, err = cliRun(t, "", "request", "--admin", addr, "--client-id", "C", "--request-id", "r2")
	if err == nil || err.Error() != "no such request" {
		t.Fatalf("unknown request: err = %v", err)
	}
}

func TestCommandAdminErrors(t *testing.T) {
	addr := cliAdmin(t)
	cmd := []string{"order", "--client-id", "C", "--merchant-biz-no", "B"}
	if _, _, err := cliRun(t, "", append(cmd, "--admin", "https://"+addr)...); err == nil || !strings.Contains(err.Error(), "--admin") {
		t.Fatalf("https admin: err = %v", err)
	}
	if _, _, err := cliRun(t, "", "order", "--admin", addr, "--client-id", "", "--merchant-biz-no", "B"); err == nil || !strings.Contains(err.Error(), "--client-id") {
		t.Fatalf("empty --client-id: err = %v", err)
	}
	if _, _, err := cliRun(t, "", "request", "--admin", addr, "--client-id", "C"); err == nil || !strings.Contains(err.Error(), "request-id") {
		t.Fatalf("missing --request-id: err = %v", err)
	}
	// Nothing listening: say where we looked.
	l := httptest.NewServer(http.NotFoundHandler())
	dead := strings.TrimPrefix(l.URL, "http://")
	l.Close()
	_, _, err := cliRun(t, "", append(cmd, "--admin", dead)...)
	if err == nil || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "--admin") {
		t.Fatalf("dead admin: err = %v", err)
	}
	// Any other admin failure is reported with its status and message.
	_, _, err = cliRun(t, "", "order", "--admin", addr, "--client-id", "down", "--merchant-biz-no", "B")
	if err == nil || !strings.Contains(err.Error(), "HTTP 503: state store: down") {
		t.Fatalf("503: err = %v", err)
	}
}

// TestSendSet: --set changes the body before it is signed (the gateway
// verifies the signature over what it received) and nothing else of it.
func TestSendSet(t *testing.T) {
	f := cliSendSetup(t)
	g := &cliGateway{reply: cliSuccessReply, sign: true, received: make(chan []byte, 1)}
	out, _, err := cliSendVia(t, f, g, "--verify-key", f.gatewayPub,
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
		_, _, err := cliSendVia(t, f, &cliGateway{reply: cliSuccessReply}, "--set", set)
		if err == nil || !strings.Contains(err.Error(), "--set") {
			t.Errorf("--set %q: got %v, want an error naming --set", set, err)
		}
	}
}

func TestSetFields(t *testing.T) {
	pretty := "{\n  \"requestId\": \"r1\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": 12\n}\n"
	for _, tc := range []struct {
		name, body string
		sets       []string
		want       string // "" means an error is expected
	}{
		{"string keeps every other byte", pretty, []string{"requestId=r2"},
			"{\n  \"requestId\": \"r2\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": 12\n}\n"},
		{"only the top level", pretty, []string{"extInfo:={}"},
			"{\n  \"requestId\": \"r1\",\n  \"extInfo\": {},\n  \"n\": 12\n}\n"},
		{"number then string over it", pretty, []string{"n:=13", "n=x"},
			"{\n  \"requestId\": \"r1\",\n  \"extInfo\": {\"requestId\": \"inner\"},\n  \"n\": \"x\"\n}\n"},
		{"a string is escaped", `{"a":1}`, []string{`a=say "hi" \ é`}, `{"a":"say \"hi\" \\ é"}`},
		{"an = in the value", `{"a":1}`, []string{"a=b=c"}, `{"a":"b=c"}`},
		{"absent is appended", `{"a":1} `, []string{"b=2"}, `{"a":1,"b":"2"} `},
		{"empty object", `{}`, []string{"b:=true"}, `{"b":true}`},
		{"every duplicate", `{"a":1,"a":2}`, []string{"a:=3"}, `{"a":3,"a":3}`},
		{"no sets, no change", "not json", nil, "not json"},
		{"array body", `[1]`, []string{"a=1"}, ""},
		{"broken body", `{"a":`, []string{"a=1"}, ""},
		{"trailing data", `{"a":1}{}`, []string{"a=1"}, ""},
		{"bad JSON value", `{"a":1}`, []string{"a:=nope"}, ""},
		{"no =", `{"a":1}`, []string{"a"}, ""},
		{"empty name", `{"a":1}`, []string{":=1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cliSetFields([]byte(tc.body), tc.sets)
			if tc.want == "" {
				if err == nil || !strings.HasPrefix(err.Error(), "--set ") {
					t.Fatalf("got %q, %v; want an error starting with --set", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if !json.Valid(got) && json.Valid([]byte(tc.body)) {
				t.Errorf("the result is not valid JSON: %s", got)
			}
		})
	}
}
