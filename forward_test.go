package ordersync

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-alipay/ordersync/message"
)

func TestMapReply(t *testing.T) {
	h := &Handler{statusMap: map[string]resultCode{"418": codeOrderStatus, "5xx": codeUnsupported}}
	plain := &Handler{}
	cases := []struct {
		name string
		h    *Handler
		up   upstreamReply
		want resultCode
		id   string
		dist string
	}{
		{"alipay shape", plain, upstreamReply{status: 200, body: []byte(`{"orderId":"O1","distributeResult":[ {"sceneCode":"PASS"} ]}`)}, codeSuccess, "O1", `[{"sceneCode":"PASS"}]`},
		{"flat shape", plain, upstreamReply{status: 201, body: []byte(`{"orderId":"O2","benefitId":"B","detailLink":"L","sceneCode":"S"}`)}, codeSuccess, "O2", `[{"extInfo":{"benefitId":"B","detailLink":"L"},"sceneCode":"S"}]`},
		{"numeric orderId", plain, upstreamReply{status: 200, body: []byte(`{"orderId":12345}`)}, codeSuccess, "12345", ""},
		{"2xx without orderId", plain, upstreamReply{status: 200, body: []byte(`{}`)}, codeUnknown, "", ""},
		{"2xx not JSON", plain, upstreamReply{status: 200, body: []byte(`ok`)}, codeUnknown, "", ""},
		{"code wins over status", plain, upstreamReply{status: 500, body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, codeParamIllegal, "", ""},
		{"nested code", plain, upstreamReply{status: 200, body: []byte(`{"result":{"resultCode":"ORDER_STATUS_INVALID"}}`)}, codeOrderStatus, "", ""},
		{"SUCCESS code needs orderId", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"SUCCESS"}`)}, codeUnknown, "", ""},
		{"SUCCESS code with orderId", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"SUCCESS","orderId":"O3"}`)}, codeSuccess, "O3", ""},
		{"unknown code", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"NOPE"}`)}, codeUnknown, "", ""},
		{"400", plain, upstreamReply{status: 400}, codeParamIllegal, "", ""},
		{"422", plain, upstreamReply{status: 422, body: []byte(`{}`)}, codeParamIllegal, "", ""},
		{"409 text", plain, upstreamReply{status: 409, body: []byte(`conflict`)}, codeOrderStatus, "", ""},
		{"404", plain, upstreamReply{status: 404}, codeUnsupported, "", ""},
		{"501", plain, upstreamReply{status: 501}, codeUnsupported, "", ""},
		{"429", plain, upstreamReply{status: 429}, codeTrafficExceed, "", ""},
		{"503", plain, upstreamReply{status: 503}, codeUnknown, "", ""},
		{"403", plain, upstreamReply{status: 403}, codeUnknown, "", ""},
		{"map exact", h, upstreamReply{status: 418}, codeOrderStatus, "", ""},
		{"map class", h, upstreamReply{status: 502}, codeUnsupported, "", ""},
		{"map does not touch codes", h, upstreamReply{status: 502, body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, codeParamIllegal, "", ""},
		{"too large", plain, upstreamReply{status: 200, tooLarge: true, body: []byte(`{"orderId":"O"}`)}, codeUnknown, "", ""},
		{"timeout", plain, upstreamReply{timedOut: true, err: context.DeadlineExceeded}, codeUnknown, "", ""},
		{"never done", plain, upstreamReply{neverDone: true}, codeUnknown, "", ""},
		{"unreachable", plain, upstreamReply{err: errors.New("dial tcp: connection refused")}, codeUnknown, "", ""},
		{"nothing written", plain, upstreamReply{}, codeUnknown, "", ""},
		{"aborted after a complete body", plain, upstreamReply{status: 200, body: []byte(`{"orderId":"O"}`), err: errors.New("next handler aborted its reply")}, codeUnknown, "", ""},
		{"aborted 4xx", plain, upstreamReply{status: 400, err: errors.New("next handler aborted its reply")}, codeUnknown, "", ""},
		{"invalid UTF-8 in distributeResult", plain, upstreamReply{status: 200, body: []byte("{\"orderId\":\"O\",\"distributeResult\":[\"\xff\"]}")}, codeUnknown, "", ""},
		{"invalid UTF-8 in a code reply", plain, upstreamReply{status: 400, body: []byte("{\"resultCode\":\"PARAM_ILLEGAL\",\"resultMessage\":\"\x80\"}")}, codeUnknown, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.h.mapReply(tc.up, "TICKETED")
			if m.outcome.code != tc.want {
				t.Fatalf("got %v, want %v (%s)", m.outcome.code, tc.want, m.outcome.message)
			}
			if m.outcome.orderID != tc.id {
				t.Errorf("orderId = %q, want %q", m.outcome.orderID, tc.id)
			}
			if tc.dist != "" && string(m.outcome.distributeResult) != tc.dist {
				t.Errorf("distributeResult = %s, want %s", m.outcome.distributeResult, tc.dist)
			}
			if m.outcome.message == "" || len(m.outcome.message) > message.MaxResultMessageLen*4 {
				t.Errorf("message %q", m.outcome.message)
			}
		})
	}
}

// FuzzMapReply: no upstream reply, however broken, panics the mapper or
// yields SUCCESS without an orderId or a body that is not JSON.
func FuzzMapReply(f *testing.F) {
	f.Add(200, []byte(`{"orderId":"O","distributeResult":[]}`))
	f.Add(201, []byte(`{"orderId":"O","benefitId":"B"}`))
	f.Add(500, []byte(`{"resultCode":"SUCCESS","orderId":7}`))
	f.Add(409, []byte(`{"result":{"resultCode":"X"}}`))
	f.Add(200, []byte(`{"orderId":"O","distributeResult":{"a":1}}`))
	f.Add(200, []byte("{\"orderId\":\"O\",\"distributeResult\":[\"\xff\"]}"))
	h := &Handler{}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		m := h.mapReply(upstreamReply{status: status, body: body}, "TICKETED")
		if m.outcome.code == codeSuccess && strings.TrimSpace(m.outcome.orderID) == "" {
			t.Fatal("SUCCESS without orderId")
		}
		env := m.outcome.body()
		if !jsonValid(env) || !utf8.Valid(env) {
			t.Fatalf("envelope is not UTF-8 JSON: %q", env)
		}
		if len(m.outcome.message) > 0 && m.outcome.code.Status == "" {
			t.Fatal("code without a status letter")
		}
	})
}

func TestReplyEnvelopeShape(t *testing.T) {
	o := outcome{code: codeSuccess, message: "success", orderID: "O", orderStatus: "TICKETED"}
	if got := string(o.body()); got != `{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"O","orderStatus":"TICKETED","distributeResult":[]}` {
		t.Errorf("SUCCESS envelope = %s", got)
	}
	f := outcome{code: codeParamIllegal, message: strings.Repeat("é", 300), orderID: "leak"}
	got := f.body()
	if strings.Contains(string(got), "leak") || !jsonValid(got) {
		t.Errorf("F envelope = %s", got)
	}
	if n := len(truncateMessage(f.message)); n > message.MaxResultMessageLen {
		t.Errorf("message %d bytes", n)
	}
}

func jsonValid(b []byte) bool { return json.Valid(b) }

// TestIdempotencyKeyIsUnambiguous (issue 9 item 6): the key decodes back
// to exactly one (Client-Id, requestId) pair, so two pairs never share it.
func TestIdempotencyKeyIsUnambiguous(t *testing.T) {
	parts := []string{"", "K", "X", ":", "%", "%3A", "%25", "K:X", "a%b:c", "::", "Y"}
	seen := map[string][2]string{}
	for _, c := range parts {
		for _, r := range parts {
			key := idempotencyKey(c, r)
			if prev, dup := seen[key]; dup {
				t.Fatalf("(%q, %q) and (%q, %q) share the key %q", prev[0], prev[1], c, r, key)
			}
			seen[key] = [2]string{c, r}
			enc, rid, _ := strings.Cut(key, ":")
			dec, err := url.PathUnescape(enc)
			if err != nil || dec != c || rid != r {
				t.Errorf("key %q decodes to (%q, %q), want (%q, %q)", key, dec, rid, c, r)
			}
		}
	}
	if got := idempotencyKey("TEST-CLIENT-1", "0024"); got != "TEST-CLIENT-1:0024" {
		t.Errorf("plain ids: %q", got)
	}
}
