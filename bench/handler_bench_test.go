package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// caddyBinary builds ./cmd/caddy once per test binary. Go's build cache
// makes every build after the first take seconds.
func caddyBinary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts a Caddy process; skipped under -short")
	}
	buildOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "ordersync-bench-bin-"); buildErr != nil {
			return
		}
		builtBin, buildErr = BuildCaddy(context.Background(), root, buildDir)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return builtBin
}

// logWriter sends the driver's progress lines to the test log.
type logWriter struct{ tb testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestLoadtestSmoke runs the load driver briefly over every scenario. It
// checks that the numbers are made of correct answers and that each
// scenario takes the path it claims to (upstream called or not); it never
// asserts on speed.
func TestLoadtestSmoke(t *testing.T) {
	bin := caddyBinary(t)
	rep, err := Run(t.Context(), Config{CaddyBin: bin, Workers: 2, Duration: time.Second, Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(Scenarios) {
		t.Fatalf("got %d results, want %d", len(rep.Results), len(Scenarios))
	}
	for _, r := range rep.Results {
		if r.Errors != 0 {
			t.Errorf("%s: %d errors %v, e.g. %s", r.Scenario, r.Errors, r.ErrorKinds, r.ErrorSample)
		}
		if r.Requests == 0 || r.RPS <= 0 {
			t.Errorf("%s: no throughput (%d requests, %.1f/s)", r.Scenario, r.Requests, r.RPS)
		}
		if !(r.P50Ms <= r.P90Ms && r.P90Ms <= r.P99Ms) {
			t.Errorf("%s: percentiles out of order: %v %v %v", r.Scenario, r.P50Ms, r.P90Ms, r.P99Ms)
		}
		if r.PeakRSSKiB <= 0 {
			t.Errorf("%s: no peak RSS read", r.Scenario)
		}
		wantCalls := int64(0) // replay and resend are answered from the store
		if r.Scenario == ScenarioBare || r.Scenario == ScenarioFirstTime {
			wantCalls = r.Requests
		}
		if r.UpstreamCalls != wantCalls {
			t.Errorf("%s: upstream called %d times for %d requests, want %d", r.Scenario, r.UpstreamCalls, r.Requests, wantCalls)
		}
	}
	if len(rep.Ratios) != len(Scenarios)-1 {
		t.Errorf("got %d ratios, want %d", len(rep.Ratios), len(Scenarios)-1)
	}

	var md, js bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range Scenarios {
		if !strings.Contains(md.String(), "| "+s+" |") {
			t.Errorf("markdown has no row for %s:\n%s", s, md.String())
		}
	}
	if err := rep.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != len(rep.Results) {
		t.Errorf("JSON does not read back (%v):\n%s", err, js.String())
	}
	t.Logf("\n%s", md.String())
}

// BenchmarkGatewayVsBareProxy sends sequential requests to the bare
// reverse_proxy site and to the gateway site of one Caddy process, so the
// sub-benchmarks' ns/op can be compared side by side (one connection, no
// concurrency: the per-request cost, not throughput). upstream-calls/op
// shows which path each one took. Requests are signed before the timer
// starts; the driver's RSA signing would otherwise dominate.
func BenchmarkGatewayVsBareProxy(b *testing.B) {
	bin := caddyBinary(b)
	env, err := StartEnv(b.Context(), EnvConfig{CaddyBin: bin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	cfg := Config{CaddyBin: bin, Workers: 4}
	if err := cfg.defaults(); err != nil {
		b.Fatal(err)
	}
	r, err := newRunner(cfg, env)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.client.CloseIdleConnections)

	b.Run("bare", func(b *testing.B) {
		q, err := r.sign(r.seedB)
		if err != nil {
			b.Fatal(err)
		}
		r.sequential(b, env.BareURL, []request{q}, checkBare)
	})
	b.Run("gateway-first-time", func(b *testing.B) {
		pool := r.mustPresign(b, b.N, func(int) []byte { body, _ := r.newOrder(); return body })
		r.sequential(b, env.GatewayURL, pool, checkGateway)
	})
	b.Run("gateway-replay", func(b *testing.B) {
		if err := r.commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		// Signed afresh over the same bytes, still a replay, so a long
		// -benchtime never runs into the Request-Time window.
		pool := r.mustPresign(b, len(r.committed), func(i int) []byte { return r.committed[i] })
		r.sequential(b, env.GatewayURL, pool, checkGateway)
	})
	b.Run("gateway-resend", func(b *testing.B) {
		if err := r.commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		pool := r.mustPresign(b, b.N, func(i int) []byte {
			return r.body(r.id(), r.committedBizNo[i%len(r.committedBizNo)])
		})
		r.sequential(b, env.GatewayURL, pool, checkGateway)
	})
}

func (r *runner) mustPresign(b *testing.B, n int, gen func(i int) []byte) []request {
	b.Helper()
	pool, err := r.presign(context.Background(), n, 0, gen)
	if err != nil {
		b.Fatal(err)
	}
	return pool
}

// sequential times b.N requests over pool, one at a time, failing on the
// first wrong answer so a broken setup never reports a fast ns/op.
func (r *runner) sequential(b *testing.B, url string, pool []request, check checkFunc) {
	b.Helper()
	calls := r.env.UpstreamCalls()
	b.ResetTimer()
	for i := range b.N {
		if kind, detail := r.do(context.Background(), url, pool[i%len(pool)], check); kind != "" {
			b.Fatalf("request %d: %s: %s", i, kind, detail)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(r.env.UpstreamCalls()-calls)/float64(b.N), "upstream-calls/op")
}
