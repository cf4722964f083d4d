package outbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// The example of the Standard Webhooks specification, verified with
// openssl as well.
func TestSignWebhookStandardVector(t *testing.T) {
	t.Parallel()
	secret, err := ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := SignWebhook(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("SignWebhook = %s, want %s", got, want)
	}
}

func TestParseWebhookSecret(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef01234567") // 24 bytes
	b64 := base64.StdEncoding.EncodeToString(key)
	for _, s := range []string{"whsec_" + b64, b64, " whsec_" + b64 + " ", strings.TrimRight(b64, "=")} {
		got, err := ParseWebhookSecret(s)
		if err != nil || string(got) != string(key) {
			t.Errorf("ParseWebhookSecret(%q) = %q, %v", s, got, err)
		}
	}
	for _, tt := range []struct{ in, msg string }{
		{"", "empty"},
		{"whsec_", "empty"},
		{"whsec_not base64!", "not base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), "at least 24"},
	} {
		_, err := ParseWebhookSecret(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "callback secret") {
			t.Errorf("ParseWebhookSecret(%q) = %v, want an error with %q", tt.in, err, tt.msg)
		}
		if v := strings.TrimPrefix(tt.in, "whsec_"); err != nil && v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("the error quotes the secret: %v", err)
		}
	}
}

// receiver is the legacy system's callback endpoint: it verifies each
// callback's Standard Webhooks signature independently of the code under
// test, records it, and answers as scripted.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(n int) int // status for the n-th delivery (from 1); nil: 204
	block  chan struct{}   // when set, deliveries wait for it to close
}

type delivery struct {
	ID, Timestamp string
	Body          []byte
	Verified      bool
	ContentType   string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, secret: []byte("a-test-secret-of-more-than-24-bytes")}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	d := delivery{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Body: body, ContentType: r.Header.Get("Content-Type")}
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write([]byte(d.ID + "." + d.Timestamp + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			d.Verified = true
		}
	}
	ts, err := strconv.ParseInt(d.Timestamp, 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute || r.Method != http.MethodPost {
		d.Verified = false
	}
	rc.mu.Lock()
	rc.got = append(rc.got, d)
	n, answer, block := len(rc.got), rc.answer, rc.block
	rc.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	status := http.StatusNoContent
	if answer != nil {
		status = answer(n)
	}
	w.WriteHeader(status)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// withCallback configures the callback to rc.
func withCallback(rc *receiver) envOption {
	return withConfig(func(c *Config) {
		c.Callback = &Callback{URL: rc.srv.URL + "/hook", Secret: rc.secret, Client: &http.Client{Timeout: 2 * time.Second}}
	})
}

// Every final state is POSTed, signed per Standard Webhooks, retried until
// a 2xx with the same webhook-id and a fresh timestamp; the body is the
// entry as a lookup returns it.
func TestCallbackSignedRetriedUntil2xx(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rc.answer = func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	e := newEnv(t, withCallback(rc))
	o := newOrder()
	r := e.post(o.bytes())
	eventually(t, "a delivered callback", func() bool {
		x := e.entry(o.id())
		return x != nil && x.Callback.WebhookID != "" && !x.Callback.Pending
	})
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3 (two 500s, then 200)", len(got))
	}
	x := e.entry(o.id())
	for i, d := range got {
		if !d.Verified || d.ID != x.Callback.WebhookID || d.ID == "" || d.ContentType != "application/json" {
			t.Errorf("delivery %d: %+v (webhook id %q)", i+1, d, x.Callback.WebhookID)
		}
		if string(d.Body) != string(EntryJSON(x)) {
			t.Errorf("delivery %d body\n%s\nwant the lookup's\n%s", i+1, d.Body, EntryJSON(x))
		}
	}
	var v struct {
		State string          `json:"state"`
		Reply json.RawMessage `json:"reply"`
	}
	_ = json.Unmarshal(got[0].Body, &v)
	if v.State != "succeeded" {
		t.Errorf("callback state %q", v.State)
	}
	if cmp := compactJSON(t, v.Reply); cmp != compactJSON(t, r.Body) {
		t.Errorf("callback reply %s, want AlipayHK's %s", v.Reply, r.Body)
	}
	if x.Callback.Attempts != 3 {
		t.Errorf("callback attempts recorded %d, want 3", x.Callback.Attempts)
	}
	var evs []CallbackEvent
	eventually(t, "three callback events", func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		evs = append([]CallbackEvent(nil), e.obs.callbacks...)
		return len(evs) >= 3
	})
	if len(evs) != 3 || evs[0].Delivered || evs[0].HTTPStatus != 500 || evs[0].Error != "HTTP 500" || !evs[2].Delivered || evs[2].Number != 3 {
		t.Errorf("callback events: %+v", evs)
	}
}

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// failed, expired and dropped entries get their callback too, one per
// final state, each with its own webhook-id.
func TestCallbackForEveryFinalState(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	e := newEnv(t, withCallback(rc), withConfig(func(c *Config) { c.MaxAge = 500 * time.Millisecond }))
	failed, expired, dropped := newOrder(), newOrder(), newOrder()
	e.alipay.answer(func(a Attempt, _ int) action {
		switch a.RequestID {
		case failed.id():
			return replyF
		case expired.id(), dropped.id():
			return replyU
		}
		return nil
	})
	e.postAsync(failed.bytes())
	e.postAsync(expired.bytes())
	e.await(failed.id(), store.EntryFailed)
	e.await(expired.id(), store.EntryExpired)
	e.cfg.MaxAge = time.Hour
	if err := e.runner.Update(e.cfg, e.alipay); err != nil {
		t.Fatal(err)
	}
	e.postAsync(dropped.bytes())
	if _, err := e.runner.Drop(context.Background(), dropped.id()); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	eventually(t, "three callbacks", func() bool {
		for _, d := range rc.deliveries() {
			var v struct {
				RequestID, State string
			}
			_ = json.Unmarshal(d.Body, &v)
			if d.Verified {
				states[v.RequestID] = v.State
			}
		}
		return len(states) == 3
	})
	want := map[string]string{failed.id(): "failed", expired.id(): "expired", dropped.id(): "failed"}
	for id, st := range want {
		if states[id] != st {
			t.Errorf("callback of %s says %q, want %q", id, states[id], st)
		}
	}
	ids := map[string]bool{}
	for _, d := range rc.deliveries() {
		ids[d.ID] = true
	}
	if len(ids) != 3 {
		t.Errorf("%d webhook ids for three final states", len(ids))
	}
}

