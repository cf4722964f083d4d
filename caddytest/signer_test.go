package caddytest

import (
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/signature"
)

// The binary signs with the backend its build tags chose (pure Go by
// default, OpenSSL under -tags openssl, the tags this test binary shares
// with it), says so in its log, and its replies verify as the Go SDK
// checks them, first time and replayed.
func TestRepliesSignedByTheCompiledInSigner(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	keys := demoKeys(t)

	body := newOrder().bytes()
	first := send(t, in.url(), signed(t, body))
	first.expect(t, "SUCCESS", "S")
	sdkVerifies(t, first, keys.gatewayPublic)
	again := send(t, in.url(), signed(t, body))
	again.expect(t, "SUCCESS", "S")
	sdkVerifies(t, again, keys.gatewayPublic)

	want := `"signer":"` + signature.Backend + `"`
	if !strings.Contains(in.logs.String(), want) {
		t.Fatalf("no log line with %s; log:\n%s", want, in.logs.String())
	}
}
