package ordersync

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-alipay/ordersync/internal/outbox"
)

// TestPushCaddyfileEveryOption: every sub-directive lands in its JSON
// field, scenario and store blocks exactly as alipay_order_sync reads them.
func TestPushCaddyfileEveryOption(t *testing.T) {
	d := caddyfile.NewTestDispenser(`alipay_order_push {
		client_id C-1
		private_key_file keys/merchant.pem
		key_version 3
		alipay_public_key_file keys/alipay.pem
		path /custom/sync
		scenario coupon_with_code {
			merchant_biz_type COUPON
			match_ext brand ACME
		}
		scenario locker {
			merchant_biz_type LOCKER
			statuses A B C
			end C
		}
		store redis {
			address 127.0.0.1:6390
			key_prefix push:
		}
		wait 3s
		attempt_timeout 4s
		retry_initial 250ms
		retry_max 1m
		max_age 12h
		callback https://legacy.example/results {
			secret {env.CB_SECRET}
		}
		max_body_size 32KiB
	}`)
	var p PushHandler
	if err := p.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(p)
	want := `{"client_id":"C-1","private_key_file":"keys/merchant.pem","key_version":"3",` +
		`"alipay_public_key_file":"keys/alipay.pem","path":"/custom/sync",` +
		`"scenarios":[{"name":"coupon_with_code","merchant_biz_type":"COUPON","match_ext":{"brand":"ACME"}},` +
		`{"name":"locker","merchant_biz_type":"LOCKER","statuses":["A","B","C"],"end":["C"]}],` +
		`"store":{"address":"127.0.0.1:6390","backend":"redis","key_prefix":"push:"},` +
		`"wait":3000000000,"attempt_timeout":4000000000,"retry_initial":250000000,"retry_max":60000000000,` +
		`"max_age":43200000000000,"callback":{"url":"https://legacy.example/results","secret":"{env.CB_SECRET}"},` +
		`"max_body_size":32768}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if p.Wait == nil || *p.Wait != caddy.Duration(3*time.Second) || p.wait() != caddy.Duration(3*time.Second) {
		t.Errorf("wait = %v", p.Wait)
	}
	// wait 0 is kept (no wait at all), apart from wait absent (the default).
	for _, c := range []struct {
		block string
		json  string
		wait  caddy.Duration
	}{{"wait 0", `"wait":0`, caddy.Duration(outbox.NoWait)}, {"", "", 0}} {
		var q PushHandler
		if err := q.UnmarshalCaddyfile(caddyfile.NewTestDispenser("alipay_order_push {\n" + c.block + "\n}")); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(q)
		if !strings.Contains(string(b), c.json) || (c.json == "" && strings.Contains(string(b), `"wait"`)) || q.wait() != c.wait {
			t.Errorf("%q: JSON %s, wait() %v; want %s and %v", c.block, b, q.wait(), c.json, c.wait)
		}
		if err := q.Validate(); err != nil {
			t.Errorf("%q: Validate: %v", c.block, err)
		}
	}
	negative := caddy.Duration(-time.Second)
	if err := (&PushHandler{Wait: &negative}).Validate(); err == nil || !strings.Contains(err.Error(), "wait") {
		t.Errorf(`"wait": -1s validated: %v`, err)
	}

	// The inline forms of the keys.
	d = caddyfile.NewTestDispenser(`alipay_order_push {
		client_id C-1
		private_key {env.MERCHANT_KEY}
		alipay_public_key {file./run/alipay.pem}
	}`)
	p = PushHandler{}
	if err := p.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if p.PrivateKey != "{env.MERCHANT_KEY}" || p.AlipayPublicKey != "{file./run/alipay.pem}" {
		t.Errorf("inline keys: %+v", p)
	}
}

// TestPushCaddyfileErrorsNameTheOption: each mistake is refused while
// parsing, naming the option (the file and line come from the dispenser).
func TestPushCaddyfileErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"frobnicate yes", `unknown option "frobnicate"`},
		{"client_id A B", "client_id: expected one value"},
		{"client_id A\n client_id B", "client_id: given twice"},
		{"key_version 1/2", `key_version "1/2"`},
		{"wait soon", "wait:"},
		{"retry_max -1s", "retry_max: must not be negative"},
		{"max_body_size lots", "max_body_size"},
		{"callback", "callback: expected a URL"},
		{"callback http://x {\n secret a\n secret b\n}", "callback: secret: given twice"},
		{"callback http://x {\n sekret a\n}", `callback: unknown option "sekret"`},
		{"store bbolt a\n store bbolt b", "store: given twice"},
		{"store mongo", "mongo"},
		{"scenario x {\n colour red\n}", `scenario x: unknown option "colour"`},
	} {
		d := caddyfile.NewTestDispenser("alipay_order_push {\n" + tc.body + "\n}")
		var p PushHandler
		err := p.UnmarshalCaddyfile(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}
