package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
)

// The seed and the SDK vector body live with the schema package's tests.
const (
	seedFile   = "../schema/testdata/seed.json"
	prettyFile = "../schema/testdata/pretty-unicode.json"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustParse decodes raw and reads its typed request, as the handler does
// after validation.
func mustParse(t testing.TB, raw []byte) *message.Request {
	t.Helper()
	doc, err := message.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := doc.Request()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// parse is mustParse returning the error of either step.
func parse(raw []byte) (*message.Request, error) {
	doc, err := message.Decode(raw)
	if err != nil {
		return nil, err
	}
	return doc.Request()
}

func TestParseSeed(t *testing.T) {
	r := mustParse(t, readFile(t, seedFile))
	if r.RequestID != "00242206688873156335287814888550" || r.MerchantID != "2160120041113167" ||
		r.MerchantBizNo != "00242206688873156335287814888550" || r.OrderStatus != "TICKETED" ||
		r.UserID != "2160220041431868" || r.MerchantBizType != "ALIPAY_COUPON" ||
		r.TradeNo != "Gift_card_tradeNo" || r.OpenID != "" {
		t.Errorf("strings: %+v", r)
	}
	if r.OrderCreateTime == nil || *r.OrderCreateTime != 1740385506708 {
		t.Errorf("OrderCreateTime = %v", r.OrderCreateTime)
	}
	if r.ModifyTimeMillis() != 1742977506708 {
		t.Errorf("ModifyTimeMillis = %d", r.ModifyTimeMillis())
	}
	if r.Amount != nil || r.PayAmount != nil {
		t.Error("amounts should be absent")
	}
	if got := r.ExtInfo; got != `{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}` {
		t.Errorf("ExtInfo = %s", got)
	}
}

func TestNormalizeSeedGolden(t *testing.T) {
	r := mustParse(t, readFile(t, seedFile))
	got := r.Normalize("4Q5Y8W0WSG45P907917", "gift_card", "")
	want := `{"requestId":"00242206688873156335287814888550","clientId":"4Q5Y8W0WSG45P907917","scenario":"gift_card",` +
		`"merchantId":"2160120041113167","merchantBizNo":"00242206688873156335287814888550","merchantBizType":"ALIPAY_COUPON",` +
		`"orderStatus":"TICKETED","previousStatus":"",` +
		`"userId":"2160220041431868","openId":"","tradeNo":"Gift_card_tradeNo",` +
		`"orderCreateTime":"2025-02-24T08:25:06.708Z","orderModifyTime":"2025-03-26T08:25:06.708Z",` +
		`"extInfo":{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}}`
	if string(got) != want {
		t.Errorf("Normalize:\n got %s\nwant %s", got, want)
	}
}

func TestNormalizePrettyUnicode(t *testing.T) {
	r := mustParse(t, readFile(t, prettyFile))
	got := r.Normalize("4Q5Y8W0WSG45P907917", "gift_card", "TICKETED")
	want := `{"requestId":"a1b2c3d4e5f60718293a4b5c6d7e8f90","clientId":"4Q5Y8W0WSG45P907917","scenario":"gift_card",` +
		`"merchantId":"","merchantBizNo":"GC-2026-000001","merchantBizType":"ALIPAY_COUPON",` +
		`"orderStatus":"TICKETED","previousStatus":"TICKETED",` +
		`"userId":"2160220041431868","openId":"","tradeNo":"2026112522001400000000000001",` +
		`"orderCreateTime":"2025-02-24T08:25:06.708Z","orderModifyTime":"2025-03-26T08:25:06.708Z",` +
		`"amount":{"cents":10000,"currency":"HKD"},"payAmount":{"cents":9500,"currency":"HKD"},` +
		`"extInfo":{"benefit_issue_mode": "SALE", "product_id": "22025021800135606000000001663483", "note": "禮品卡 \u2014 100 HKD"}}`
	if string(got) != want {
		t.Errorf("Normalize:\n got %s\nwant %s", got, want)
	}
}

const minimal = `{"requestId":"r1","merchantBizNo":"m1","orderStatus":"TICKETED","openId":"o1","extInfo":{}}`

func TestNormalizeAbsentOptionalFields(t *testing.T) {
	r := mustParse(t, []byte(minimal))
	got := string(r.Normalize("c", "s", ""))
	want := `{"requestId":"r1","clientId":"c","scenario":"s","merchantId":"","merchantBizNo":"m1","merchantBizType":"",` +
		`"orderStatus":"TICKETED","previousStatus":"","userId":"","openId":"o1","tradeNo":"","extInfo":{}}`
	if got != want {
		t.Errorf("Normalize:\n got %s\nwant %s", got, want)
	}
	if r.ModifyTimeMillis() != 0 {
		t.Errorf("ModifyTimeMillis = %d, want 0", r.ModifyTimeMillis())
	}
}

func TestNormalizeExtInfoPassThrough(t *testing.T) {
	for _, ext := range []string{
		`{}`,
		`{ }`,
		`{"a":[1,2,{"b":null}],"c":"\u00e9\n","d":1.50e+3}`,
		"{\n  \"indented\": true\n}",
	} {
		body := `{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":` + ext + `}`
		got := mustParse(t, []byte(body)).Normalize("c", "s", "")
		if !bytes.HasSuffix(got, []byte(`,"extInfo":`+ext+`}`)) {
			t.Errorf("extInfo %q not passed through: %s", ext, got)
		}
		if !json.Valid(got) {
			t.Errorf("invalid JSON: %s", got)
		}
	}
}

func amountBody(value string) []byte {
	return []byte(`{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u",` +
		`"amount":{"value":"` + value + `","currency":"HKD"},"payAmount":{"currency":"USD","value":"` + value + `"},"extInfo":{}}`)
}

func TestNormalizeAmounts(t *testing.T) {
	d64 := "1234567890123456789012345678901234567890123456789012345678901234"
	tests := []struct{ value, cents string }{
		{"10000", "10000"},
		{"000100", "100"},
		{"0", "0"},
		{"0000", "0"},
		{"007", "7"},
		{d64, d64},
		{"0" + d64[1:], strings.TrimLeft(d64[1:], "0")},
		{strings.Repeat("9", 64), strings.Repeat("9", 64)},
	}
	for _, tt := range tests {
		got := mustParse(t, amountBody(tt.value)).Normalize("c", "s", "")
		want := `"amount":{"cents":` + tt.cents + `,"currency":"HKD"},"payAmount":{"cents":` + tt.cents + `,"currency":"USD"}`
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("value %q:\n got %s\nwant …%s…", tt.value, got, want)
		}
		// The cents must be a JSON number that keeps every digit.
		var v struct {
			Amount struct{ Cents json.Number } `json:"amount"`
		}
		if err := json.Unmarshal(got, &v); err != nil || string(v.Amount.Cents) != tt.cents {
			t.Errorf("value %q: decoded cents %q, %v", tt.value, v.Amount.Cents, err)
		}
	}
}

func TestNormalizeTimes(t *testing.T) {
	tests := []struct {
		ms   string
		want string
	}{
		{"1740385506708", "2025-02-24T08:25:06.708Z"},
		{"1742977506708", "2025-03-26T08:25:06.708Z"},
		{"0", "1970-01-01T00:00:00.000Z"},
		{"1740385506000", "2025-02-24T08:25:06.000Z"},
		{"253402300799999", "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		body := `{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","orderCreateTime":` + tt.ms +
			`,"orderModifyTime":` + tt.ms + `,"extInfo":{}}`
		got := mustParse(t, []byte(body)).Normalize("c", "s", "")
		want := `"orderCreateTime":"` + tt.want + `","orderModifyTime":"` + tt.want + `"`
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("%s: got %s", tt.ms, got)
		}
	}
}

func TestNormalizeEscaping(t *testing.T) {
	hostile := "a\"b\\c\nd\te\x00f\x1f<g>&h\u2028i\u2029j\x7fk禮"
	r := &message.Request{RequestID: hostile, ExtInfo: `{}`}
	got := r.Normalize(hostile, "s", hostile)
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	var back map[string]any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requestId", "clientId", "previousStatus"} {
		if back[k] != hostile {
			t.Errorf("%s round-trips to %q", k, back[k])
		}
	}
	// jsontext's minimal escaping (RFC 8785): control characters, quote
	// and backslash escaped; HTML characters, U+2028/U+2029 and DEL as is.
	// The upstream is a JSON API, not a <script>: U+2028 needs no escape.
	want := `"a\"b\\c\nd\te\u0000f\u001f<g>&h` + "\u2028i\u2029j\x7fk禮" + `"`
	if !bytes.Contains(got, []byte(`{"requestId":`+want+`,"clientId":`+want)) {
		t.Errorf("escaping is not jsontext's minimal form: %s", got)
	}
}

// Whatever a string holds, the normalized body is valid JSON that gives
// the string back; invalid UTF-8 (only a Client-Id header under
// insecure_skip_verify can carry it) comes back as U+FFFD.
func FuzzNormalizeString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x01\b\f\n\r\t\x1f", "\u2028\u2029", "<>&", "\xff\xfe", "禮\xe7\xa6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := &message.Request{RequestID: s, ExtInfo: `{}`}
		got := r.Normalize(s, "", "")
		var back struct {
			RequestID string `json:"requestId"`
			ClientID  string `json:"clientId"`
		}
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("invalid JSON %q: %v", got, err)
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD
		if back.RequestID != want || back.ClientID != want {
			t.Fatalf("%q came back as %q, %q", s, back.RequestID, back.ClientID)
		}
	})
}

func TestNormalizeKeyOrder(t *testing.T) {
	r := mustParse(t, readFile(t, prettyFile))
	dec := json.NewDecoder(bytes.NewReader(r.Normalize("c", "s", "")))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("first token %v, %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
	}
	want := "requestId clientId scenario merchantId merchantBizNo merchantBizType orderStatus previousStatus " +
		"userId openId tradeNo orderCreateTime orderModifyTime amount payAmount extInfo"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys:\n got %s\nwant %s", got, want)
	}
}

func TestParseExactKeys(t *testing.T) {
	// encoding/json alone would let the later "RequestId" win.
	body := `{"requestId":"good","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{},` +
		`"RequestId":"EVIL","REQUESTID":"EVIL","ORDERSTATUS":"EVIL","Amount":{"value":"1","currency":"HKD"}}`
	r := mustParse(t, []byte(body))
	if r.RequestID != "good" || r.OrderStatus != "S" || r.Amount != nil {
		t.Errorf("case-folded keys leaked in: %+v", r)
	}
}

func TestParseEscapedStrings(t *testing.T) {
	body := `{"requestId":"a\"b\u00e9\ud83d\ude00","merchantBizNo":"m\/n","orderStatus":"S","userId":"u","extInfo":{}}`
	r := mustParse(t, []byte(body))
	if r.RequestID != "a\"bé😀" || r.MerchantBizNo != "m/n" {
		t.Errorf("got %q %q", r.RequestID, r.MerchantBizNo)
	}
}

func TestParseErrors(t *testing.T) {
	base := `"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u"`
	tests := []struct{ name, body, field string }{
		{"not JSON", `{`, "body"},
		{"array", `[]`, "body"},
		{"null", `null`, "body"},
		{"string field number", `{"requestId":1234567,"extInfo":{}}`, "requestId"},
		{"time float", `{` + base + `,"orderModifyTime":1.5,"extInfo":{}}`, "orderModifyTime"},
		{"time integral float", `{` + base + `,"orderModifyTime":1234567.0,"extInfo":{}}`, "orderModifyTime"},
		{"time exponent", `{` + base + `,"orderModifyTime":1234567e3,"extInfo":{}}`, "orderModifyTime"},
		{"time string", `{` + base + `,"orderModifyTime":"1234567","extInfo":{}}`, "orderModifyTime"},
		{"time negative", `{` + base + `,"orderCreateTime":-1234567,"extInfo":{}}`, "orderCreateTime"},
		{"time too late", `{` + base + `,"orderCreateTime":253402300800000,"extInfo":{}}`, "orderCreateTime"},
		{"time overflow", `{` + base + `,"orderCreateTime":99999999999999999999999,"extInfo":{}}`, "orderCreateTime"},
		{"amount not object", `{` + base + `,"amount":"1234567","extInfo":{}}`, "amount"},
		{"amount value not digits", `{` + base + `,"amount":{"value":"12.34567","currency":"HKD"},"extInfo":{}}`, "amount.value"},
		{"amount value too long", `{` + base + `,"amount":{"value":"` + strings.Repeat("1", 65) + `","currency":"HKD"},"extInfo":{}}`, "amount.value"},
		{"amount currency missing", `{` + base + `,"payAmount":{"value":"1234567"},"extInfo":{}}`, "payAmount.currency"},
		{"extInfo missing", `{` + base + `}`, "extInfo"},
		{"extInfo array", `{` + base + `,"extInfo":[1234567]}`, "extInfo"},
	}
	for _, tt := range tests {
		_, err := parse([]byte(tt.body))
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		var fe *message.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !strings.HasPrefix(err.Error(), tt.field+": ") {
			t.Errorf("%s: error %q does not name %s", tt.name, err, tt.field)
		}
		if strings.Contains(err.Error(), "1234567") {
			t.Errorf("%s: error %q leaks the value", tt.name, err)
		}
	}
}

func TestParseNullsAreAbsent(t *testing.T) {
	body := `{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","openId":null,` +
		`"orderModifyTime":null,"amount":null,"extInfo":{}}`
	r := mustParse(t, []byte(body))
	if r.OpenID != "" || r.OrderModifyTime != nil || r.Amount != nil {
		t.Errorf("%+v", r)
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	raw := []byte(minimal)
	r := mustParse(t, raw)
	for i := range raw {
		raw[i] = ' '
	}
	if r.ExtInfo != `{}` || r.RequestID != "r1" {
		t.Errorf("request changed with the input buffer: %+v", r)
	}
}

func TestExtString(t *testing.T) {
	r := mustParse(t, readFile(t, prettyFile))
	if v, ok := r.ExtString("benefit_issue_mode"); !ok || v != "SALE" {
		t.Errorf("benefit_issue_mode = %q, %v", v, ok)
	}
	if v, ok := r.ExtString("note"); !ok || v != "禮品卡 — 100 HKD" {
		t.Errorf("note = %q, %v", v, ok)
	}
	if _, ok := r.ExtString("missing"); ok {
		t.Error("missing key found")
	}
	r = mustParse(t, []byte(`{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u",`+
		`"extInfo":{"n":1,"o":{"product_id":"x"},"b":true,"z":null,"e":""}}`))
	for _, k := range []string{"n", "o", "b", "z", "product_id"} {
		if _, ok := r.ExtString(k); ok {
			t.Errorf("non-string or nested %q reported", k)
		}
	}
	if v, ok := r.ExtString("e"); !ok || v != "" {
		t.Errorf("empty string: %q, %v", v, ok)
	}
	// A hand-built Request without extInfo has no values, and no panic.
	if _, ok := (&message.Request{}).ExtString("x"); ok {
		t.Error("empty request has ext values")
	}
}

func TestExtStringConcurrent(t *testing.T) {
	r := mustParse(t, readFile(t, seedFile))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, ok := r.ExtString("product_id"); !ok || v != "22025021800135606000000001663483" {
				t.Errorf("product_id = %q, %v", v, ok)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		raw  []byte
	}{
		{"seed", readFile(b, seedFile)},
		{"large", largeBody()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.raw)))
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				if _, err := message.Decode(bc.raw); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkRequest reads the typed request out of a decoded document.
func BenchmarkRequest(b *testing.B) {
	doc, err := message.Decode(readFile(b, seedFile))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := doc.Request(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	r := mustParse(b, readFile(b, prettyFile))
	b.ReportAllocs()
	for b.Loop() {
		if out := r.Normalize("4Q5Y8W0WSG45P907917", "gift_card", "TICKETED"); len(out) == 0 {
			b.Fatal("empty body")
		}
	}
}

// Canonical is the same bytes for the same JSON value, whatever the key
// order, whitespace or string escapes of the body, and keeps every number
// literal as written.
func TestCanonical(t *testing.T) {
	a := `{"requestId":"r","extInfo":{"b":[1,2.50,{"y":null,"x":true}],"a":"\u00e9\/"},"n":12345678901234567890}`
	b := "{ \"n\" : 12345678901234567890,\n \"extInfo\":{\"a\":\"é/\",\"b\":[1,2.50,{\"x\":true,\"y\":null}]},\"requestId\":\"\\u0072\"}"
	var got [2][]byte
	for i, body := range []string{a, b} {
		doc, err := message.Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got[i], err = doc.Canonical(); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"extInfo":{"a":"é/","b":[1,2.50,{"x":true,"y":null}]},"n":12345678901234567890,"requestId":"r"}`
	if string(got[0]) != want || string(got[1]) != want {
		t.Errorf("Canonical:\n got %s\n     %s\nwant %s", got[0], got[1], want)
	}
}

// Canonical never changes a number: the egress handler signs and sends
// these bytes, so a literal beyond float64 (more digits than it holds, an
// exponent past its range, a 64-digit integer) must reach AlipayHK as the
// legacy system wrote it, and two bodies whose numbers differ must never
// get the same bytes (they would be taken for one request).
func TestCanonicalKeepsNumberLiterals(t *testing.T) {
	for _, lit := range []string{
		"0.30000000000000000001",
		"1e400",
		"-1.5E-300",
		"2.50",
		"-0",
		"1234567890123456789012345678901234567890123456789012345678901234",
		"0.1000000000000000055511151231257827021181583404541015625",
	} {
		doc, err := message.Decode([]byte(`{"extInfo":{"v":` + lit + `}}`))
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		got, err := doc.Canonical()
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if want := `{"extInfo":{"v":` + lit + `}}`; string(got) != want {
			t.Errorf("Canonical = %s, want %s", got, want)
		}
	}
}

// A field the gateway supplies before validation (an egress requestId) is
// part of the tree, the typed request and the canonical bytes.
func TestSetString(t *testing.T) {
	doc, err := message.Decode([]byte(`{"merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.String("requestId"); ok {
		t.Fatal("requestId present")
	}
	if s, ok := doc.String("merchantBizNo"); !ok || s != "m" {
		t.Fatalf("merchantBizNo = %q, %v", s, ok)
	}
	doc.SetString("requestId", "0123456789abcdef0123456789abcdef")
	if got := doc.Tree().(map[string]any)["requestId"]; got != "0123456789abcdef0123456789abcdef" {
		t.Errorf("tree requestId = %v", got)
	}
	r, err := doc.Request()
	if err != nil || r.RequestID != "0123456789abcdef0123456789abcdef" || r.ExtInfo != `{"k":"v"}` {
		t.Fatalf("Request = %+v, %v", r, err)
	}
	c, err := doc.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"extInfo":{"k":"v"},"merchantBizNo":"m","orderStatus":"S","requestId":"0123456789abcdef0123456789abcdef","userId":"u"}`; string(c) != want {
		t.Errorf("Canonical = %s", c)
	}
	// Replacing extInfo itself leaves no stale raw bytes behind.
	doc.SetString("extInfo", "x")
	if _, err := doc.Request(); err == nil || err.Error() != "extInfo: must be an object" {
		t.Errorf("Request after replacing extInfo: %v", err)
	}
}
