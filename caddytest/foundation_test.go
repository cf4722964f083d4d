package caddytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"crypto"
	"crypto/rsa"
	"crypto/sha256"

	"github.com/caddy-alipay/ordersync/signature"
)

// sdkVerifies checks a reply the way Alipay's Go SDK does: Client-Id and
// response-time response headers, the value after "signature=",
// query-unescaped, base64-decoded, RSA-SHA256 over the template.
func sdkVerifies(t testing.TB, a answer, pub *rsa.PublicKey) {
	t.Helper()
	sigHeader := a.header.Get("Signature")
	if sigHeader == "" {
		t.Fatal("reply has no Signature header")
	}
	if !strings.HasPrefix(sigHeader, "algorithm=RSA256,keyVersion=1,signature=") {
		t.Fatalf("Signature header not in the exact form: %q", sigHeader)
	}
	parts := strings.Split(strings.Split(sigHeader, ",")[2], "=")
	if len(parts) != 2 { // the Java SDK's rule
		t.Fatalf("third item splits into %d parts on '='", len(parts))
	}
	raw, err := url.QueryUnescape(sigHeader[strings.Index(sigHeader, "signature=")+len("signature="):])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	content := a.method + " " + a.path + "\n" + a.header.Get("Client-Id") + "." + a.header.Get("response-time") + "." + string(a.body)
	sum := sha256.Sum256([]byte(content))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("the SDK-style check rejects the reply signature: %v", err)
	}
}

func TestSeedExampleSucceedsAndUpstreamGetsNormalizedRequest(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)

	a := send(t, in.url(), call{clientID: testClient, body: []byte(seedJSON), key: demoKeys(t).merchant,
		headers: map[string]string{"User-Agent": "global-open-sdk-go", "Key-Version": "1", "agent-token": "", "SDK-VERSION": "1.3.5"}})
	a.expect(t, "SUCCESS", "S")
	if a.env.OrderID != "2220100101001" || a.env.OrderStatus != "TICKETED" {
		t.Errorf("orderId/orderStatus = %q/%q", a.env.OrderID, a.env.OrderStatus)
	}
	if !strings.Contains(string(a.env.DistributeResult), `"benefitId":"B-1"`) {
		t.Errorf("distributeResult = %s", a.env.DistributeResult)
	}
	if a.header.Get("Client-Id") != testClient {
		t.Errorf("Client-Id echo = %q", a.header.Get("Client-Id"))
	}
	sdkVerifies(t, a, demoKeys(t).gatewayPublic)

	got := up.last(t)
	want := `{"requestId":"00242206688873156335287814888550","clientId":"TEST-CLIENT-1","scenario":"gift_card","merchantId":"2160120041113167","merchantBizNo":"00242206688873156335287814888550","merchantBizType":"ALIPAY_COUPON","orderStatus":"TICKETED","previousStatus":"","userId":"2160220041431868","openId":"","tradeNo":"Gift_card_tradeNo","orderCreateTime":"2025-02-24T08:25:06.708Z","orderModifyTime":"2025-03-26T08:25:06.708Z","extInfo":{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}}`
	if string(got.body) != want {
		t.Errorf("upstream body\n got %s\nwant %s", got.body, want)
	}
	if got.method != http.MethodPost || got.path != syncPath {
		t.Errorf("upstream got %s %s", got.method, got.path)
	}
	checks := map[string]string{
		"Idempotency-Key":        testClient + ":00242206688873156335287814888550",
		"X-Order-Sync-Client-Id": testClient,
		"X-Order-Sync-Scenario":  "gift_card",
		"Content-Type":           "application/json",
	}
	for k, v := range checks {
		if got.header.Get(k) != v {
			t.Errorf("upstream header %s = %q, want %q", k, got.header.Get(k), v)
		}
	}
	for _, k := range []string{"Signature", "Request-Time", "Client-Id", "Key-Version"} {
		if got.header.Get(k) != "" {
			t.Errorf("upstream received Alipay header %s", k)
		}
	}
}

