package outbox

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/statemachine"
	"github.com/caddy-alipay/ordersync/store"
)

// Every config mistake is an error naming the option.
func TestConfigErrorsNameTheOption(t *testing.T) {
	t.Parallel()
	good := testConfig(t)
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	secret := []byte(strings.Repeat("k", 32))
	for _, tt := range []struct {
		option string
		break_ func(*Config)
	}{
		{"client_id", func(c *Config) { c.ClientID = "" }},
		{"client_id", func(c *Config) { c.ClientID = "a\nb" }},
		{"key_version", func(c *Config) { c.KeyVersion = "1,2" }},
		{"private_key_file", func(c *Config) { c.Signer = nil }},
		{"alipay_public_key_file", func(c *Config) { c.AlipayKey = nil }},
		{"path", func(c *Config) { c.Path = "no-slash" }},
		{"path", func(c *Config) { c.Path = "/a?b" }},
		{"wait", func(c *Config) { c.Wait = -time.Second }},
		{"attempt_timeout", func(c *Config) { c.AttemptTimeout = -1 }},
		{"retry_initial", func(c *Config) { c.RetryInitial = time.Hour; c.RetryMax = time.Minute }},
		{"max_age", func(c *Config) { c.MaxAge = -1 }},
		{"max_body_size", func(c *Config) { c.MaxBodySize = -1 }},
		{"scenario", func(c *Config) { c.Scenarios = nil }},
		{"callback", func(c *Config) { c.Callback = &Callback{URL: "ftp://x", Secret: secret} }},
		{"callback", func(c *Config) { c.Callback = &Callback{URL: "/relative", Secret: secret} }},
		{"callback secret", func(c *Config) { c.Callback = &Callback{URL: "http://127.0.0.1:1/hook", Secret: []byte("short")} }},
	} {
		c := good
		tt.break_(&c)
		err := c.Check()
		if err == nil || !strings.HasPrefix(err.Error(), tt.option) {
			t.Errorf("%s: error %v does not start with the option", tt.option, err)
		}
	}
}

// Zero fields take the documented defaults.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := testConfig(t)
	c.KeyVersion, c.Path, c.Wait, c.AttemptTimeout, c.RetryInitial, c.RetryMax, c.MaxAge, c.MaxBodySize = "", "", 0, 0, 0, 0, 0, 0
	c.Callback = &Callback{URL: "https://legacy.example/hook", Secret: []byte(strings.Repeat("k", 24))}
	d, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyVersion != "1" || d.Path != DefaultPath || d.Wait != 10*time.Second || d.AttemptTimeout != 10*time.Second ||
		d.RetryInitial != time.Second || d.RetryMax != 5*time.Minute || d.MaxAge != 24*time.Hour || d.MaxBodySize != 64<<10 {
		t.Errorf("defaults: %+v", d)
	}
	if d.Callback.Client == nil || d.Callback.Client.Timeout <= 0 || d.Callback.Client.CheckRedirect == nil {
		t.Errorf("default callback client: %+v", d.Callback.Client)
	}
	if c.Callback.Client != nil {
		t.Error("withDefaults changed the caller's Callback")
	}
}

// The entry as the legacy system reads it: every key present, times in
// RFC 3339 UTC with milliseconds, nextAttemptAt only while queued, reply
// as a JSON value.
func TestEntryView(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 8, 0, 0, 123456789, time.FixedZone("HKT", 8*3600))
	e := &store.Entry{
		RequestID: "r-1", MerchantBizNo: "b-1", OrderStatus: "TICKETED", State: store.EntryQueued, Attempts: 2,
		CreatedAt: at, UpdatedAt: at.Add(time.Second), NextAttemptAt: at.Add(2 * time.Second), LastError: "HTTP 503",
	}
	want := `{"requestId":"r-1","merchantBizNo":"b-1","orderStatus":"TICKETED","state":"queued","attempts":2,` +
		`"createdAt":"2026-03-01T00:00:00.123Z","updatedAt":"2026-03-01T00:00:01.123Z","nextAttemptAt":"2026-03-01T00:00:02.123Z",` +
		`"lastError":"HTTP 503","reply":null}`
	if got := string(EntryJSON(e)); got != want {
		t.Errorf("queued entry\n got %s\nwant %s", got, want)
	}
	e.State = store.EntrySucceeded
	e.LastError = ""
	e.Reply = &store.Reply{Status: 200, Body: []byte(`{"result": {"resultStatus":"S"}, "x":"<&>"}`)}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(EntryJSON(e), &m); err != nil {
		t.Fatal(err)
	}
	if string(m["nextAttemptAt"]) != "null" || string(m["reply"]) != `{"result":{"resultStatus":"S"},"x":"<&>"}` || string(m["state"]) != `"succeeded"` {
		t.Errorf("final entry: %s", EntryJSON(e))
	}
}

