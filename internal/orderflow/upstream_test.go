package orderflow

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
	h := StatusMap{"418": OrderStatusInvalid, "5xx": UnSupportBusiness}
	var plain StatusMap
	cases := []struct {
		name string
		sm   StatusMap
		up   UpstreamReply
		want Code
		id   string
		dist string
	}{
		{"alipay shape", plain, UpstreamReply{Status: 200, Body: []byte(`{"orderId":"O1","distributeResult":[ {"sceneCode":"PASS"} ]}`)}, Success, "O1", `[ {"sceneCode":"PASS"} ]`},
		{"flat shape", plain, UpstreamReply{Status: 201, Body: []byte(`{"orderId":"O2","benefitId":"B","detailLink":"L","sceneCode":"S"}`)}, Success, "O2", `[{"sceneCode":"S","extInfo":{"benefitId":"B","detailLink":"L"}}]`},
		{"numeric orderId", plain, UpstreamReply{Status: 200, Body: []byte(`{"orderId":12345}`)}, Success, "12345", ""},
		{"2xx without orderId", plain, UpstreamReply{Status: 200, Body: []byte(`{}`)}, UnknownException, "", ""},
		{"2xx not JSON", plain, UpstreamReply{Status: 200, Body: []byte(`ok`)}, UnknownException, "", ""},
		{"code wins over status", plain, UpstreamReply{Status: 500, Body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, ParamIllegal, "", ""},
		{"nested code", plain, UpstreamReply{Status: 200, Body: []byte(`{"result":{"resultCode":"ORDER_STATUS_INVALID"}}`)}, OrderStatusInvalid, "", ""},
		{"SUCCESS code needs orderId", plain, UpstreamReply{Status: 200, Body: []byte(`{"resultCode":"SUCCESS"}`)}, UnknownException, "", ""},
		{"SUCCESS code with orderId", plain, UpstreamReply{Status: 200, Body: []byte(`{"resultCode":"SUCCESS","orderId":"O3"}`)}, Success, "O3", ""},
		{"unknown code", plain, UpstreamReply{Status: 200, Body: []byte(`{"resultCode":"NOPE"}`)}, UnknownException, "", ""},
		{"400", plain, UpstreamReply{Status: 400}, ParamIllegal, "", ""},
		{"422", plain, UpstreamReply{Status: 422, Body: []byte(`{}`)}, ParamIllegal, "", ""},
		{"409 text", plain, UpstreamReply{Status: 409, Body: []byte(`conflict`)}, OrderStatusInvalid, "", ""},
		{"404", plain, UpstreamReply{Status: 404}, UnSupportBusiness, "", ""},
		{"501", plain, UpstreamReply{Status: 501}, UnSupportBusiness, "", ""},
		{"429", plain, UpstreamReply{Status: 429}, RequestTrafficExceedLimit, "", ""},
		{"503", plain, UpstreamReply{Status: 503}, UnknownException, "", ""},
		{"403", plain, UpstreamReply{Status: 403}, UnknownException, "", ""},
		{"map exact", h, UpstreamReply{Status: 418}, OrderStatusInvalid, "", ""},
		{"map class", h, UpstreamReply{Status: 502}, UnSupportBusiness, "", ""},
		{"map does not touch codes", h, UpstreamReply{Status: 502, Body: []byte(`{"resultCode":"PARAM_ILLEGAL"}`)}, ParamIllegal, "", ""},
		{"too large", plain, UpstreamReply{Status: 200, TooLarge: true, Body: []byte(`{"orderId":"O"}`)}, UnknownException, "", ""},
		{"timeout", plain, UpstreamReply{TimedOut: true, Err: context.DeadlineExceeded}, UnknownException, "", ""},
		{"never done", plain, UpstreamReply{NeverDone: true}, UnknownException, "", ""},
		{"unreachable", plain, UpstreamReply{Err: errors.New("dial tcp: connection refused")}, UnknownException, "", ""},
		{"nothing written", plain, UpstreamReply{}, UnknownException, "", ""},
		{"aborted after a complete body", plain, UpstreamReply{Status: 200, Body: []byte(`{"orderId":"O"}`), Err: errors.New("next handler aborted its reply")}, UnknownException, "", ""},
		{"aborted 4xx", plain, UpstreamReply{Status: 400, Err: errors.New("next handler aborted its reply")}, UnknownException, "", ""},
		{"invalid UTF-8 in distributeResult", plain, UpstreamReply{Status: 200, Body: []byte("{\"orderId\":\"O\",\"distributeResult\":[\"\xff\"]}")}, UnknownException, "", ""},
		{"invalid UTF-8 in a code reply", plain, UpstreamReply{Status: 400, Body: []byte("{\"resultCode\":\"PARAM_ILLEGAL\",\"resultMessage\":\"\x80\"}")}, UnknownException, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := MapReply(tc.up, "TICKETED", tc.sm)
			if o.Code != tc.want {
				t.Fatalf("got %v, want %v (%s)", o.Code, tc.want, o.Message)
			}
			if o.OrderID != tc.id {
				t.Errorf("orderId = %q, want %q", o.OrderID, tc.id)
			}
			if tc.dist != "" && string(o.DistributeResult) != tc.dist {
				t.Errorf("distributeResult = %s, want %s", o.DistributeResult, tc.dist)
			}
			if o.Message == "" || len(o.Message) > message.MaxResultMessageLen*4 {
				t.Errorf("message %q", o.Message)
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
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		o, _ := MapReply(UpstreamReply{Status: status, Body: body}, "TICKETED", nil)
		if o.Code == Success && strings.TrimSpace(o.OrderID) == "" {
			t.Fatal("SUCCESS without orderId")
		}
		env := o.Body()
		if !json.Valid(env) || !utf8.Valid(env) {
			t.Fatalf("envelope is not UTF-8 JSON: %q", env)
		}
		if len(o.Message) > 0 && o.Code.Status() == "" {
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
