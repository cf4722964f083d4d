package outbox

import (
	"net/http"
	"testing"
)

// BenchmarkSubmitDeliver is one order through the egress path in process:
// Submit (decode, validate, canonical body, dedupe, state check, durable
// enqueue into a real bbolt file), the runner's delivery (lease, sign,
// send to a fake AlipayHK that answers S at once without checking, verify
// its reply, durable completion) and the wake-up of the waiting Submit.
// "sequential" is the latency of one order at a time; "parallel" is
// throughput with GOMAXPROCS·4 legacy clients posting at once (bbolt
// batches their writes).
func BenchmarkSubmitDeliver(b *testing.B) {
	for _, mode := range []string{"sequential", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b, withRunner(func(ro *RunnerOptions) { ro.Observer = nil }))
			e.alipay.noCheck = true
			post := func() {
				r := e.post(newOrder().bytes())
				if r.Status != http.StatusOK || r.Reason != ReasonAlipayHK {
					b.Fatalf("not delivered within wait: %s", r)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if mode == "sequential" {
				for range b.N {
					post()
				}
				return
			}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					post()
				}
			})
		})
	}
}
