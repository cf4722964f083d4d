package ordersync

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkServeHTTP is the whole handler in-process, as Caddy calls it,
// with a next handler that answers at once and a real bbolt file: a
// first-time sync one at a time and by 32 callers at once (group commit
// shares the fsyncs), and a replay. The RSA operations are left out
// (signature's benchmarks measure them: insecure_skip_verify lets the
// caller in, replies are unsigned) and the log line is encoded as JSON
// into nothing, as Caddy's default logger would encode it.
//
// Besides ns/op (which one at a time is mostly the fsync's wait),
// cpu-µs/op is the process's user and system CPU per request, garbage
// collection and the fsyncs' system time included: what a request costs
// the CPU, and what stays comparable on a busy machine.
func BenchmarkServeHTTP(b *testing.B) {
	h := provisionTestHandler(b, map[string]any{"insecure_skip_verify": true, "sign_responses": nil})
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"orderId":"ORD-1234567","distributeResult":[]}`))
		return err
	})
	serve := func(b *testing.B, body []byte) []byte {
		r := httptest.NewRequest(http.MethodPost, "/api/open/alipay/v1/merchant/order/sync", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json; charset=UTF-8")
		r.Header.Set("Client-Id", fuzzClient)
		w := httptest.NewRecorder()
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Error(err)
		}
		return w.Body.Bytes()
	}
	body := func(n int64) []byte {
		return fmt.Appendf(nil, `{"requestId":"BENCH-%d","merchantId":"2160120041113167","merchantBizNo":"BENCH-B-%d","orderStatus":"TICKETED","userId":"2160220041431868","merchantBizType":"ALIPAY_COUPON","orderCreateTime":1740385506708,"orderModifyTime":1742977506708,"tradeNo":"T","extInfo":{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}}`, n, n)
	}
	success := []byte(`"resultCode":"SUCCESS"`)
	var seq atomic.Int64
	b.Run("first-time", func(b *testing.B) {
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if out := serve(b, body(seq.Add(1))); !bytes.Contains(out, success) {
				b.Fatalf("%s", out)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("first-time-32", func(b *testing.B) {
		b.ReportAllocs()
		// 32 goroutines, the load run's connections.
		b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
		cpu := processCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if out := serve(b, body(seq.Add(1))); !bytes.Contains(out, success) {
					b.Errorf("%s", out)
					return
				}
			}
		})
		reportCPU(b, cpu)
	})
	b.Run("replay", func(b *testing.B) {
		replayed := body(-1)
		serve(b, replayed)
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if out := serve(b, replayed); !bytes.Contains(out, success) {
				b.Fatalf("%s", out)
			}
		}
		reportCPU(b, cpu)
	})
}

// reportCPU adds cpu-µs/op: the process's user and system CPU per
// operation since start, the garbage collector's included.
func reportCPU(b *testing.B, start time.Duration) {
	if start < 0 {
		return
	}
	b.ReportMetric(float64(processCPU()-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
