package ordersync

// The benchmark of the stage that lives in the Caddy glue: the forward to
// the next handler. bench/stages collects it with the other packages'
// stage benchmarks (the mapping of the reply and the envelope with its
// signature are internal/orderflow's) into one table.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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
	// reverse_proxy's calls run deep: a next handler that needs as much
	// stack (about 20 KB) shows what the goroutine the call runs on costs.
	deep := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if useStack(40) == 0 {
			b.Fatal("unreachable")
		}
		return next.ServeHTTP(w, r)
	})
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	for _, bc := range []struct {
		name string
		next caddyhttp.Handler
	}{{"shallow", next}, {"deep", deep}} {
		b.Run(bc.name, func(b *testing.B) {
			fw := &forwarder{r: r, next: bc.next}
			b.ReportAllocs()
			for b.Loop() {
				// The header the flow builds is part of the stage: the
				// forwarder owns and changes it.
				header := http.Header{
					"Content-Type":           {"application/json"},
					"Idempotency-Key":        {"BENCH-CLIENT:00242206688873156335287814888550"},
					"X-Order-Sync-Client-Id": {"BENCH-CLIENT"},
					"X-Order-Sync-Scenario":  {"gift_card"},
				}
				up := fw.Forward(ctx, orderflow.Upstream{Body: body, Header: header, GiveUpAt: time.Now().Add(time.Minute)})
				if up.Status != http.StatusOK || len(up.Body) == 0 {
					b.Fatalf("forward: status %d, %d bytes", up.Status, len(up.Body))
				}
			}
		})
	}
}

// useStack recurses n frames of about 512 bytes each.
//
//go:noinline
func useStack(n int) int {
	var pad [64]int
	pad[n%64] = n
	if n == 0 {
		return 1
	}
	return useStack(n-1) + pad[n%64] - n
}
