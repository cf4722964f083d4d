package caddytest

// End-to-end tests of the egress handler's Caddy glue: its configuration
// (errors naming the option, the JSON's equal power), delivery that starts
// with Caddy and not with a request (restart with a queued outbox, caddy
// validate), and operations (metrics, admin routes, the CLI's outbox
// commands, log lines). Helpers carry a "glue" prefix.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/adminapi"
)

// glueConfigFile writes an egress config whose alipay_order_push block is
// exactly body, and returns its path and text.
func glueConfigFile(t *testing.T, in *instance, body, upstream string) (string, string) {
	t.Helper()
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_push {
%s
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, pushLegacyPath, body, upstream)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// TestPushConfigErrorsNameTheOption: a broken egress config is refused by
// caddy validate and by a reload, naming the option (and the file for key
// files, and file:line for Caddyfile syntax), never a secret's value; the
// refused reload leaves the running config delivering.
func TestPushConfigErrorsNameTheOption(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent-merchant-private.pem")
	notKey := filepath.Join(dir, "not-a-key.pem")
	if err := os.WriteFile(notKey, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const shortSecret = "c2hvcnQtc2VjcmV0" // "short-secret": too short
	keys := fmt.Sprintf("\t\t\tclient_id %s\n\t\t\tprivate_key_file %s\n\t\t\talipay_public_key_file %s\n",
		testClient, pushKeyFile("merchant-private.pem"), pushKeyFile("gateway-public.pem"))
	const store = "\t\t\tstore bbolt %STORE%\n"
	cases := []struct {
		name string
		body string
		want []string
		line string // the offending token, for errors found while parsing
	}{
		{"no client_id", strings.Replace(keys, "client_id "+testClient, "", 1) + store, []string{"alipay_order_push", "client_id"}, ""},
		{"private key file missing", strings.Replace(keys, pushKeyFile("merchant-private.pem"), absent, 1) + store,
			[]string{"private_key_file", "absent-merchant-private.pem"}, ""},
		{"AlipayHK key not a key", strings.Replace(keys, pushKeyFile("gateway-public.pem"), notKey, 1) + store,
			[]string{"alipay_public_key_file", "not-a-key.pem"}, ""},
		{"no AlipayHK key", strings.Replace(keys, "alipay_public_key_file "+pushKeyFile("gateway-public.pem"), "", 1) + store,
			[]string{"alipay_public_key_file", "required"}, ""},
		{"inline and file key", keys + "\t\t\tprivate_key {env.GLUE_UNSET_KEY}\n" + store, []string{"private_key", "private_key_file", "not both"}, ""},
		{"callback secret too short", keys + "\t\t\tcallback http://127.0.0.1:1/cb {\n\t\t\t\tsecret whsec_" + shortSecret + "\n\t\t\t}\n" + store,
			[]string{"callback secret", "at least"}, ""},
		{"callback secret unset", keys + "\t\t\tcallback http://127.0.0.1:1/cb {\n\t\t\t\tsecret {env.GLUE_UNSET_SECRET}\n\t\t\t}\n" + store,
			[]string{"callback secret"}, ""},
		{"callback without secret", keys + "\t\t\tcallback http://127.0.0.1:1/cb\n" + store, []string{"callback", "secret"}, ""},
		{"callback URL relative", keys + "\t\t\tcallback /cb {\n\t\t\t\tsecret " + pushNewSecret() + "\n\t\t\t}\n" + store,
			[]string{"callback", "absolute"}, ""},
		{"retry_initial over retry_max", keys + "\t\t\tretry_initial 10s\n\t\t\tretry_max 1s\n" + store, []string{"retry_initial", "retry_max"}, ""},
		{"path not a path", keys + "\t\t\tpath orders\n" + store, []string{"path", "/"}, ""},
		{"unknown scenario", keys + "\t\t\tscenario lottery {\n\t\t\t\tmerchant_biz_type LOT\n\t\t\t}\n" + store, []string{"lottery", "statuses"}, ""},
		{"unknown option", keys + "\t\t\tretry_forever yes\n" + store, []string{"retry_forever"}, "retry_forever"},
		{"option given twice", keys + "\t\t\twait 1s\n\t\t\twait 2s\n" + store, []string{"wait", "given twice"}, "wait 2s"},
		{"store backend unknown", keys + "\t\t\tstore mongo\n", []string{"mongo"}, "mongo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, cfg := glueConfigFile(t, in, strings.ReplaceAll(tc.body, "%STORE%", filepath.Join(t.TempDir(), "push.db")), ahk.addr())
			out, errOut, err := opsRunCaddy(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "validate", "--config", path, "--adapter", "caddyfile")
			if err == nil {
				t.Errorf("caddy validate accepted it:\n%s", cfg)
			}
			validateMsg := out + errOut
			_, reload := glueConfigFile(t, in, strings.ReplaceAll(tc.body, "%STORE%", filepath.Join(in.dataDir, "push.db")), ahk.addr())
			status, loadMsg := opsTryLoad(t, in, "text/caddyfile", []byte(reload))
			if status == http.StatusOK {
				t.Errorf("the reload was accepted:\n%s", reload)
			}
			for _, w := range tc.want {
				if !strings.Contains(validateMsg, w) {
					t.Errorf("caddy validate's message lacks %q:\n%s", w, validateMsg)
				}
				if !strings.Contains(loadMsg, w) {
					t.Errorf("the reload error lacks %q: %s", w, loadMsg)
				}
			}
			if strings.Contains(validateMsg+loadMsg, shortSecret) {
				t.Errorf("a message shows the secret:\n%s\n%s", validateMsg, loadMsg)
			}
			if tc.line != "" {
				at := fmt.Sprintf("%s:%d", path, opsLineOf(cfg, tc.line))
				if !strings.Contains(validateMsg, at) {
					t.Errorf("caddy validate's message does not point at %s:\n%s", at, validateMsg)
				}
			}
			// The refused reload left the running config in charge.
			o := newOrder()
			pushPost(t, in, o.bytes()).expectAlipay(t, ahk.finalReply(t, o.str("requestId")), o.str("requestId"))
		})
	}

	// Two handlers for one client_id and store in one configuration would
	// share one delivery runner: refused at load, naming the client_id.
	t.Run("two handlers for one client_id", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "push.db")
		block := keys + "\t\t\tstore bbolt " + db + "\n"
		cfg := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}
http://127.0.0.1:%d {
	route /a {
		alipay_order_push {
%s
		}
		reverse_proxy %s
	}
	route /b {
		alipay_order_push {
%s
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, block, ahk.addr(), block, ahk.addr())
		path := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := opsRunCaddy(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "validate", "--config", path, "--adapter", "caddyfile")
		if err == nil || !strings.Contains(out+errOut, "client_id "+testClient) || !strings.Contains(out+errOut, "same client_id") {
			t.Errorf("caddy validate: %v\n%s%s", err, out, errOut)
		}
	})
}

