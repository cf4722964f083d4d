package ordersync

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/message"
)

func TestMapReply(t *testing.T) {
	h := &Handler{statusMap: map[string]orderflow.Code{"418": orderflow.OrderStatusInvalid, "5xx": orderflow.UnSupportBusiness}}
	plain := &Handler{}
	cases := []struct {
		name string
		h    *Handler
		up   upstreamReply
		want orderflow.Code
		id   string
		dist string
	}{
		{"alipay shape", plain, upstreamReply{status: 200, body: []byte(`{"orderId":"O1","distributeResult":[ {"sceneCode":"PASS"} ]}`)}, orderflow.Success, "O1", `[{"sceneCode":"PASS"}]`},
		{"flat shape", plain, upstreamReply{status: 201, body: []byte(`{"orderId":"O2","benefitId":"B","detailLink":"L","sceneCode":"S"}`)}, orderflow.Success, "O2", `[{"extInfo":{"benefitId":"B","detailLink":"L"},"sceneCode":"S"}]`},
		{"numeric orderId", plain, upstreamReply{status: 200, body: []byte(`{"orderId":12345}`)}, orderflow.Success, "12345", ""},
		{"2xx without orderId", plain, upstreamReply{status: 200, body: []byte(`{}`)}, orderflow.UnknownException, "", ""},
		{"2xx not JSON", plain, upstreamReply{status: 200, body: []byte(`ok`)}, orderflow.UnknownException, "", ""},
		{"code wins over status", plain, upstreamReply{status: 500, body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, orderflow.ParamIllegal, "", ""},
		{"nested code", plain, upstreamReply{status: 200, body: []byte(`{"result":{"resultCode":"ORDER_STATUS_INVALID"}}`)}, orderflow.OrderStatusInvalid, "", ""},
		{"SUCCESS code needs orderId", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"SUCCESS"}`)}, orderflow.UnknownException, "", ""},
		{"SUCCESS code with orderId", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"SUCCESS","orderId":"O3"}`)}, orderflow.Success, "O3", ""},
		{"unknown code", plain, upstreamReply{status: 200, body: []byte(`{"resultCode":"NOPE"}`)}, orderflow.UnknownException, "", ""},
		{"400", plain, upstreamReply{status: 400}, orderflow.ParamIllegal, "", ""},
		{"422", plain, upstreamReply{status: 422, body: []byte(`{}`)}, orderflow.ParamIllegal, "", ""},
		{"409 text", plain, upstreamReply{status: 409, body: []byte(`conflict`)}, orderflow.OrderStatusInvalid, "", ""},
		{"404", plain, upstreamReply{status: 404}, orderflow.UnSupportBusiness, "", ""},
		{"501", plain, upstreamReply{status: 501}, orderflow.UnSupportBusiness, "", ""},
		{"429", plain, upstreamReply{status: 429}, orderflow.RequestTrafficExceedLimit, "", ""},
		{"503", plain, upstreamReply{status: 503}, orderflow.UnknownException, "", ""},
		{"403", plain, upstreamReply{status: 403}, orderflow.UnknownException, "", ""},
		{"map exact", h, upstreamReply{status: 418}, orderflow.OrderStatusInvalid, "", ""},
		{"map class", h, upstreamReply{status: 502}, orderflow.UnSupportBusiness, "", ""},
		{"map does not touch codes", h, upstreamReply{status: 502, body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, orderflow.ParamIllegal, "", ""},
		{"too large", plain, upstreamReply{status: 200, tooLarge: true, body: []byte(`{"orderId":"O"}`)}, orderflow.UnknownException, "", ""},
		{"timeout", plain, upstreamReply{timedOut: true, err: context.DeadlineExceeded}, orderflow.UnknownException, "", ""},
		{"never done", plain, upstreamReply{neverDone: true}, orderflow.UnknownException, "", ""},
		{"unreachable", plain, upstreamReply{err: errors.New("dial tcp: connection refused")}, orderflow.UnknownException, "", ""},
		{"nothing written", plain, upstreamReply{}, orderflow.UnknownException, "", ""},
		{"aborted after a complete body", plain, upstreamReply{status: 200, body: []byte(`{"orderId":"O"}`), err: errors.New("next handler aborted its reply")}, orderflow.UnknownException, "", ""},
		{"aborted 4xx", plain, upstreamReply{status: 400, err: errors.New("next handler aborted its reply")}, orderflow.UnknownException, "", ""},
		{"invalid UTF-8 in distributeResult", plain, upstreamReply{status: 200, body: []byte("{\"orderId\":\"O\",\"distributeResult\":[\"\xff\"]}")}, orderflow.UnknownException, "", ""},
		{"invalid UTF-8 in a code reply", plain, upstreamReply{status: 400, body: []byte("{\"resultCode\":\"PARAM_ILLEGAL\",\"resultMessage\":\"\x80\"}")}, orderflow.UnknownException, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.h.mapReply(tc.up, "TICKETED")
			if m.outcome.Code != tc.want {
				t.Fatalf("got %v, want %v (%s)", m.outcome.Code, tc.want, m.outcome.Message)
			}
			if m.outcome.OrderID != tc.id {
				t.Errorf("orderId = %q, want %q", m.outcome.OrderID, tc.id)
			}
			if tc.dist != "" && string(m.outcome.DistributeResult) != tc.dist {
				t.Errorf("distributeResult = %s, want %s", m.outcome.DistributeResult, tc.dist)
			}
			if m.outcome.Message == "" || len(m.outcome.Message) > message.MaxResultMessageLen*4 {
				t.Errorf("message %q", m.outcome.Message)
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
		if m.outcome.Code == orderflow.Success && strings.TrimSpace(m.outcome.OrderID) == "" {
			t.Fatal("SUCCESS without orderId")
		}
		env := m.outcome.Body()
		if !json.Valid(env) || !utf8.Valid(env) {
			t.Fatalf("envelope is not UTF-8 JSON: %q", env)
		}
		if len(m.outcome.Message) > 0 && m.outcome.Code.Status() == "" {
			t.Fatal("code without a status letter")
		}
	})
}

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