func TestAmountsAreForwardedAsCents(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	o := newOrder().with("amount", map[string]any{"value": "10000", "currency": "HKD"}).
		with("payAmount", map[string]any{"value": "09500", "currency": "HKD"}).with("userId", nil).with("openId", "OPEN-1")
	send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	var got map[string]json.RawMessage
	if err := json.Unmarshal(up.last(t).body, &got); err != nil {
		t.Fatal(err)
	}
	if string(got["amount"]) != `{"cents":10000,"currency":"HKD"}` || string(got["payAmount"]) != `{"cents":9500,"currency":"HKD"}` {
		t.Errorf("amounts = %s %s", got["amount"], got["payAmount"])
	}
	if string(got["openId"]) != `"OPEN-1"` || string(got["userId"]) != `""` {
		t.Errorf("userId/openId = %s %s", got["userId"], got["openId"])
	}
}

func TestRequestsRefusedBeforeTheUpstream(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr(), options: "max_body_size 2KiB"}.start(t)
	k := demoKeys(t)
	o := newOrder()

	cases := []struct {
		name    string
		call    call
		code    string
		status  string
		message []string
	}{
		{"GET", call{method: http.MethodGet, clientID: testClient, body: nil, key: k.merchant}, "METHOD_NOT_SUPPORTED", "F", []string{"POST"}},
		{"PUT", call{method: http.MethodPut, clientID: testClient, body: o.bytes(), key: k.merchant}, "METHOD_NOT_SUPPORTED", "F", nil},
		{"text/plain", call{clientID: testClient, body: o.bytes(), key: k.merchant, contentType: "text/plain"}, "MEDIA_TYPE_NOT_ACCEPTABLE", "F", []string{"Content-Type"}},
		{"form", call{clientID: testClient, body: o.bytes(), key: k.merchant, contentType: "application/x-www-form-urlencoded"}, "MEDIA_TYPE_NOT_ACCEPTABLE", "F", nil},
		{"too large", signed(t, []byte(`{"requestId":"`+strings.Repeat("x", 3000)+`"}`)), "PARAM_ILLEGAL", "F", []string{"body", "max_body_size"}},
		{"not json", signed(t, []byte(`{"requestId":`)), "PARAM_ILLEGAL", "F", []string{"body"}},
		{"array", signed(t, []byte(`[1,2]`)), "PARAM_ILLEGAL", "F", []string{"body"}},
		{"missing extInfo", signed(t, o.with("extInfo", nil).bytes()), "PARAM_ILLEGAL", "F", []string{"extInfo"}},
		{"requestId too long", signed(t, o.with("requestId", strings.Repeat("9", 33)).bytes()), "PARAM_ILLEGAL", "F", []string{"requestId"}},
		{"missing merchantBizNo", signed(t, o.with("merchantBizNo", nil).bytes()), "PARAM_ILLEGAL", "F", []string{"merchantBizNo"}},
		{"missing orderStatus", signed(t, o.with("orderStatus", nil).bytes()), "PARAM_ILLEGAL", "F", []string{"orderStatus"}},
		{"no user", signed(t, o.with("userId", nil).bytes()), "PARAM_ILLEGAL", "F", []string{"userId"}},
		{"bad currency", signed(t, o.with("amount", map[string]any{"value": "100", "currency": "ABC"}).bytes()), "PARAM_ILLEGAL", "F", []string{"amount.currency", "ISO 4217"}},
		{"negative amount", signed(t, o.with("amount", map[string]any{"value": "-1", "currency": "HKD"}).bytes()), "PARAM_ILLEGAL", "F", []string{"amount.value"}},
		{"float time", signed(t, o.with("orderModifyTime", 1.5).bytes()), "PARAM_ILLEGAL", "F", []string{"orderModifyTime"}},
		{"string time", signed(t, o.with("orderCreateTime", "2025-01-01").bytes()), "PARAM_ILLEGAL", "F", []string{"orderCreateTime"}},
		{"no product_id", signed(t, o.with("extInfo.product_id", nil).bytes()), "PARAM_ILLEGAL", "F", []string{"extInfo.product_id"}},
		{"status not of scenario", signed(t, o.with("orderStatus", "USED").bytes()), "PARAM_ILLEGAL", "F", []string{"orderStatus"}},
		{"unknown biz type", signed(t, o.with("merchantBizType", "SOMETHING_ELSE").bytes()), "UN_SUPPORT_BUSINESS", "F", []string{"merchantBizType"}},
		{"gift card not SALE", signed(t, o.with("extInfo.benefit_issue_mode", "FREE").bytes()), "UN_SUPPORT_BUSINESS", "F", nil},
		{"no Client-Id", call{body: o.bytes()}, "INVALID_CLIENT", "F", []string{"Client-Id"}},
		{"unknown client", call{clientID: "NOBODY", body: o.bytes(), key: k.merchant}, "INVALID_CLIENT", "F", []string{"Client-Id"}},
		{"unknown key version", call{clientID: testClient, body: o.bytes(), key: k.merchant, keyVersion: "7"}, "KEY_NOT_FOUND", "F", []string{"keyVersion"}},
		{"unsigned", call{clientID: testClient, body: o.bytes()}, "INVALID_SIGNATURE", "F", []string{"Signature"}},
		{"encrypted body", call{clientID: testClient, body: o.bytes(), key: k.merchant, headers: map[string]string{"Encrypt": "algorithm=RSA_AES,keyVersion=1,symmetricKey=x"}}, "PARAM_ILLEGAL", "F", []string{"Encrypt"}},
		{"wrong key", call{clientID: testClient, body: o.bytes(), key: k.gateway}, "INVALID_SIGNATURE", "F", []string{"Signature"}},
		{"stale Request-Time", call{clientID: testClient, body: o.bytes(), key: k.merchant, requestTime: time.Now().Add(-time.Hour).Format(time.RFC3339)}, "INVALID_SIGNATURE", "F", []string{"Request-Time"}},
		{"future Request-Time", call{clientID: testClient, body: o.bytes(), key: k.merchant, requestTime: time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")}, "INVALID_SIGNATURE", "F", []string{"Request-Time"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, in.url(), tc.call).expect(t, tc.code, tc.status).messageHas(t, tc.message...)
			sdkVerifies(t, a, k.gatewayPublic)
		})
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream was called %d times for refused requests", n)
	}
	t.Run("tampered body", func(t *testing.T) {
		rt := fmt.Sprint(time.Now().UnixMilli())
		body := o.bytes()
		sig, err := signature.Sign(k.merchant, http.MethodPost, syncPath, testClient, rt, body)
		if err != nil {
			t.Fatal(err)
		}
		tampered := []byte(strings.Replace(string(body), "TICKETED", "TICKETED ", 1))
		c := call{clientID: testClient, body: tampered, requestTime: rt,
			headers: map[string]string{"Signature": signature.FormatHeader("1", sig)}}
		send(t, in.url(), c).expect(t, "INVALID_SIGNATURE", "F").messageHas(t, "Signature")
		c.body = body
		send(t, in.url(), c).expect(t, "SUCCESS", "S")
	})
}

