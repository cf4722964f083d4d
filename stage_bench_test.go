package ordersync

// Benchmarks of the stages that live in the handler's glue today: the
// forward to the next handler, the mapping of its reply, and the envelope
// with its signature. bench/stages collects them with the other packages'
// stage benchmarks into one table. Each is self-contained so it can move
// with its function (to internal/orderflow).

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// benchUpstreamReply is what the load tool's upstream answers.
var benchUpstreamReply = []byte(`{"orderId":"ORD-1234567","distributeResult":[]}`)

// benchRequest is a signed order-sync request as Caddy hands it to the
// handler: its context carries the replacer, the vars and the original
// request.
func benchRequest(b *testing.B, body []byte) *http.Request {
	b.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/open/alipay/v1/merchant/order/sync", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json; charset=UTF-8")
	r.Header.Set("Client-Id", "BENCH-CLIENT")
	r.Header.Set("Request-Time", "2026-11-25T13:12:21+08:00")
	r.Header.Set("Signature", "algorithm=RSA256,keyVersion=1,signature=c2ln")
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
}

// BenchmarkForward is the glue around the next handler: the cloned
// request with its own vars, the header rewrite, the goroutine bounded by
// upstream_timeout and the private capture of the reply. The next handler
// answers at once, so only the glue is timed, not reverse_proxy.
func BenchmarkForward(b *testing.B) {
	body := []byte(`{"requestId":"00242206688873156335287814888550","orderStatus":"TICKETED","scenario":"gift_card"}`)
	r := benchRequest(b, body)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(benchUpstreamReply)
		return err
	})
	h := &Handler{}
	ctx := r.Context()
	b.ReportAllocs()
	for b.Loop() {
		up := h.forward(ctx, r, next, body, "BENCH-CLIENT", "00242206688873156335287814888550", "gift_card")
		if up.status != http.StatusOK || len(up.body) == 0 {
			b.Fatalf("forward: status %d, %d bytes", up.status, len(up.body))
		}
	}
}

// BenchmarkMapReply turns the upstream's reply into the outcome (README,
// "The upstream contract"): the Alipay shape with an orderId, and the flat
// shape.
func BenchmarkMapReply(b *testing.B) {
	h := &Handler{}
	for _, bc := range []struct{ name, body string }{
		{"alipay", string(benchUpstreamReply)},
		{"flat", `{"orderId":"ORD-1234567","benefitId":"B-1","detailLink":"https://example.com/d/1","sceneCode":"PASS"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			up := upstreamReply{status: http.StatusOK, body: []byte(bc.body)}
			b.ReportAllocs()
			for b.Loop() {
				if m := h.mapReply(up, "TICKETED"); m.outcome.Code != orderflow.Success {
					b.Fatalf("mapReply: %v", m.outcome.Code)
				}
			}
		})
	}
}

// BenchmarkReply builds the SUCCESS envelope the caller gets, without and
// with sign_responses: the signed case is the RSA-2048 signature the
// signing bound of bench/loadtest measures, plus the envelope.
func BenchmarkReply(b *testing.B) {
	r := benchRequest(b, nil)
	o := orderflow.Outcome{Code: orderflow.Success, Message: "success", OrderID: "ORD-1234567", OrderStatus: "TICKETED"}
	unsigned := &Handler{logger: zap.NewNop()}
	signed := &Handler{logger: zap.NewNop(), SignResponses: &SignConfig{
		PrivateKeyFile: filepath.Join("examples", "demo-keys", "gateway-private.pem"),
	}}
	if err := signed.provisionSigner(caddy.NewReplacer()); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    *Handler
	}{{"unsigned", unsigned}, {"signed", signed}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rep := bc.h.reply(r, "BENCH-CLIENT", o)
				if len(rep.Body) == 0 || (bc.h.SignResponses != nil) != hasSignature(rep.Header) {
					b.Fatalf("reply: %q %v", rep.Body, rep.Header)
				}
			}
		})
	}
}

func hasSignature(h map[string][]string) bool {
	return len(http.Header(h).Values("Signature")) > 0 || len(h["signature"]) > 0
}
