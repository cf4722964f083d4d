package caddytest

// End-to-end tests of the egress promises the other push tests leave open:
// the defaults of every option left out (README, "Egress configuration"),
// and a `path` other than the default, which the module sets on every
// attempt and signs over (README, "Delivery rules" 4 and 5).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

// TestPushDefaults: an alipay_order_push block with only client_id and the
// two keys. The attempts go to the default path, signed with keyVersion 1;
// the outbox is a bbolt file in Caddy's data directory; max_body_size is
// 64KiB; an AlipayHK that never answers is given up after attempt_timeout
// 10s, the legacy caller waits 10s (wait) for a 202, and the next attempt
// is due within retry_initial 1s; a final entry is kept max_age 24h.
func TestPushDefaults(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.setKeyVersion("1")
	in := startCaddy(t, func(in *instance) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_push {
			client_id %s
			private_key_file %s
			alipay_public_key_file %s
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, pushLegacyPath, testClient, pushKeyFile("merchant-private.pem"), pushKeyFile("gateway-public.pem"), ahk.addr())
	}, caddyOptions{})

	o := newOrder()
	id := o.str("requestId")
	pushPost(t, in, o.bytes()).expectAlipay(t, ahk.finalReply(t, id), id) // the stand-in accepts only syncPath and keyVersion=1
	ahk.checkWellFormed(t, id)

	t.Run("store: bbolt in Caddy's data directory", func(t *testing.T) {
		path := filepath.Join(in.dataDir, "caddy", "alipay_order_sync", "orders.db")
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("no outbox at the default path %s: %v", path, err)
		}
	})

	t.Run("max_age 24h", func(t *testing.T) {
		var e adminapi.PushEntryView
		st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushEntry, testClient, id), &e)
		updated, err1 := time.Parse(time.RFC3339Nano, e.UpdatedAt)
		expires, err2 := time.Parse(time.RFC3339Nano, e.ExpiresAt)
		if st != http.StatusOK || err1 != nil || err2 != nil {
			t.Fatalf("admin entry: HTTP %d %s", st, body)
		}
		if d := expires.Sub(updated); d != 24*time.Hour {
			t.Errorf("a final entry is kept %s after it ended, want 24h (%s)", d, body)
		}
	})

	t.Run("max_body_size 64KiB", func(t *testing.T) {
		pad := func(n int) []byte {
			o := newOrder()
			short := len(o.with("extInfo.pad", "").bytes())
			return o.with("extInfo.pad", strings.Repeat("x", n-short)).bytes()
		}
		big := pad(64<<10 + 1)
		env := pushSend(t, in, pushCall{body: big}).expectGateway(t, "PARAM_ILLEGAL", "F", "")
		if !strings.Contains(env.Result.ResultMessage, "max_body_size") {
			t.Errorf("resultMessage %q", env.Result.ResultMessage)
		}
		fits := pad(64 << 10)
		var req struct{ RequestID string }
		_ = json.Unmarshal(fits, &req)
		pushPost(t, in, fits).expectAlipay(t, ahk.finalReply(t, req.RequestID), req.RequestID)
	})

	t.Run("wait 10s, attempt_timeout 10s, retry_initial 1s", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		ahk.script(id, ahkHang)
		began := time.Now()
		r := pushPost(t, in, o.bytes())
		took := time.Since(began)
		r.expectQueued(t, id)
		if took < 9500*time.Millisecond || took > 16*time.Second {
			t.Errorf("the legacy caller got its 202 after %s, want about 10s", took)
		}
		atts := ahk.settledAttemptsOf(t, id)
		if len(atts) == 0 {
			t.Fatal("no attempt arrived")
		}
		if d := atts[0].done.Sub(atts[0].at); d < 9500*time.Millisecond || d > 16*time.Second {
			t.Errorf("the first attempt was given up after %s, want about 10s", d)
		}
		// Full jitter from retry_initial: the second attempt is due at
		// most 1s after the first failed.
		var e adminapi.PushEntryView
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushEntry, testClient, id), &e)
			if st != http.StatusOK {
				t.Fatalf("admin entry: HTTP %d %s", st, body)
			}
			if e.Attempts >= 1 && e.NextAttemptAt != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the failed attempt was never recorded: %s", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		updated, _ := time.Parse(time.RFC3339Nano, e.UpdatedAt)
		next, err := time.Parse(time.RFC3339Nano, e.NextAttemptAt)
		if err != nil || e.Attempts != 1 || next.Sub(updated) > time.Second+time.Millisecond || next.Before(updated) {
			t.Errorf("after the first failed attempt: attempts %d, updatedAt %s, nextAttemptAt %s; want the next within 1s", e.Attempts, e.UpdatedAt, e.NextAttemptAt)
		}
		ahk.script(id, ahkS)
		pushAwait(t, in, id, 60*time.Second, pushSucceeded)
	})
}

// TestPushCustomPath: with `path`, every attempt is POST <path> (the module
// sets it; reverse_proxy needs no rewrite), signed over it, and AlipayHK's
// reply is verified over it. Here "AlipayHK" is this project's ingress
// handler on that path, which verifies and signs over the path it got.
func TestPushCustomPath(t *testing.T) {
	t.Parallel()
	const custom = "/custom/v2/order/sync"
	issuer := newPushIssuer(t)
	k := demoKeys(t)
	ingress := startCaddy(t, func(in *instance) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_sync {
			client %s {
				public_key_file 1 %s
			}
			sign_responses {
				private_key_file %s
			}
			store bbolt %s
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, custom, testClient, k.merchantPub, k.gatewayPriv, filepath.Join(in.dataDir, "ingress.db"), issuer.addr())
	}, caddyOptions{})
	in := pushConfig{upstream: fmt.Sprintf("127.0.0.1:%d", ingress.port), options: "path " + custom}.start(t, caddyOptions{})
	o := newOrder()
	id := o.str("requestId")
	r := pushPost(t, in, o.bytes())
	if r.status != http.StatusOK || r.header.Get("Order-Push-Decided-By") != "alipayhk" || !strings.Contains(string(r.body), `"resultCode":"SUCCESS"`) {
		t.Fatalf("want the ingress's verified SUCCESS, got %s", r)
	}
	if n := issuer.callsOf(id); n != 1 {
		t.Errorf("the issuer was called %d times", n)
	}
	// The ingress signed its reply over the custom path: the egress
	// verified it there, else the entry would still be queued.
	if e := pushLookup(t, in, id).expectEntry(t, id); e.State != pushSucceeded || e.Attempts != 1 {
		t.Errorf("entry: %s", pushRaw(e.raw))
	}
}