// A callback that hangs never holds up a lane.
func TestCallbackNeverBlocksLanes(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rc.block = make(chan struct{})
	t.Cleanup(func() { close(rc.block) })
	e := newEnv(t, withCallback(rc))
	biz := "cb-lane"
	var ids []string
	for _, st := range []string{"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "FINISHED"} {
		o := queueUp(biz, st)
		e.postAsync(o.bytes())
		ids = append(ids, o.id())
	}
	for _, id := range ids {
		e.await(id, store.EntrySucceeded)
	}
	if len(rc.deliveries()) == 0 {
		t.Error("no callback was even tried")
	}
}

// Pending callbacks are durable: a restart sends the ones not yet
// delivered, with their webhook-id.
func TestCallbackPendingSurvivesRestart(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	var down sync.Mutex
	failing := true
	rc.answer = func(int) int {
		down.Lock()
		defer down.Unlock()
		if failing {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	e := newEnv(t, withCallback(rc))
	o := newOrder()
	e.post(o.bytes())
	eventually(t, "a failed callback", func() bool { return len(rc.deliveries()) > 0 })
	before := e.entry(o.id()).Callback.WebhookID
	e.restartStopOnly()
	down.Lock()
	failing = false
	down.Unlock()
	e.open()
	e.start()
	eventually(t, "the callback delivered after the restart", func() bool {
		x := e.entry(o.id())
		return !x.Callback.Pending
	})
	for _, d := range rc.deliveries() {
		if d.ID != before || !d.Verified {
			t.Errorf("delivery %+v, webhook id before the restart %q", d, before)
		}
	}
}
