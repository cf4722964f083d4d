package schema

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

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdDecode is encoding/json with numbers kept as literals, for building
// test bodies.
func stdDecode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func base(t testing.TB) *Schema {
	t.Helper()
	s, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decode is message.Decode's tree, failing the test on a decode error.
func decode(t testing.TB, raw string) any {
	t.Helper()
	doc, err := message.Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return doc.Tree()
}

// validate runs the handler's sequence up to the base schema.
func validate(raw []byte) error {
	doc, err := message.Decode(raw)
	if err != nil {
		return err
	}
	b, err := Base()
	if err != nil {
		return err
	}
	return b.Validate(doc.Tree())
}

// mustCompile is Compile failing the test on an error.
func mustCompile(t testing.TB, name, schemaJSON string) *Schema {
	t.Helper()
	s, err := Compile(name, []byte(schemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSeedIsValid(t *testing.T) {
	for _, name := range []string{"testdata/seed.json", "testdata/pretty-unicode.json"} {
		if err := validate(readFile(t, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// mutate applies f to a decoded copy of the seed and re-encodes it.
func mutate(t *testing.T, seed []byte, f func(m map[string]any)) []byte {
	t.Helper()
	m, err := stdDecode(seed)
	if err != nil {
		t.Fatal(err)
	}
	f(m.(map[string]any))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func set(path string, value any) func(map[string]any) {
	return func(m map[string]any) {
		keys := strings.Split(path, ".")
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = value
	}
}

func del(path string) func(map[string]any) {
	return func(m map[string]any) {
		keys := strings.Split(path, ".")
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
		}
		delete(m, keys[len(keys)-1])
	}
}

func all(fs ...func(map[string]any)) func(map[string]any) {
	return func(m map[string]any) {
		for _, f := range fs {
			f(m)
		}
	}
}

func money(value any, currency any) map[string]any {
	return map[string]any{"value": value, "currency": currency}
}

func TestRules(t *testing.T) {
	seed := readFile(t, "testdata/seed.json")
	long := func(n int) string { return strings.Repeat("LEAK", n/4+1)[:n] }
	digits := func(n int) string { return strings.Repeat("7", n) }

	tests := []struct {
		name   string
		mutate func(map[string]any)
		field  string // "" means the mutation is valid
		rule   string // exact rule when the contract fixes the wording
		leak   string // the offending value, which must not appear
	}{
		// requestId: required string, 1..32 characters.
		{"requestId missing", del("requestId"), "requestId", "required", ""},
		{"requestId empty", set("requestId", ""), "requestId", "must not be empty", ""},
		{"requestId too long", set("requestId", long(33)), "requestId", "longer than 32 characters", long(33)},
		{"requestId 32 chars", set("requestId", long(32)), "", "", ""},
		{"requestId 32 runes", set("requestId", strings.Repeat("單", 32)), "", "", ""},
		{"requestId number", set("requestId", json.Number("4242424242")), "requestId", "must be a string", "4242424242"},
		{"requestId null", set("requestId", nil), "requestId", "must be a string", ""},

		// merchantBizNo, orderStatus: required non-empty strings, max 64.
		{"merchantBizNo missing", del("merchantBizNo"), "merchantBizNo", "required", ""},
		{"merchantBizNo empty", set("merchantBizNo", ""), "merchantBizNo", "must not be empty", ""},
		{"merchantBizNo too long", set("merchantBizNo", long(65)), "merchantBizNo", "longer than 64 characters", long(65)},
		{"merchantBizNo object", set("merchantBizNo", map[string]any{"LEAKKEY": 1}), "merchantBizNo", "must be a string", "LEAKKEY"},
		{"orderStatus missing", del("orderStatus"), "orderStatus", "required", ""},
		{"orderStatus empty", set("orderStatus", ""), "orderStatus", "must not be empty", ""},
		{"orderStatus too long", set("orderStatus", long(65)), "orderStatus", "longer than 64 characters", long(65)},
		{"orderStatus bool", set("orderStatus", true), "orderStatus", "must be a string", "true"},

		// merchantId, merchantBizType, tradeNo: optional strings, max 64.
		{"merchantId absent", del("merchantId"), "", "", ""},
		{"merchantId too long", set("merchantId", long(65)), "merchantId", "longer than 64 characters", long(65)},
		{"merchantId number", set("merchantId", json.Number("2160120041113167")), "merchantId", "must be a string", "2160120041113167"},
		{"merchantBizType absent", del("merchantBizType"), "", "", ""},
		{"merchantBizType too long", set("merchantBizType", long(65)), "merchantBizType", "longer than 64 characters", long(65)},
		{"tradeNo absent", del("tradeNo"), "", "", ""},
		{"tradeNo too long", set("tradeNo", long(65)), "tradeNo", "longer than 64 characters", long(65)},
		{"tradeNo array", set("tradeNo", []any{"LEAKITEM"}), "tradeNo", "must be a string", "LEAKITEM"},

		// userId/openId: optional strings, max 64, at least one non-empty.
		{"userId and openId absent", del("userId"), "userId", "one of userId or openId is required", ""},
		{"userId empty, openId absent", set("userId", ""), "userId", "one of userId or openId is required", ""},
		{"userId empty, openId empty", all(set("userId", ""), set("openId", "")), "userId", "one of userId or openId is required", ""},
		{"openId only", all(del("userId"), set("openId", "LEAKOPEN")), "", "", ""},
		{"userId empty, openId set", all(set("userId", ""), set("openId", "x")), "", "", ""},
		{"userId too long", set("userId", long(65)), "userId", "longer than 64 characters", long(65)},
		{"openId too long", set("openId", long(65)), "openId", "longer than 64 characters", long(65)},
		{"userId number", set("userId", json.Number("2160220041431868")), "userId", "must be a string", "2160220041431868"},

		// The ids that reach a header or a store key: no control character.
		{"requestId newline", set("requestId", "A\nLEAK"), "requestId", "must not contain control characters", "LEAK"},
		{"merchantBizNo NUL", set("merchantBizNo", "A\x00LEAK"), "merchantBizNo", "must not contain control characters", "LEAK"},
		{"merchantId unit separator", set("merchantId", "A\x1fLEAK"), "merchantId", "must not contain control characters", "LEAK"},
		{"userId DEL", set("userId", "A\x7fLEAK"), "userId", "must not contain control characters", "LEAK"},
		{"openId tab", all(set("userId", "u"), set("openId", "A\tLEAK")), "openId", "must not contain control characters", "LEAK"},
		{"tradeNo carriage return", set("tradeNo", "A\rLEAK"), "tradeNo", "must not contain control characters", "LEAK"},
		{"ids printable non-ASCII", all(set("tradeNo", "交易-№ 1"), set("userId", "Ωmega\u0080\u2028")), "", "", ""},
		{"orderStatus may hold a tab", set("orderStatus", "A\tB"), "", "", ""},
		// A format is checked before the lengths, and a failing one ends
		// the field's checks.
		{"requestId too long with a control", set("requestId", strings.Repeat("\x01", 33)), "requestId", "must not contain control characters", ""},

		// orderCreateTime/orderModifyTime: optional integers in [0, 253402300799999].
		{"orderCreateTime absent", del("orderCreateTime"), "", "", ""},
		{"orderModifyTime absent", del("orderModifyTime"), "", "", ""},
		{"orderModifyTime float", set("orderModifyTime", json.Number("1742977506708.5")), "orderModifyTime", "must be an integer (epoch milliseconds)", "1742977506708.5"},
		{"orderModifyTime 1.5", set("orderModifyTime", json.Number("1.5")), "orderModifyTime", "must be an integer (epoch milliseconds)", "1.5"},
		{"orderModifyTime string", set("orderModifyTime", "1742977506708"), "orderModifyTime", "must be an integer (epoch milliseconds)", "1742977506708"},
		{"orderCreateTime string", set("orderCreateTime", "2025-02-24T08:25:06Z"), "orderCreateTime", "must be an integer (epoch milliseconds)", "2025-02-24"},
		{"orderCreateTime negative", set("orderCreateTime", json.Number("-1740385506708")), "orderCreateTime", "must be between 0 and 253402300799999 (epoch milliseconds)", "-1740385506708"},
		{"orderCreateTime past year 9999", set("orderCreateTime", json.Number("253402300800000")), "orderCreateTime", "must be between 0 and 253402300799999 (epoch milliseconds)", "253402300800000"},
		{"orderModifyTime integral float", set("orderModifyTime", json.Number("1742977506708.0")), "orderModifyTime", "must be an integer (epoch milliseconds)", "1742977506708"},
		{"orderModifyTime exponent", set("orderModifyTime", json.Number("1.742977506708e12")), "orderModifyTime", "must be an integer (epoch milliseconds)", "1.742977506708e12"},
		{"orderModifyTime bool", set("orderModifyTime", false), "orderModifyTime", "must be an integer (epoch milliseconds)", "false"},
		{"orderCreateTime huge", set("orderCreateTime", json.Number("99999999999999999999999")), "orderCreateTime", "must be between 0 and 253402300799999 (epoch milliseconds)", "99999999999999999999999"},
		{"orderCreateTime zero", set("orderCreateTime", json.Number("0")), "", "", ""},
		{"orderCreateTime max", set("orderCreateTime", json.Number("253402300799999")), "", "", ""},

		// amount/payAmount: optional {value: digit string, currency: ISO 4217}.
		{"amount valid", set("amount", money("10000", "HKD")), "", "", ""},
		{"amount leading zeros", set("amount", money("000100", "HKD")), "", "", ""},
		{"amount 64 digits", set("amount", money(digits(64), "HKD")), "", "", ""},
		{"amount 65 digits", set("amount", money(digits(65), "HKD")), "amount.value", "must be a non-negative integer string of at most 64 digits", digits(65)},
		{"amount value empty", set("amount", money("", "HKD")), "amount.value", "must be a non-negative integer string of at most 64 digits", ""},
		{"amount value decimal", set("amount", money("100.50", "HKD")), "amount.value", "must be a non-negative integer string of at most 64 digits", "100.50"},
		{"amount value negative", set("amount", money("-100", "HKD")), "amount.value", "must be a non-negative integer string of at most 64 digits", "-100"},
		{"amount value trailing newline", set("amount", money("100\n", "HKD")), "amount.value", "must be a non-negative integer string of at most 64 digits", ""},
		{"amount value number", set("amount", money(json.Number("98765"), "HKD")), "amount.value", "must be a string", "98765"},
		{"amount value missing", set("amount", map[string]any{"currency": "HKD"}), "amount.value", "required", ""},
		{"amount currency missing", set("amount", map[string]any{"value": "100"}), "amount.currency", "required", ""},
		{"amount currency lower case", set("amount", money("100", "hkd")), "amount.currency", "not an ISO 4217 code", "hkd"},
		{"amount currency unknown", set("amount", money("100", "QQQ")), "amount.currency", "not an ISO 4217 code", "QQQ"},
		{"amount currency 4 letters", set("amount", money("100", "HKDX")), "amount.currency", "not an ISO 4217 code", "HKDX"},
		{"amount currency number", set("amount", money("100", json.Number("344"))), "amount.currency", "must be a string", "344"},
		{"amount not object", set("amount", "LEAKAMOUNT"), "amount", "must be an object", "LEAKAMOUNT"},
		{"payAmount valid", set("payAmount", money("9500", "USD")), "", "", ""},
		{"payAmount currency unknown", set("payAmount", money("9500", "ZZZ")), "payAmount.currency", "not an ISO 4217 code", "ZZZ"},
		{"payAmount value bad", set("payAmount", money("95x", "HKD")), "payAmount.value", "must be a non-negative integer string of at most 64 digits", "95x"},

		// extInfo: required object.
		{"extInfo missing", del("extInfo"), "extInfo", "required", ""},
		{"extInfo array", set("extInfo", []any{}), "extInfo", "must be an object", ""},
		{"extInfo string", set("extInfo", "LEAKEXT"), "extInfo", "must be an object", "LEAKEXT"},

		// Unknown fields are allowed anywhere.
		{"unknown top-level field", set("newAlipayField", map[string]any{"x": 1}), "", "", ""},
		{"unknown extInfo field", set("extInfo.other", "x"), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := mutate(t, seed, tt.mutate)
			err := validate(body)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid body rejected: %v\n%s", err, body)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want error on %s\n%s", tt.field, body)
			}
			var fe *message.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *message.FieldError: %v", err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if fe.Rule == "" {
				t.Error("empty Rule")
			}
			if tt.rule != "" && fe.Rule != tt.rule {
				t.Errorf("Rule = %q, want %q", fe.Rule, tt.rule)
			}
			if err.Error() != fe.Field+": "+fe.Rule {
				t.Errorf("Error() = %q", err.Error())
			}
			if len(err.Error()) > message.MaxResultMessageLen {
				t.Errorf("message is %d bytes", len(err.Error()))
			}
			if tt.leak != "" && strings.Contains(err.Error(), tt.leak) {
				t.Errorf("message %q contains the offending value %q", err, tt.leak)
			}
		})
	}
}

// The base schema does not know scenarios: an empty extInfo is fine there.
func TestBaseAloneAcceptsEmptyExtInfo(t *testing.T) {
	doc := decode(t, `{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{}}`)
	if err := base(t).Validate(doc); err != nil {
		t.Fatal(err)
	}
}

// Many violations at once: the answer must not depend on map order, and the
// shallowest field wins.
func TestMostRelevantIsDeterministic(t *testing.T) {
	v := base(t)
	doc := decode(t, `{"requestId":"","merchantBizNo":"`+strings.Repeat("x", 70)+`","orderStatus":5,
		"amount":{"value":"x","currency":"x"},"orderModifyTime":1.5,"extInfo":[]}`)
	first := v.Validate(doc)
	if first == nil {
		t.Fatal("accepted")
	}
	for i := 0; i < 200; i++ {
		if got := v.Validate(doc); got.Error() != first.Error() {
			t.Fatalf("run %d: %q, first run %q", i, got, first)
		}
	}
	if want := "extInfo: must be an object"; first.Error() != want {
		t.Errorf("got %q, want %q", first, want)
	}
}

func TestNonObjectDocument(t *testing.T) {
	v := base(t)
	for _, doc := range []any{nil, "x", json.Number("1"), []any{}} {
		err := v.Validate(doc)
		var fe *message.FieldError
		if !errors.As(err, &fe) || fe.Field != "body" || fe.Rule != "must be an object" {
			t.Errorf("Validate(%#v) = %v", doc, err)
		}
	}
}

func TestCompile(t *testing.T) {
	queue := mustCompile(t, "queue_up", `{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type": "object",
		"properties": {
			"extInfo": {
				"type": "object",
				"required": ["queue_no"],
				"additionalProperties": false,
				"properties": {
					"queue_no": {"type": "string", "pattern": "^[A-Z][0-9]{1,4}$",
						"errorMessage": {"pattern": "must be a letter and up to four digits"}},
					"party_size": {"type": "integer", "minimum": 1, "maximum": 20},
					"kind": {"enum": ["WALK_IN", "BOOKED"]},
					"called_at": {"type": "string", "format": "date-time"},
					"contact": {"anyOf": [{"type": "string"}, {"type": "null"}]},
					"channel": {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "string", "minLength": 5}]},
					"phone": {"type": "string"},
					"email": {"type": "string"}
				},
				"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]
			}
		}
	}`)
	body := `{"requestId":"r","merchantBizNo":"m","orderStatus":"CALL_NUM","userId":"u","extInfo":`
	tests := []struct {
		ext  string
		want string // "" = valid
	}{
		{`{"queue_no":"A12","phone":"1"}`, ""},
		{`{"queue_no":"A12","email":"e","party_size":4,"kind":"BOOKED","called_at":"2025-02-24T08:25:06Z","contact":null}`, ""},
		{`{"phone":"1"}`, "extInfo.queue_no: required"},
		{`{"queue_no":"SECRET-12","phone":"1"}`, "extInfo.queue_no: must be a letter and up to four digits"},
		{`{"queue_no":"A1","phone":"1","party_size":99}`, "extInfo.party_size: must be at most 20"},
		{`{"queue_no":"A1","phone":"1","party_size":2.5}`, "extInfo.party_size: must be an integer"},
		{`{"queue_no":"A1","phone":"1","kind":"SECRET"}`, "extInfo.kind: not one of the allowed values"},
		{`{"queue_no":"A1","phone":"1","called_at":"SECRET"}`, "extInfo.called_at: not an RFC 3339 date-time"},
		{`{"queue_no":"A1","phone":"1","contact":42}`, "extInfo.contact: must be a string or null"},
		{`{"queue_no":"A1","phone":"1","contact":[]}`, "extInfo.contact: must be a string or null"},
		{`{"queue_no":"A1"}`, "extInfo.phone: one of phone or email is required"},
		{`{"queue_no":"A1","phone":"1","channel":"SECRT"}`, ""},
		{`{"queue_no":"A1","phone":"1","channel":"SECR"}`, "extInfo.channel: does not match any allowed form"},
		{`{"queue_no":"A1","phone":"1","SECRET_key":1}`, "extInfo.SECRET_key: not allowed"},
	}
	for _, tt := range tests {
		doc := decode(t, body+tt.ext+`}`)
		if err := base(t).Validate(doc); err != nil {
			t.Fatalf("%s: base: %v", tt.ext, err)
		}
		err := queue.Validate(doc)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: rejected: %v", tt.ext, err)
		case tt.want != "" && (err == nil || err.Error() != tt.want):
			t.Errorf("%s: got %v, want %q", tt.ext, err, tt.want)
		}
		if err != nil && tt.want != "extInfo.SECRET_key: not allowed" && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: leaks value: %v", tt.ext, err)
		}
	}
}

func TestCompileRejectsBadSchemas(t *testing.T) {
	tests := []struct {
		name   string
		schema string
	}{
		{"not JSON", `{"type":`},
		{"trailing data", `{} {}`},
		{"duplicate key", `{"type":"object","type":"string"}`},
		{"wrong keyword type", `{"type": 5}`},
		{"unknown type", `{"type": "text"}`},
		{"bad pattern", `{"pattern": "("}`},
		{"negative length", `{"maxLength": -1}`},
		{"unresolvable ref", `{"$ref": "#/$defs/missing"}`},
		{"remote ref", `{"$ref": "https://example.com/schema.json"}`},
		{"file ref", `{"$ref": "other.json"}`},
		{"not a schema", `"string"`},
		{"unknown format", `{"properties":{"extInfo":{"properties":{"at":{"format":"date_time"}}}}}`},
		{"unknown format in $defs", `{"$defs":{"t":{"format":"currency"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Compile("custom", []byte(tt.schema)); err == nil || s != nil {
				t.Fatal("bad schema accepted")
			}
		})
	}
	if _, err := Compile("", []byte(`{}`)); err == nil {
		t.Error("empty scenario name accepted")
	}
}

func TestFormatLookalikesAreNotFormats(t *testing.T) {
	// A property named "format", data under enum/default, and an
	// errorMessage for the format keyword are not format keywords.
	v := mustCompile(t, "lookalikes", `{"properties":{"format":{"type":"string"},"x":{"enum":[{"format":"nope"}],"default":{"format":"nope"}},
		"d":{"format":"date","errorMessage":{"format":"must be a calendar date"}}}}`)
	if err := v.Validate(decode(t, `{"d":"2025-02-30"}`)); err == nil || err.Error() != "d: must be a calendar date" {
		t.Errorf("got %v", err)
	}
}

func TestOneOfAmbiguous(t *testing.T) {
	v := mustCompile(t, "one", `{"properties":{"b":{"oneOf":[{"type":"string"},{"minLength":1}]}}}`)
	if err := v.Validate(decode(t, `{"b":"SECRET"}`)); err == nil || err.Error() != "b: matches more than one allowed form" {
		t.Errorf("got %v", err)
	}
}

func TestMessageBounded(t *testing.T) {
	// A deep, long path and a long errorMessage in a custom schema.
	key := strings.Repeat("k", 100)
	sch := `{"errorMessage":"` + strings.Repeat("r", 400) + `","type":"object","required":["missing"]}`
	for i := 0; i < 6; i++ {
		sch = `{"type":"object","properties":{"` + key + `":` + sch + `}}`
	}
	v := mustCompile(t, "deep", sch)
	doc := `{}`
	for i := 0; i < 6; i++ {
		doc = `{"` + key + `":` + doc + `}`
	}
	err := v.Validate(decode(t, doc))
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(err.Error()); n > message.MaxResultMessageLen {
		t.Errorf("message is %d bytes: %q", n, err)
	}
	if !strings.Contains(err.Error(), ": rrrr") {
		t.Errorf("rule lost: %q", err)
	}
	// Hand-built errors are bounded too.
	fe := &message.FieldError{Field: strings.Repeat("f", 300), Rule: strings.Repeat("r", 300)}
	if n := len(fe.Error()); n > message.MaxResultMessageLen {
		t.Errorf("hand-built message is %d bytes", n)
	}
}

func TestHostileKeyInPath(t *testing.T) {
	v := mustCompile(t, "strict", `{"properties":{"extInfo":{"additionalProperties":false}}}`)
	err := v.Validate(decode(t, `{"extInfo":{"a\nb\u0000\u202e":1}}`))
	if err == nil || err.Error() != "extInfo.a?b??: not allowed" {
		t.Errorf("got %q", err)
	}
}

// Compiled schemas are shared by every request: concurrent validation of
// valid and invalid bodies gives every goroutine its own, right answer.
func TestConcurrentValidation(t *testing.T) {
	seed := readFile(t, "testdata/seed.json")
	bad := []byte(`{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{},"amount":{"value":"1","currency":"hkd"}}`)
	custom := mustCompile(t, "custom", `{"required":["x"]}`)
	noX := decode(t, `{"y":1}`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := validate(seed); err != nil {
					t.Error(err)
					return
				}
				if err := validate(bad); err == nil || err.Error() != "amount.currency: not an ISO 4217 code" {
					t.Errorf("bad body: %v", err)
					return
				}
				if err := custom.Validate(noX); err == nil || err.Error() != "x: required" {
					t.Errorf("custom schema: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestISO4217Format(t *testing.T) {
	for _, code := range []string{"HKD", "USD", "CNY", "EUR", "JPY", "XAU"} {
		if err := validateISO4217(code); err != nil {
			t.Errorf("%s rejected", code)
		}
	}
	for _, code := range []string{"", "HK", "HKDD", "hkd", "Hkd", "ABC", "H1D", "ÄBC"} {
		if err := validateISO4217(code); err == nil {
			t.Errorf("%q accepted", code)
		}
	}
	if err := validateISO4217(json.Number("344")); err != nil {
		t.Error("non-string must be left to the type keyword")
	}
}

func TestNoControlFormat(t *testing.T) {
	for _, v := range []any{"", "abc", "交易-№ 1", "\u0080\u009f\u2028", " ~", json.Number("1"), nil} {
		if err := validateNoControl(v); err != nil {
			t.Errorf("%q refused", v)
		}
	}
	for c := 0; c < 0x20; c++ {
		if err := validateNoControl("a" + string(rune(c)) + "b"); err != errControlChar {
			t.Errorf("U+%04X accepted", c)
		}
	}
	if err := validateNoControl("\x7f"); err != errControlChar {
		t.Error("DEL accepted")
	}
}

func TestEpochMillisFormat(t *testing.T) {
	tests := []struct {
		v    any
		want error
	}{
		{json.Number("0"), nil},
		{json.Number("-0"), nil},
		{json.Number("1742977506708"), nil},
		{json.Number("253402300799999"), nil},
		{json.Number("253402300800000"), errEpochRange},
		{json.Number("-1"), errEpochRange},
		{json.Number("1234567890123456789012"), errEpochRange},
		{json.Number("1.5"), errNotEpochInt},
		{json.Number("1.0"), errNotEpochInt},
		{json.Number("1e3"), errNotEpochInt},
		{json.Number("-1.5"), errNotEpochInt},
		{json.Number(""), errNotEpochInt},
		{1742977506708.0, nil},
		{1.5, errNotEpochInt},
		{-1.0, errEpochRange},
		{int64(-1), errEpochRange},
		{1742977506708, nil},
		{"1742977506708", nil}, // strings are the type keyword's business
	}
	for _, tt := range tests {
		if got := validateEpochMillis(tt.v); got != tt.want {
			t.Errorf("validateEpochMillis(%#v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// Every keyword a custom schema may use gets a value-free rule.
func TestCustomKeywordRules(t *testing.T) {
	tests := []struct {
		schema string // the schema of extInfo.x
		value  string // JSON of extInfo.x, containing SECRET where it can
		want   string
	}{
		{`{"minLength":8}`, `"SECRET"`, "extInfo.x: shorter than 8 characters"},
		{`{"enum":["A","B"]}`, `"SECRET"`, "extInfo.x: not one of the allowed values"},
		{`{"const":{"a":1}}`, `{"a":"SECRET"}`, "extInfo.x: not the required value"},
		{`{"exclusiveMinimum":10}`, `10`, "extInfo.x: must be greater than 10"},
		{`{"exclusiveMaximum":10}`, `10`, "extInfo.x: must be less than 10"},
		{`{"minimum":0.5}`, `0.25`, "extInfo.x: must be at least 0.5"},
		{`{"multipleOf":5}`, `12`, "extInfo.x: must be a multiple of 5"},
		{`{"minProperties":2}`, `{"SECRET":1}`, "extInfo.x: must have at least 2 properties"},
		{`{"maxProperties":1}`, `{"SECRET":1,"b":2}`, "extInfo.x: must have at most 1 properties"},
		{`{"minItems":2}`, `["SECRET"]`, "extInfo.x: must have at least 2 items"},
		{`{"maxItems":1}`, `["SECRET","b"]`, "extInfo.x: must have at most 1 items"},
		{`{"uniqueItems":true}`, `["SECRET","SECRET"]`, "extInfo.x: items must be unique"},
		{`{"contains":{"const":"A"}}`, `["SECRET"]`, "extInfo.x: does not contain the expected items"},
		{`{"items":{"type":"integer"}}`, `[1,"SECRET"]`, "extInfo.x.1: must be an integer"},
		{`{"prefixItems":[true],"items":false}`, `[1,"SECRET"]`, "extInfo.x.1: not allowed"},
		{`{"not":{"type":"string"}}`, `"SECRET"`, "extInfo.x: matches a forbidden form"},
		{`false`, `"SECRET"`, "extInfo.x: not allowed"},
		{`{"type":["string","null"]}`, `12345`, "extInfo.x: must be null or a string"},
		{`{"format":"email"}`, `"SECRET"`, "extInfo.x: not an email address"},
		{`{"format":"uuid"}`, `"SECRET"`, "extInfo.x: not a valid uuid"},
		{`{"format":"iso4217"}`, `"SECRET"`, "extInfo.x: not an ISO 4217 code"},
		{`{"format":"epoch-millis"}`, `-5`, "extInfo.x: must be between 0 and 253402300799999 (epoch milliseconds)"},
		{`{"format":"no-control-chars"}`, `"SECRET\u0007"`, "extInfo.x: must not contain control characters"},
		{`{"dependentRequired":{"a":["b"]}}`, `{"a":"SECRET"}`, "extInfo.x.b: required when a is present"},
		{`{"propertyNames":{"maxLength":3}}`, `{"SECRET":1}`, "extInfo.x.SECRET: not an allowed property name"},
		{`{"allOf":[{"type":"string"},{"minLength":10}]}`, `"SECRET"`, "extInfo.x: shorter than 10 characters"},
		{`{"if":{"type":"string"},"then":{"maxLength":2}}`, `"SECRET"`, "extInfo.x: longer than 2 characters"},
		{`{"$ref":"#/$defs/short","$defs":{"short":{"maxLength":2}}}`, `"SECRET"`, "extInfo.x: longer than 2 characters"},
		{`{"unevaluatedProperties":false,"properties":{"a":true}}`, `{"a":1,"SECRET":2}`, "extInfo.x.SECRET: not allowed"},
		{`{"errorMessage":"must be a short code","maxLength":2}`, `"SECRET"`, "extInfo.x: must be a short code"},
		{`{"errorMessage":"line one\nline two","maxLength":2}`, `"SECRET"`, "extInfo.x: line one?line two"},
	}
	for _, tt := range tests {
		sch := `{"properties":{"extInfo":{"properties":{"x":` + tt.schema + `}}}}`
		if strings.Contains(tt.schema, "$defs") {
			sch = `{"properties":{"extInfo":{"properties":{"x":{"$ref":"#/$defs/short"}}}},"$defs":{"short":{"maxLength":2}}}`
		}
		v, err := Compile("c", []byte(sch))
		if err != nil {
			t.Errorf("%s: %v", tt.schema, err)
			continue
		}
		err = v.Validate(decode(t, `{"extInfo":{"x":`+tt.value+`}}`))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s with %s: got %v, want %q", tt.schema, tt.value, err, tt.want)
			continue
		}
		// Keys may be named (propertyNames, unevaluatedProperties); values never.
		if strings.Contains(err.Error(), "SECRET") && !strings.Contains(tt.value, `"SECRET":`) {
			t.Errorf("%s: leaks the value: %v", tt.schema, err)
		}
	}
}