// The state check against a lane, rule by rule (Submit and the requeue
// share it).
func TestCheckLane(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	coupon, queue := cat.Lookup("coupon_with_code"), cat.Lookup("queue_up")
	entry := func(sc, status string, modified int64) *store.Entry {
		return &store.Entry{RequestID: status, Scenario: sc, OrderStatus: status, OrderModifyTime: modified}
	}
	accepted := func(sc, status string, modified int64) *store.Order {
		return &store.Order{Scenario: sc, Status: status, ModifyTime: modified}
	}
	for _, tt := range []struct {
		name   string
		lane   store.Lane
		status string
		time   int64
		want   statemachine.Verdict
		reason string
		last   string
	}{
		{"new order", store.Lane{}, "REFUNDED", 5, statemachine.Forward, "", ""},
		{"after accepted", store.Lane{Accepted: accepted("coupon_with_code", "TICKETED", 5)}, "REFUNDED", 6, statemachine.Forward, "", ""},
		{"older than accepted", store.Lane{Accepted: accepted("coupon_with_code", "TICKETED", 5)}, "REFUNDED", 4, statemachine.Reject, "orderModifyTime", ""},
		{"accepted again", store.Lane{Accepted: accepted("coupon_with_code", "TICKETED", 5)}, "TICKETED", 9, statemachine.AlreadyCurrent, "", ""},
		{"after a queued end status", store.Lane{Accepted: accepted("coupon_with_code", "TICKETED", 5), Queued: []*store.Entry{entry("coupon_with_code", "REFUNDED", 6)}}, "USED", 7, statemachine.Reject, "end status", ""},
		{"back behind the queue", store.Lane{Queued: []*store.Entry{entry("coupon_with_code", "REFUNDED", 6)}}, "TICKETED", 7, statemachine.Reject, "", ""},
		{"the last queued again", store.Lane{Queued: []*store.Entry{entry("coupon_with_code", "TICKETED", 5), entry("coupon_with_code", "REFUNDED", 6)}}, "REFUNDED", 7, statemachine.AlreadyCurrent, "", "REFUNDED"},
		{"older than a queued one", store.Lane{Queued: []*store.Entry{entry("coupon_with_code", "TICKETED", 8)}}, "REFUNDED", 7, statemachine.Reject, "orderModifyTime", ""},
		{"accepted of another scenario", store.Lane{Accepted: accepted("queue_up", "CALL_NUM", 5)}, "TICKETED", 6, statemachine.Reject, "queue_up", ""},
		{"queued of another scenario", store.Lane{Queued: []*store.Entry{entry("queue_up", "CALL_NUM", 5)}}, "TICKETED", 6, statemachine.Reject, "queue_up", ""},
	} {
		c := checkLane(coupon, &tt.lane, tt.status, tt.time)
		if c.Verdict != tt.want || !strings.Contains(c.Reason, tt.reason) {
			t.Errorf("%s: %v %q, want %v with %q", tt.name, c.Verdict, c.Reason, tt.want, tt.reason)
		}
		if got := ""; c.Last != nil {
			got = c.Last.RequestID
			if tt.want == statemachine.AlreadyCurrent && got != tt.last {
				t.Errorf("%s: last %q, want %q", tt.name, got, tt.last)
			}
		}
	}
	// A queued entry without an orderModifyTime keeps the time before it:
	// an update older than that is still refused.
	l0 := store.Lane{Accepted: accepted("queue_up", "CALL_NUM", 8), Queued: []*store.Entry{entry("queue_up", "NUMBER_ARRIVED", 0)}}
	if c := checkLane(queue, &l0, "NUMBER_PASSED", 7); c.Verdict != statemachine.Reject || !strings.Contains(c.Reason, "orderModifyTime") {
		t.Errorf("older than the time before an untimed queued entry: %v %q", c.Verdict, c.Reason)
	}
	if c := checkLane(queue, &l0, "NUMBER_PASSED", 8); c.Verdict != statemachine.Forward {
		t.Errorf("as old as the time before an untimed queued entry: %v %q", c.Verdict, c.Reason)
	}
	// Repeatable statuses are forwarded again, queued or accepted.
	l := store.Lane{Queued: []*store.Entry{entry("queue_up", "CALL_NUM", 5)}}
	if c := checkLane(queue, &l, "CALL_NUM", 6); c.Verdict != statemachine.Forward {
		t.Errorf("repeatable after a queued one: %v", c.Verdict)
	}
}
