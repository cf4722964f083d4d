package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/schema"
	"github.com/caddy-alipay/ordersync/statemachine"
)

// The seed and the pretty body live with the schema package's tests.
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

func mustNew(t testing.TB, configs ...Config) *Catalog {
	t.Helper()
	c, err := New(configs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// request decodes a body and reads its typed request, as the handler does.
func request(t testing.TB, body string) (*message.Document, *message.Request) {
	t.Helper()
	doc, err := message.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r, err := doc.Request()
	if err != nil {
		t.Fatal(err)
	}
	return doc, r
}

// body is a minimal valid request with the given merchantBizType and extInfo.
func body(bizType, ext string) string {
	return `{"requestId":"r","merchantBizNo":"m","orderStatus":"TICKETED","userId":"u","merchantBizType":"` +
		bizType + `","extInfo":` + ext + `}`
}

func matched(t *testing.T, c *Catalog, bizType, ext string) string {
	t.Helper()
	_, r := request(t, body(bizType, ext))
	if sc := c.Match(r); sc != nil {
		return sc.Name()
	}
	return ""
}

// gift_card is enabled with no configuration and matches merchantBizType
// ALIPAY_COUPON with extInfo.benefit_issue_mode SALE (docs/SPEC.md §6).
func TestGiftCardEnabledByDefault(t *testing.T) {
	c := mustNew(t)
	for _, tt := range []struct{ bizType, ext, want string }{
		{"ALIPAY_COUPON", `{"benefit_issue_mode":"SALE","product_id":"p"}`, "gift_card"},
		{"ALIPAY_COUPON", `{"benefit_issue_mode":"RENT","product_id":"p"}`, ""},
		{"ALIPAY_COUPON", `{"benefit_issue_mode":"sale"}`, ""},
		{"ALIPAY_COUPON", `{"product_id":"p"}`, ""},
		{"ALIPAY_COUPON", `{"benefit_issue_mode":1}`, ""},
		{"ALIPAY_COUPON", `{"nested":{"benefit_issue_mode":"SALE"}}`, ""},
		{"OTHER", `{"benefit_issue_mode":"SALE"}`, ""},
		{"", `{"benefit_issue_mode":"SALE"}`, ""},
	} {
		if got := matched(t, c, tt.bizType, tt.ext); got != tt.want {
			t.Errorf("%s %s: matched %q, want %q", tt.bizType, tt.ext, got, tt.want)
		}
	}
	// The seed is a gift card request.
	doc, r := request(t, string(readFile(t, seedFile)))
	sc := c.Match(r)
	if sc == nil || sc.Name() != "gift_card" || !sc.Machine().Has("TICKETED") {
		t.Fatalf("seed matched %v", sc)
	}
	if err := sc.Validate(doc.Tree()); err != nil {
		t.Errorf("seed: %v", err)
	}
}

// A scenario with more match_ext conditions is more specific and wins,
// whatever the configuration order; built-ins and custom scenarios are
// matched the same way.
func TestMatchMoreSpecificWins(t *testing.T) {
	configs := []Config{
		{Name: "coupon_with_code", MerchantBizType: "COUPON"},
		{Name: "movie_ticket", MerchantBizType: "COUPON", MatchExt: map[string]string{"kind": "MOVIE"}},
		{Name: "locker", MerchantBizType: "COUPON", MatchExt: map[string]string{"kind": "MOVIE", "where": "LOCKER"}, Statuses: []string{"TICKETED"}},
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		var cs []Config
		for _, i := range order {
			cs = append(cs, configs[i])
		}
		c := mustNew(t, cs...)
		for _, tt := range []struct{ ext, want string }{
			{`{}`, "coupon_with_code"},
			{`{"kind":"MOVIE"}`, "movie_ticket"},
			{`{"kind":"MOVIE","where":"LOCKER"}`, "locker"},
			{`{"kind":"MOVIE","where":"SHOP"}`, "movie_ticket"},
			{`{"kind":"BOOK","where":"LOCKER"}`, "coupon_with_code"},
		} {
			if got := matched(t, c, "COUPON", tt.ext); got != tt.want {
				t.Errorf("order %v, extInfo %s: matched %q, want %q", order, tt.ext, got, tt.want)
			}
		}
		// gift_card is still there, and still more specific than a
		// scenario that only names ALIPAY_COUPON.
		if got := matched(t, c, "ALIPAY_COUPON", `{"benefit_issue_mode":"SALE"}`); got != "gift_card" {
			t.Errorf("order %v: gift card matched %q", order, got)
		}
	}
}

// Configuring gift_card with a rule of its own replaces the published one.
func TestGiftCardRuleOverridden(t *testing.T) {
	c := mustNew(t, Config{Name: "gift_card", MerchantBizType: "GIFT"})
	if got := matched(t, c, "GIFT", `{}`); got != "gift_card" {
		t.Errorf("own rule: matched %q", got)
	}
	if got := matched(t, c, "ALIPAY_COUPON", `{"benefit_issue_mode":"SALE"}`); got != "" {
		t.Errorf("published rule still matches: %q", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	notSchema := filepath.Join(dir, "not-a-schema.json")
	if err := os.WriteFile(notSchema, []byte(`{"type": 12}`), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent.json")
	for _, tt := range []struct {
		name    string
		configs []Config
		want    []string // substrings of the error
	}{
		{"name empty", []Config{{MerchantBizType: "X", Statuses: []string{"A"}}}, []string{"scenario: name is empty"}},
		{"configured twice", []Config{{Name: "queue_up", MerchantBizType: "Q"}, {Name: "queue_up", MerchantBizType: "R"}},
			[]string{"scenario queue_up: configured twice"}},
		{"custom without statuses", []Config{{Name: "locker_pickup", MerchantBizType: "LOCKER"}},
			[]string{"scenario locker_pickup: not a built-in scenario (auto_deduct_voucher, coupon_with_code, gift_card, movie_ticket, queue_up, self_pick), so it needs statuses"}},
		{"built-in without merchant_biz_type", []Config{{Name: "queue_up", MatchExt: map[string]string{"k": "v"}}},
			[]string{"scenario queue_up: merchant_biz_type is required"}},
		{"custom without merchant_biz_type", []Config{{Name: "locker_pickup", Statuses: []string{"A"}}},
			[]string{"scenario locker_pickup: merchant_biz_type is required"}},
		{"state machine contradiction", []Config{{Name: "locker_pickup", MerchantBizType: "LOCKER", Statuses: []string{"CREATED", "COLLECTED"}, OnlyFrom: map[string][]string{"COLLECTED": {"GONE"}}}},
			[]string{`scenario locker_pickup: only_from: unknown status "GONE"`}},
		{"built-in override contradiction", []Config{{Name: "self_pick", MerchantBizType: "PICK", End: []string{"TO_PICK_UP"}}},
			[]string{"scenario self_pick: next_must_be"}},
		{"schema_file missing", []Config{{Name: "queue_up", MerchantBizType: "Q", SchemaFile: absent}},
			[]string{"scenario queue_up: schema_file: ", "absent.json"}},
		{"schema_file not a schema", []Config{{Name: "queue_up", MerchantBizType: "Q", SchemaFile: notSchema}},
			[]string{"scenario queue_up: schema_file: " + notSchema + ": "}},
		{"same rule twice", []Config{
			{Name: "coupon_with_code", MerchantBizType: "COUPON", MatchExt: map[string]string{"a": "1"}},
			{Name: "movie_ticket", MerchantBizType: "COUPON", MatchExt: map[string]string{"a": "1"}}},
			[]string{"scenario movie_ticket: merchant_biz_type and match_ext are the same as scenario coupon_with_code's"}},
		{"same rule as gift_card's", []Config{
			{Name: "coupon_with_code", MerchantBizType: "ALIPAY_COUPON", MatchExt: map[string]string{"benefit_issue_mode": "SALE"}}},
			[]string{"scenario gift_card: merchant_biz_type and match_ext are the same as scenario coupon_with_code's"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.configs)
			if err == nil {
				t.Fatalf("accepted: %v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Distinct rules on one merchantBizType are fine, so is an empty
	// match_ext next to a non-empty one.
	mustNew(t,
		Config{Name: "coupon_with_code", MerchantBizType: "COUPON", MatchExt: map[string]string{"a": "1"}},
		Config{Name: "movie_ticket", MerchantBizType: "COUPON", MatchExt: map[string]string{"a": "2"}},
		Config{Name: "queue_up", MerchantBizType: "COUPON"},
	)
}

// A built-in's configured options replace its own; the rest stay.
func TestBuiltinOverride(t *testing.T) {
	c := mustNew(t, Config{Name: "queue_up", MerchantBizType: "Q", End: []string{"CANCELLED", "FINISHED"}})
	_, r := request(t, body("Q", `{}`))
	m := c.Match(r).Machine()
	if got := m.Decide(st("CANCELLED", 1), "FINISHED", 2); got.Verdict != statemachine.Reject {
		t.Errorf("end status not applied: %v", got)
	}
	if got := m.Decide(st("CALL_NUM", 1), "CALL_NUM", 2); got.Verdict != statemachine.Forward {
		t.Errorf("built-in repeatable lost: %v", got)
	}
	// The next catalog gets the built-in as published.
	c = mustNew(t, Config{Name: "queue_up", MerchantBizType: "Q"})
	if got := c.Match(r).Machine().Decide(st("CANCELLED", 1), "FINISHED", 2); got.Verdict != statemachine.Forward {
		t.Errorf("override leaked into the built-in: %v", got)
	}
}

// mutate applies f to a decoded copy of the seed and re-encodes it.
func mutate(t *testing.T, seed []byte, f func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(seed))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func set(path string, value any) func(map[string]any) {
	return func(m map[string]any) {
		keys := strings.Split(path, ".")
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
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

// validate runs the handler's sequence: decode, base schema, match, the
// scenario's schemas.
func validate(t *testing.T, c *Catalog, raw string) error {
	t.Helper()
	doc, err := message.Decode([]byte(raw))
	if err != nil {
		return err
	}
	base, err := schema.Base()
	if err != nil {
		t.Fatal(err)
	}
	if err := base.Validate(doc.Tree()); err != nil {
		return err
	}
	r, err := doc.Request()
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Match(r)
	if sc == nil {
		t.Fatalf("no scenario for %s", raw)
	}
	return sc.Validate(doc.Tree())
}

// Gift Card through the catalog: extInfo.product_id (1..64) is checked on
// requests that match gift_card (benefit_issue_mode SALE selects it).
func TestGiftCardRules(t *testing.T) {
	c := mustNew(t)
	seed := readFile(t, seedFile)
	long := func(n int) string { return strings.Repeat("LEAK", n/4+1)[:n] }
	tests := []struct {
		name   string
		mutate func(map[string]any)
		field  string // "" means the mutation is valid
		rule   string
		leak   string // the offending value, which must not appear
	}{
		{"seed", func(map[string]any) {}, "", "", ""},
		{"other extInfo fields", set("extInfo.other", "x"), "", "", ""},
		{"product_id 64 chars", set("extInfo.product_id", long(64)), "", "", ""},
		{"product_id missing", del("extInfo.product_id"), "extInfo.product_id", "required", ""},
		{"product_id empty", set("extInfo.product_id", ""), "extInfo.product_id", "must not be empty", ""},
		{"product_id too long", set("extInfo.product_id", long(65)), "extInfo.product_id", "longer than 64 characters", long(65)},
		{"product_id null", set("extInfo.product_id", nil), "extInfo.product_id", "must be a string", ""},
		{"product_id number", set("extInfo.product_id", json.Number("31337")), "extInfo.product_id", "must be a string", "31337"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mutate(t, seed, tt.mutate)
			err := validate(t, c, raw)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid body rejected: %v\n%s", err, raw)
				}
				return
			}
			var fe *message.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FieldError: %v", err, err)
			}
			if fe.Field != tt.field || fe.Rule != tt.rule {
				t.Errorf("got %q, want %s: %s", err, tt.field, tt.rule)
			}
			if tt.leak != "" && strings.Contains(err.Error(), tt.leak) {
				t.Errorf("message %q contains the offending value %q", err, tt.leak)
			}
		})
	}
}

// Every built-in rule of the gift card schema, checked with the schema
// alone (a request lacking benefit_issue_mode does not match gift_card's
// published rule, so the catalog never gets that far).
func TestGiftCardSchema(t *testing.T) {
	gift, err := builtins["gift_card"].schema()
	if err != nil {
		t.Fatal(err)
	}
	seed := readFile(t, seedFile)
	long := func(n int) string { return strings.Repeat("LEAK", n/4+1)[:n] }
	for _, tt := range []struct {
		name   string
		mutate func(map[string]any)
		want   string
		leak   string
	}{
		{"benefit_issue_mode missing", del("extInfo.benefit_issue_mode"), "extInfo.benefit_issue_mode: required", ""},
		{"benefit_issue_mode empty", set("extInfo.benefit_issue_mode", ""), "extInfo.benefit_issue_mode: must not be empty", ""},
		{"benefit_issue_mode too long", set("extInfo.benefit_issue_mode", long(65)), "extInfo.benefit_issue_mode: longer than 64 characters", long(65)},
		{"benefit_issue_mode number", set("extInfo.benefit_issue_mode", json.Number("31337")), "extInfo.benefit_issue_mode: must be a string", "31337"},
		{"product_id missing", del("extInfo.product_id"), "extInfo.product_id: required", ""},
		{"product_id empty", set("extInfo.product_id", ""), "extInfo.product_id: must not be empty", ""},
		{"product_id too long", set("extInfo.product_id", long(65)), "extInfo.product_id: longer than 64 characters", long(65)},
		{"product_id null", set("extInfo.product_id", nil), "extInfo.product_id: must be a string", ""},
		{"extInfo empty for gift card", set("extInfo", map[string]any{}), "extInfo.benefit_issue_mode: required", ""},
	} {
		doc, _ := message.Decode([]byte(mutate(t, seed, tt.mutate)))
		err := gift.Validate(doc.Tree())
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
		if tt.leak != "" && err != nil && strings.Contains(err.Error(), tt.leak) {
			t.Errorf("%s: message %q contains the offending value", tt.name, err)
		}
	}
}

// A schema_file for a built-in adds to its embedded schema: a request must
// satisfy both.
func TestSchemaFileExtendsBuiltIn(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "gift_extra.json")
	if err := os.WriteFile(extra, []byte(`{"properties":{"extInfo":{"properties":{"product_id":{"pattern":"^2"}}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustNew(t, Config{Name: "gift_card", SchemaFile: extra})
	seed := readFile(t, seedFile)
	if err := validate(t, c, string(seed)); err != nil {
		t.Fatalf("seed: %v", err)
	}
	err := validate(t, c, mutate(t, seed, set("extInfo.product_id", "9")))
	if err == nil || err.Error() != "extInfo.product_id: does not match the expected pattern" {
		t.Errorf("extra schema: got %v", err)
	}
	// The embedded schema still applies.
	err = validate(t, c, mutate(t, seed, del("extInfo.product_id")))
	if err == nil || err.Error() != "extInfo.product_id: required" {
		t.Errorf("embedded schema: got %v", err)
	}
}

// A custom scenario's schema applies to it alone; a scenario without a
// schema accepts any extInfo.
func TestSchemasBelongToTheirScenario(t *testing.T) {
	queue := filepath.Join(t.TempDir(), "queue.json")
	if err := os.WriteFile(queue, []byte(`{"properties":{"extInfo":{"required":["queue_no"]}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustNew(t,
		Config{Name: "queue_up", MerchantBizType: "QUEUE", SchemaFile: queue},
		Config{Name: "self_pick", MerchantBizType: "PICK"},
	)
	if err := validate(t, c, body("QUEUE", `{}`)); err == nil || err.Error() != "extInfo.queue_no: required" {
		t.Errorf("queue_up: got %v", err)
	}
	if err := validate(t, c, body("PICK", `{}`)); err != nil {
		t.Errorf("self_pick has no schema: %v", err)
	}
	if err := validate(t, c, body("ALIPAY_COUPON", `{"benefit_issue_mode":"SALE"}`)); err == nil || err.Error() != "extInfo.product_id: required" {
		t.Errorf("gift_card lost its schema: %v", err)
	}
}

// Everything that passes the schemas yields a typed request that
// normalizes to valid JSON.
func TestValidatedBodiesNormalize(t *testing.T) {
	c := mustNew(t)
	for _, name := range []string{seedFile, prettyFile} {
		raw := readFile(t, name)
		if err := validate(t, c, string(raw)); err != nil {
			t.Fatal(err)
		}
		_, r := request(t, string(raw))
		if out := r.Normalize("c", "gift_card", ""); !json.Valid(out) {
			t.Errorf("%s: invalid JSON %s", name, out)
		}
	}
}

func BenchmarkValidateGiftCard(b *testing.B) {
	c := mustNew(b)
	doc, r := request(b, string(readFile(b, seedFile)))
	sc := c.Match(r)
	b.ReportAllocs()
	for b.Loop() {
		if err := sc.Validate(doc.Tree()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	c := mustNew(b,
		Config{Name: "coupon_with_code", MerchantBizType: "COUPON"},
		Config{Name: "movie_ticket", MerchantBizType: "MOVIE", MatchExt: map[string]string{"kind": "MOVIE"}},
	)
	_, r := request(b, string(readFile(b, seedFile)))
	b.ReportAllocs()
	for b.Loop() {
		if c.Match(r) == nil {
			b.Fatal("no match")
		}
	}
}

// Lookup finds an enabled scenario by name, and nothing else.
func TestLookup(t *testing.T) {
	c, err := New([]Config{{Name: "queue_up", MerchantBizType: "QUEUE"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"queue_up", "gift_card"} {
		if sc := c.Lookup(name); sc == nil || sc.Name() != name {
			t.Errorf("Lookup(%q) = %v", name, sc)
		}
	}
	for _, name := range []string{"self_pick", "", "QUEUE"} {
		if sc := c.Lookup(name); sc != nil {
			t.Errorf("Lookup(%q) = %s, want nil", name, sc.Name())
		}
	}
}