// glueFullCaddyfile uses every sub-directive of alipay_order_push.
func glueFullCaddyfile(in *instance, upstream, store, secret string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_push {
			client_id %s
			private_key_file %s
			key_version 1
			alipay_public_key_file %s
			path %s
			scenario coupon_with_code {
				merchant_biz_type COUPON
			}
			scenario self_pick {
				merchant_biz_type PICK
				repeatable ORDER_TAKEN
			}
%s
			wait 5s
			attempt_timeout 3s
			retry_initial 40ms
			retry_max 150ms
			max_age 90m
			callback http://127.0.0.1:1/results {
				secret %s
			}
			max_body_size 16KiB
		}
		reverse_proxy %s
	}
}
`, in.adminPort, in.port, pushLegacyPath, testClient, pushKeyFile("merchant-private.pem"), pushKeyFile("gateway-public.pem"),
		syncPath, store, secret, upstream)
}

// TestPushJSONConfigHasTheSamePower: every sub-directive adapts to its JSON
// field, secrets stay placeholders in the JSON, and the JSON, loaded as
// JSON, delivers as the Caddyfile does.
func TestPushJSONConfigHasTheSamePower(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})
	secret := pushNewSecret()
	db := filepath.Join(in.dataDir, "json.db")
	raw, doc := opsAdapt(t, glueFullCaddyfile(in, ahk.addr(), "\t\t\tstore bbolt "+db, "{env.GLUE_CALLBACK_SECRET}"),
		"GLUE_CALLBACK_SECRET="+secret)
	if strings.Contains(string(raw), secret) {
		t.Errorf("caddy adapt resolved the secret into the JSON:\n%s", raw)
	}
	h := opsFindHandler(doc, "alipay_order_push")
	if h == nil {
		t.Fatalf("no alipay_order_push handler in:\n%s", raw)
	}
	want := map[string]string{
		"handler":                `"alipay_order_push"`,
		"client_id":              fmt.Sprintf("%q", testClient),
		"private_key_file":       fmt.Sprintf("%q", pushKeyFile("merchant-private.pem")),
		"key_version":            `"1"`,
		"alipay_public_key_file": fmt.Sprintf("%q", pushKeyFile("gateway-public.pem")),
		"path":                   fmt.Sprintf("%q", syncPath),
		"scenarios": `[{"name":"coupon_with_code","merchant_biz_type":"COUPON"},
			{"name":"self_pick","merchant_biz_type":"PICK","repeatable":["ORDER_TAKEN"]}]`,
		"store":           fmt.Sprintf(`{"backend":"bbolt","path":%q}`, db),
		"wait":            fmt.Sprint(int64(5 * time.Second)),
		"attempt_timeout": fmt.Sprint(int64(3 * time.Second)),
		"retry_initial":   fmt.Sprint(int64(40 * time.Millisecond)),
		"retry_max":       fmt.Sprint(int64(150 * time.Millisecond)),
		"max_age":         fmt.Sprint(int64(90 * time.Minute)),
		"callback":        `{"url":"http://127.0.0.1:1/results","secret":"{env.GLUE_CALLBACK_SECRET}"}`,
		"max_body_size":   `16384`,
	}
	for field, w := range want {
		got, ok := h[field]
		if !ok {
			t.Errorf("adapted JSON has no %q field", field)
			continue
		}
		gotJSON, _ := json.Marshal(got)
		if !opsSameJSON(gotJSON, []byte(w)) {
			t.Errorf("%s = %s, want %s", field, gotJSON, w)
		}
	}
	for field := range h {
		if _, ok := want[field]; !ok {
			t.Errorf("unexpected field %q in the adapted handler", field)
		}
	}

	// The inline forms adapt to their fields too.
	inline := strings.NewReplacer(
		"private_key_file "+pushKeyFile("merchant-private.pem"), "private_key {file."+pushKeyFile("merchant-private.pem")+"}",
		"alipay_public_key_file "+pushKeyFile("gateway-public.pem"), "alipay_public_key {env.GLUE_ALIPAY_KEY}",
	).Replace(glueFullCaddyfile(in, ahk.addr(), "", "x"))
	_, doc2 := opsAdapt(t, inline)
	h2 := opsFindHandler(doc2, "alipay_order_push")
	if h2["private_key"] != "{file."+pushKeyFile("merchant-private.pem")+"}" || h2["alipay_public_key"] != "{env.GLUE_ALIPAY_KEY}" {
		t.Errorf("inline keys adapted to %v / %v", h2["private_key"], h2["alipay_public_key"])
	}

	// The JSON, loaded as JSON (with the secret's variable unset: the
	// running Caddy has none; a literal secret instead), delivers.
	h["callback"] = nil
	delete(h, "callback")
	cfg, _ := json.Marshal(doc)
	if status, msg := opsTryLoad(t, in, "application/json", cfg); status != http.StatusOK {
		t.Fatalf("loading the adapted JSON: HTTP %d: %s", status, msg)
	}
	o := couponOrder().next("TICKETED", 1000)
	pushPost(t, in, o.bytes()).expectAlipay(t, ahk.finalReply(t, o.str("requestId")), o.str("requestId"))
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the JSON's store was not used: %v", err)
	}
}

// TestPushRestartResumesWithoutARequest: delivery rule "after a restart,
// queued entries resume" — by themselves. Orders are queued while AlipayHK
// is unreachable, Caddy is stopped, AlipayHK comes back, and caddy validate
// on the same config sends nothing (validating never starts delivery);
// then Caddy starts again and every queued order reaches AlipayHK with no
// request to the egress listener at all.
func TestPushRestartResumesWithoutARequest(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.closeListener()
	cfg := pushConfig{upstream: ahk.addr(), retryInitial: "50ms", retryMax: "300ms"}
	in := cfg.start(t, caddyOptions{})
	var ids []string
	for i := 0; i < 5; i++ {
		o := newOrder()
		pushPostAsync(t, in, o.bytes()).expectQueued(t, o.str("requestId"))
		ids = append(ids, o.str("requestId"))
	}
	in.stop()

	ahk.reopen(t)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg.caddyfile(in)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := opsRunCaddy(t, []string{"XDG_DATA_HOME=" + in.dataDir}, "validate", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy validate: %v\n%s%s", err, out, errOut)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(ahk.all()); n != 0 {
		t.Fatalf("caddy validate sent %d attempts", n)
	}

	cfg.start(t, caddyOptions{dataDir: in.dataDir, port: in.port, adminPort: in.adminPort})
	deadline := time.Now().Add(60 * time.Second)
	answeredS := func(id string) bool {
		for _, r := range ahk.attemptsOf(id) {
			if r.step.kind == ahkKindS && r.reply != nil {
				return true
			}
		}
		return false
	}
	for _, id := range ids {
		for {
			if answeredS(id) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not delivered after the restart; AlipayHK got %d attempts", id, len(ahk.all()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ahk.checkWellFormed(t, ids...)
}

// TestPushOperations: the metrics, admin routes, CLI commands and log
// lines of the egress, on one running Caddy: an order that succeeds, one
// AlipayHK keeps answering U (queued, retried), then the operator drops it
// (failed, lane unblocked) and retries it (queued again, then succeeded).
func TestPushOperations(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr(), wait: "2s", retryInitial: "100ms", retryMax: "300ms"}.start(t, caddyOptions{})

	ok := newOrder()
	okID := ok.str("requestId")
	pushPost(t, in, ok.bytes()).expectAlipay(t, ahk.finalReply(t, okID), okID)

	stuck := newOrder()
	stuckID, stuckBiz := stuck.str("requestId"), stuck.str("merchantBizNo")
	ahk.script(stuckID, ahkU) // U forever (a script's last step sticks)
	pushPostAsync(t, in, stuck.bytes()).expectQueued(t, stuckID)
	for len(ahk.attemptsOf(stuckID)) < 2 {
		time.Sleep(50 * time.Millisecond)
	}

	// Metrics: attempts by outcome, final states, queue depth and age,
	// latency, answers; every label bounded (client, outcome, state).
	var s opsScrape
	deadline := time.Now().Add(15 * time.Second)
	for {
		s = opsScrapeMetrics(t, in)
		if depth, _ := s.sum("caddy_alipay_order_push_queue_depth", opsLabels("client", testClient)); depth == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue_depth never 1:\n%s", s.text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"caddy_alipay_order_push_attempts_total", opsLabels("client", testClient, "outcome", "succeeded"), 1},
		{"caddy_alipay_order_push_attempts_total", opsLabels("client", testClient, "outcome", "unknown"), 2},
		{"caddy_alipay_order_push_final_states_total", opsLabels("client", testClient, "state", "succeeded", "by", "alipayhk"), 1},
		{"caddy_alipay_order_push_attempt_duration_seconds_count", opsLabels("client", testClient), 3},
		{"caddy_alipay_order_push_requests_total", opsLabels("client", testClient, "status", "200", "reason", "alipayhk"), 1},
		{"caddy_alipay_order_push_requests_total", opsLabels("client", testClient, "status", "202", "reason", "async"), 1},
		{"caddy_alipay_order_push_oldest_entry_age_seconds", opsLabels("client", testClient), 0.000001},
	} {
		if v, n := s.sum(w.name, w.labels); n == 0 || v < w.min {
			t.Errorf("%s%v = %v (%d series), want at least %v", w.name, w.labels, v, n, w.min)
		}
	}
	for _, v := range s.labelValues("caddy_alipay_order_push_", "client") {
		if v != testClient {
			t.Errorf("a client label that is not a configured client_id: %q", v)
		}
	}

	// Admin routes: the entry, the lane, the list.
	var e adminapi.PushEntryView
	if st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushEntry, testClient, stuckID), &e); st != 200 || e.State != "queued" || e.Attempts < 2 || e.LastError == "" || e.NextAttemptAt == "" {
		t.Errorf("admin entry: HTTP %d %s", st, body)
	}
	var lane adminapi.PushLaneView
	if st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushLane, testClient, stuckBiz), &lane); st != 200 || len(lane.Queued) != 1 || lane.Queued[0].RequestID != stuckID {
		t.Errorf("admin lane: HTTP %d %s", st, body)
	}
	if st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushEntry, testClient, "no-such-id"), nil); st != 404 || !strings.Contains(body, adminapi.NoSuchEntry) {
		t.Errorf("admin unknown entry: HTTP %d %s", st, body)
	}
	if st, body := opsAdminGet(t, in, adminapi.PushPath(adminapi.PushEntry, "OTHER-CLIENT", stuckID), nil); st != 404 || !strings.Contains(body, adminapi.NoSuchClient) {
		t.Errorf("admin unknown client: HTTP %d %s", st, body)
	}

	// The CLI, through the admin endpoint, as the README runs it.
	admin := fmt.Sprintf("localhost:%d", in.adminPort)
	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(caddyBin, append([]string{"alipay-order-sync", "outbox"}, append(args, "--admin", admin, "--client-id", testClient)...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String() + stderr.String(), err
		}
		return stdout.String(), nil
	}
	out, err := cli("list", "--state", "queued")
	if err != nil || !strings.Contains(out, stuckID) || strings.Contains(out, okID) {
		t.Errorf("outbox list --state queued: %v\n%s", err, out)
	}
	out, err = cli("show", "--request-id", okID)
	if err != nil || !strings.Contains(out, `"state": "succeeded"`) || !strings.Contains(out, `"resultCode": "SUCCESS"`) {
		t.Errorf("outbox show: %v\n%s", err, out)
	}
	out, err = cli("retry", "--request-id", stuckID)
	if err != nil || !strings.HasPrefix(out, "entry "+stuckID+" stays queued and is due now") {
		t.Errorf("outbox retry of a queued entry: %v\n%s", err, out)
	}
	out, err = cli("drop", "--request-id", stuckID)
	if err != nil || !strings.HasPrefix(out, "entry "+stuckID+" was queued; it is failed now") {
		t.Errorf("outbox drop: %v\n%s", err, out)
	}
	if e := pushLookup(t, in, stuckID).expectEntry(t, stuckID); e.State != pushFailed || e.lastError() != "dropped by operator" {
		t.Errorf("after the drop: %s", pushRaw(e.raw))
	}
	out, err = cli("drop", "--request-id", stuckID)
	if err == nil || !strings.Contains(out, "nothing changed") {
		t.Errorf("outbox drop of a failed entry: %v\n%s", err, out)
	}
	// Retry of the dropped (failed) entry: queued again; AlipayHK now says S.
	ahk.script(stuckID, ahkS)
	out, err = cli("retry", "--request-id", stuckID)
	if err != nil || !strings.HasPrefix(out, "entry "+stuckID+" was failed; it is queued again") {
		t.Errorf("outbox retry of a failed entry: %v\n%s", err, out)
	}
	pushAwait(t, in, stuckID, 30*time.Second, pushSucceeded)
	if _, err := cli("show", "--request-id", "no-such-id"); err == nil {
		t.Error("outbox show of an unknown entry succeeded")
	}

	// Log lines: one per attempt and per final state, with the ids; an
	// operator line per action; never the key or the body.
	opsWaitForLog(t, in, "the failed attempts", func(e map[string]any) bool {
		return e["msg"] == "order push attempt" && e["request_id"] == stuckID && e["outcome"] == "unknown" &&
			e["result_code"] == "UNKNOWN_EXCEPTION" && e["next_attempt_at"] != nil && e["merchant_biz_no"] == stuckBiz
	})
	opsWaitForLog(t, in, "the final state", func(e map[string]any) bool {
		return e["msg"] == "order push final" && e["request_id"] == okID && e["state"] == "succeeded" && e["attempts"] == 1.0
	})
	for _, action := range []string{"retry", "drop", "requeue"} {
		opsWaitForLog(t, in, "operator "+action, func(e map[string]any) bool {
			return e["msg"] == "order push operator action" && e["request_id"] == stuckID && e["action"] == action
		})
	}
	logs := in.logs.String()
	for _, leak := range []string{"BEGIN", "PRIVATE KEY", "Gift_card_tradeNo", "benefit_issue_mode", "signature="} {
		if strings.Contains(logs, leak) {
			t.Errorf("the log shows %q", leak)
		}
	}
}

// TestPushExampleAdaptsAndValidates: examples/egress/caddy.json is exactly
// what caddy adapt makes of examples/egress/Caddyfile, and both validate.
func TestPushExampleAdaptsAndValidates(t *testing.T) {
	t.Parallel()
	out, errOut, err := opsRunCaddy(t, nil, "adapt", "--config", "examples/egress/Caddyfile")
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, errOut)
	}
	golden, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "egress", "caddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("caddy adapt of examples/egress/Caddyfile differs from examples/egress/caddy.json; regenerate with:\n  go run ./cmd/caddy adapt --config examples/egress/Caddyfile --pretty > examples/egress/caddy.json\ngot: %s", out)
	}
	for _, cfg := range []string{"examples/egress/Caddyfile", "examples/egress/caddy.json"} {
		if out, errOut, err := opsRunCaddy(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "validate", "--config", cfg); err != nil {
			t.Errorf("caddy validate %s: %v\n%s%s", cfg, err, out, errOut)
		}
	}
}

// TestPushDirectiveOrderWithoutRoute: alipay_order_push is ordered before
// reverse_proxy, so a site that lists them in either order without a
// route block sends through reverse_proxy all the same; and a reload keeps
// the egress's counters counting (they are registered into every config's
// registry, never restarted).
func TestPushDirectiveOrderWithoutRoute(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	render := func(in *instance) string {
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	reverse_proxy %s
	alipay_order_push {
		client_id %s
		private_key_file %s
		alipay_public_key_file %s
		store bbolt %s
	}
}
`, in.adminPort, in.port, ahk.addr(), testClient, pushKeyFile("merchant-private.pem"), pushKeyFile("gateway-public.pem"),
			filepath.Join(in.dataDir, "push.db"))
	}
	in := startCaddy(t, render, caddyOptions{})
	url := fmt.Sprintf("http://127.0.0.1:%d/anything", in.port)
	o := newOrder()
	r, err := pushTryURL(url, pushCall{body: o.bytes()})
	if err != nil {
		t.Fatal(err)
	}
	r.expectAlipay(t, ahk.finalReply(t, o.str("requestId")), o.str("requestId"))

	attempts := func() float64 {
		v, _ := opsScrapeMetrics(t, in).sum("caddy_alipay_order_push_attempts_total", opsLabels("client", testClient))
		return v
	}
	before := attempts()
	in.load(t, render(in))
	o2 := newOrder()
	if r, err = pushTryURL(url, pushCall{body: o2.bytes()}); err != nil {
		t.Fatal(err)
	}
	r.expectAlipay(t, ahk.finalReply(t, o2.str("requestId")), o2.str("requestId"))
	if after := attempts(); before < 1 || after != before+1 {
		t.Errorf("attempts_total %v before the reload, %v after one more attempt", before, after)
	}
}