func TestISOAndEpochRequestTimesAreAccepted(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr()}.start(t)
	now := time.Now()
	for _, rt := range []string{
		now.UTC().Format("2006-01-02T15:04:05Z"),
		now.In(time.FixedZone("", 8*3600)).Format("2006-01-02T15:04:05.000-07:00"),
		now.UTC().Format("2006-01-02T15:04:05.0000000Z"),
	} {
		c := signed(t, newOrder().bytes())
		c.requestTime = rt
		send(t, in.url(), c).expect(t, "SUCCESS", "S")
	}
}

func TestOfflineAnswersUnsupportedBusiness(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := gateway{upstream: up.addr(), options: "offline"}.start(t)
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "UN_SUPPORT_BUSINESS", "F")
	if up.count() != 0 {
		t.Error("upstream called while offline")
	}
}

// TestInsecureSkipVerify: development mode accepts unsigned requests and
// says so loudly at load.
func TestInsecureSkipVerify(t *testing.T) {
	up := newUpstream(t, jsonReply(200, alipaySuccess))
	in := startCaddy(t, func(in *instance) string {
		return routeCaddyfile(in, "\t\t\tinsecure_skip_verify\n\t\t\tstore bbolt "+in.dataDir+"/orders.db", up.addr(), "")
	}, caddyOptions{})
	a := send(t, in.url(), call{clientID: "ANY-CLIENT", body: newOrder().bytes()}).expect(t, "SUCCESS", "S")
	if a.header.Get("Signature") != "" {
		t.Error("unsigned config signed its reply")
	}
	if !strings.Contains(in.logs.String(), "insecure_skip_verify is on") {
		t.Error("no warning logged for insecure_skip_verify")
	}
}
