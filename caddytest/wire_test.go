package caddytest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/signature"
)

// caseSensitiveSDKVerifies checks a raw reply the way an SDK that matches
// header names case-sensitively does: it looks up exactly "signature",
// "response-time" and "client-id", and verifies over what it found.
func caseSensitiveSDKVerifies(t testing.TB, a rawAnswer, method, path string) {
	t.Helper()
	sig, n := a.get("signature")
	if n != 1 {
		t.Fatalf("%d lines named exactly \"signature\"; header block:\n%s", n, a.head)
	}
	respTime, _ := a.get("response-time")
	clientID, _ := a.get("client-id")
	parsed, err := signature.ParseHeader(sig)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	if err := signature.Verify(demoKeys(t).gatewayPublic, method, path, clientID, respTime, a.body, parsed.Signature); err != nil {
		t.Fatalf("a case-sensitive SDK rejects the reply: %v; header block:\n%s", err, a.head)
	}
}

// TestReplyHeadersAreLowercaseOnTheWire (issue 9 item 1): the gateway's
// own reply headers go out as AlipayHK writes them, lowercase, in fresh
// answers, replays and refusals alike; nothing goes out twice under two
// spellings.
func TestReplyHeadersAreLowercaseOnTheWire(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	body := newOrder().bytes()

	check := func(t *testing.T, a rawAnswer, code string) {
		t.Helper()
		if a.env.Result.ResultCode != code {
			t.Fatalf("got %s, want %s: %s", a.env.Result.ResultCode, code, a.body)
		}
		for _, name := range []string{"signature", "response-time", "client-id", "tracer-id"} {
			if v, n := a.get(name); n != 1 || v == "" {
				t.Errorf("%d lines named exactly %q (value %q); header block:\n%s", n, name, v, a.head)
			}
		}
		for _, h := range a.headers {
			switch strings.ToLower(h.name) {
			case "signature", "response-time", "client-id", "tracer-id":
				if h.name != strings.ToLower(h.name) {
					t.Errorf("header %q is not lowercase on the wire; header block:\n%s", h.name, a.head)
				}
			}
		}
		if v, n := a.get("Content-Type"); n != 1 || v != "application/json; charset=UTF-8" {
			t.Errorf("Content-Type: %d lines, %q", n, v)
		}
		if v, _ := a.get("client-id"); v != testClient {
			t.Errorf("client-id = %q, want the caller's %q", v, testClient)
		}
		caseSensitiveSDKVerifies(t, a, http.MethodPost, syncPath)
	}

	var first rawAnswer
	t.Run("fresh SUCCESS", func(t *testing.T) {
		first = rawExchange(t, in, rawRequest(t, in, signed(t, body), ""))
		check(t, first, "SUCCESS")
	})
	t.Run("replay", func(t *testing.T) {
		again := rawExchange(t, in, rawRequest(t, in, signed(t, body), ""))
		check(t, again, "SUCCESS")
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("replay body differs")
		}
		for _, name := range []string{"signature", "response-time", "client-id"} {
			a, _ := again.get(name)
			b, _ := first.get(name)
			if a != b {
				t.Errorf("replayed %s = %q, first %q", name, a, b)
			}
		}
	})
	t.Run("refusal before the claim", func(t *testing.T) {
		c := signed(t, body)
		c.key = demoKeys(t).gateway // the wrong key
		check(t, rawExchange(t, in, rawRequest(t, in, c, "")), "INVALID_SIGNATURE")
	})
	t.Run("stored F", func(t *testing.T) {
		o := newOrder()
		check(t, rawExchange(t, in, rawRequest(t, in, signed(t, o.bytes()), "")), "SUCCESS")
		older := o.next("TICKETED", 1) // older than the stored change
		check(t, rawExchange(t, in, rawRequest(t, in, signed(t, older.bytes()), "")), "ORDER_STATUS_INVALID")
		check(t, rawExchange(t, in, rawRequest(t, in, signed(t, older.bytes()), "")), "ORDER_STATUS_INVALID")
	})
	t.Run("the send CLI verifies the lowercase reply", func(t *testing.T) {
		bodyFile := filepath.Join(t.TempDir(), "order.json")
		if err := os.WriteFile(bodyFile, newOrder().bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		keys := filepath.Join("examples", "demo-keys")
		out, errOut, err := opsRunCaddy(t, nil, "alipay-order-sync", "send", "--url", in.url(), "--client-id", testClient,
			"--key", filepath.Join(keys, "merchant-private.pem"), "--verify-key", filepath.Join(keys, "gateway-public.pem"), bodyFile)
		if err != nil || !strings.Contains(out, "signature: verified") || !strings.Contains(out, "SUCCESS/S") {
			t.Errorf("send: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
	})
}

// TestRepeatedAuthenticationHeadersAreRefused (issue 9 item 9): with two
// Signature, Request-Time or Client-Id headers, "the first one wins" would
// let a proxy and the gateway disagree on who signed what; such requests
// are refused. The Go SDK's double Content-Type stays accepted.
func TestRepeatedAuthenticationHeadersAreRefused(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	cases := []struct {
		name    string
		extra   []rawHeader
		code    string
		message string
	}{
		{"two Signature headers", []rawHeader{{"Signature", "algorithm=RSA256,keyVersion=1,signature=AAAA"}}, "INVALID_SIGNATURE", "Signature"},
		{"Signature again in lowercase", []rawHeader{{"signature", "algorithm=RSA256,keyVersion=1,signature=AAAA"}}, "INVALID_SIGNATURE", "Signature"},
		{"two Request-Time headers", []rawHeader{{"Request-Time", "1"}}, "INVALID_SIGNATURE", "Request-Time"},
		{"two Client-Id headers", []rawHeader{{"client-id", "SOMEONE-ELSE"}}, "INVALID_CLIENT", "Client-Id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := rawExchange(t, in, rawRequest(t, in, signed(t, newOrder().bytes()), "", tc.extra...))
			if a.env.Result.ResultCode != tc.code || a.env.Result.ResultStatus != "F" {
				t.Fatalf("got %s/%s, want %s/F: %s", a.env.Result.ResultCode, a.env.Result.ResultStatus, tc.code, a.body)
			}
			if msg := a.env.Result.ResultMessage; !strings.Contains(msg, tc.message) || !strings.Contains(msg, "more than once") {
				t.Errorf("resultMessage %q does not say %s was given more than once", msg, tc.message)
			}
		})
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream was called %d times for refused requests", n)
	}
	t.Run("the Go SDK's double Content-Type", func(t *testing.T) {
		a := rawExchange(t, in, rawRequest(t, in, signed(t, newOrder().bytes()), "", rawHeader{"Content-Type", "application/json; charset=UTF-8"}))
		if a.env.Result.ResultCode != "SUCCESS" {
			t.Fatalf("got %s: %s", a.env.Result.ResultCode, a.body)
		}
	})
}

// TestOnlySignedDataReachesTheUpstream (issue 9 item 10): nothing signs the
// query string or the caller's other headers, so none of it is forwarded:
// the upstream gets the normalized body, the headers of the upstream
// contract, User-Agent, traceparent and tracestate, and what reverse_proxy
// itself adds.
func TestOnlySignedDataReachesTheUpstream(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	o := newOrder()
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	hostile := []rawHeader{
		{"X-Evil", "1"},
		{"Cookie", "session=stolen"},
		{"Authorization", "Bearer stolen"},
		{"X-Forwarded-For", "6.6.6.6"},
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Proto", "https"},
		{"Forwarded", "for=6.6.6.6"},
		{"X-Real-Ip", "6.6.6.6"},
		{"X-Order-Sync-Scenario", "spoofed"},
		{"X-Order-Sync-Client-Id", "spoofed"},
		{"Idempotency-Key", "spoofed"},
		{"Accept-Encoding", "br"},
		{"Key-Version", "1"},
		{"agent-token", ""},
		{"SDK-VERSION", "1.3.5"},
		{"User-Agent", "global-open-sdk-go"},
		{"traceparent", traceparent},
		{"tracestate", "vendor=1"},
	}
	a := rawExchange(t, in, rawRequest(t, in, signed(t, o.bytes()), syncPath+"?evil=1&orderStatus=REFUNDED", hostile...))
	if a.env.Result.ResultCode != "SUCCESS" {
		t.Fatalf("got %s: %s", a.env.Result.ResultCode, a.body)
	}
	got := up.last(t)
	if got.query != "" || got.uri != syncPath {
		t.Errorf("the upstream got request target %q (query %q), want %q", got.uri, got.query, syncPath)
	}
	// What the upstream may see, and from where.
	allowed := map[string]bool{
		"Content-Type": true, "Content-Length": true, // the normalized body
		"Idempotency-Key": true, "X-Order-Sync-Client-Id": true, "X-Order-Sync-Scenario": true, // added by the gateway
		"User-Agent": true, "Traceparent": true, "Tracestate": true, // the caller's, kept
		"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "Via": true, // reverse_proxy's own
		"Accept-Encoding": true, // Go's transport asks for gzip and decodes it itself
	}
	for name := range got.header {
		if !allowed[name] {
			t.Errorf("the upstream received header %s: %q", name, got.header[name])
		}
	}
	want := map[string]string{
		"X-Order-Sync-Scenario":  "gift_card",
		"X-Order-Sync-Client-Id": testClient,
		"Idempotency-Key":        testClient + ":" + o["requestId"].(string),
		"User-Agent":             "global-open-sdk-go",
		"Traceparent":            traceparent,
		"Tracestate":             "vendor=1",
		"X-Forwarded-For":        "127.0.0.1",
		"X-Forwarded-Host":       fmt.Sprintf("127.0.0.1:%d", in.port),
		"X-Forwarded-Proto":      "http",
		"Content-Type":           "application/json",
	}
	for name, v := range want {
		if vs := got.header.Values(name); len(vs) != 1 || vs[0] != v {
			t.Errorf("upstream header %s = %q, want [%q]", name, vs, v)
		}
	}
	if ae := got.header.Get("Accept-Encoding"); ae != "" && ae != "gzip" {
		t.Errorf("upstream Accept-Encoding = %q, the caller's", ae)
	}
}

// TestIdempotencyKeyCannotCollide (issue 9 item 6): clients K and K:X used
// to produce the same Idempotency-Key (K:X:Y) for requestIds X:Y and Y. In
// the Client-Id, % and : are percent-encoded, so the first : separates.
func TestIdempotencyKeyCannotCollide(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	k := demoKeys(t)
	in := startCaddy(t, func(in *instance) string {
		body := fmt.Sprintf("\t\t\tclient K {\n\t\t\t\tpublic_key_file 1 %[1]s\n\t\t\t}\n"+
			"\t\t\tclient K:X {\n\t\t\t\tpublic_key_file 1 %[1]s\n\t\t\t}\n"+
			"\t\t\tclient 100%%:K {\n\t\t\t\tpublic_key_file 1 %[1]s\n\t\t\t}\n"+
			"\t\t\tstore bbolt %[2]s", k.merchantPub, filepath.Join(in.dataDir, "orders.db"))
		return routeCaddyfile(in, body, up.addr(), "")
	}, caddyOptions{})
	cases := []struct{ client, requestID, key string }{
		{"K", "X:Y", "K:X:Y"},
		{"K:X", "Y", "K%3AX:Y"},
		{"100%:K", "Y", "100%25%3AK:Y"},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		o := newOrder().with("requestId", tc.requestID)
		send(t, in.url(), call{clientID: tc.client, body: o.bytes(), key: k.merchant}).expect(t, "SUCCESS", "S")
		got := up.last(t).header.Get("Idempotency-Key")
		if got != tc.key {
			t.Errorf("client %q, requestId %q: Idempotency-Key %q, want %q", tc.client, tc.requestID, got, tc.key)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("client %q and %s share the Idempotency-Key %q", tc.client, other, got)
		}
		seen[got] = fmt.Sprintf("client %q", tc.client)
	}
}

// TestControlCharactersInIDsAreRefused (issue 9 item 3): an id that reaches
// a header or a store key must not carry a control character (U+0000 to
// U+001F, U+007F). Such a requestId used to get U forever: the
// Idempotency-Key built from it cannot be sent.
func TestControlCharactersInIDsAreRefused(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	fields := []string{"requestId", "merchantBizNo", "merchantId", "userId", "openId", "tradeNo"}
	chars := []string{"\n", "\r", "\t", "\u0000", "\u0001", "\u001f", "\u007f"}
	tried := 0
	for _, field := range fields {
		for _, c := range chars {
			o := newOrder()
			o = o.with(field, "A"+c+"B")
			a := send(t, in.url(), signed(t, o.bytes()))
			tried++
			if a.env.Result.ResultCode != "PARAM_ILLEGAL" || a.env.Result.ResultStatus != "F" {
				t.Errorf("%s with %q: got %s/%s (%s), want PARAM_ILLEGAL/F", field, c, a.env.Result.ResultCode, a.env.Result.ResultStatus, a.env.Result.ResultMessage)
				continue
			}
			if want := field + ": must not contain control characters"; a.env.Result.ResultMessage != want {
				t.Errorf("%s with %q: resultMessage %q, want %q", field, c, a.env.Result.ResultMessage, want)
			}
		}
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream was called %d times", n)
	}
	// Printable ids, non-ASCII included, are fine.
	o := newOrder().with("tradeNo", "交易-№ 1").with("openId", "Ωmega")
	send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	t.Logf("figures: inputs tried %d, wrongly accepted %d", tried, up.count()-1)
}
