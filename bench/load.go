package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/signature"
)

// SyncPath is the order-sync path every site is called on; the gateway
// verifies signatures over it.
const SyncPath = orderflow.SyncPath

// ClientID is the Client-Id the load generator signs as.
const ClientID = "BENCH-CLIENT"

// Fixture is what request bodies are made from: the seed order of
// examples/seed-gift-card.json and a random prefix that keeps this run's
// ids apart from any other's in logs and shared stores.
type Fixture struct {
	// SeedBytes is the seed order as stored, sent as is to bare.
	SeedBytes []byte
	seed      map[string]any
	prefix    string
}

func newFixture(root string) (*Fixture, error) {
	b, err := os.ReadFile(filepath.Join(root, "examples", "seed-gift-card.json"))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	var seed map[string]any
	if err := json.Unmarshal(b, &seed); err != nil {
		return nil, fmt.Errorf("seed body: %v", err)
	}
	return &Fixture{SeedBytes: b, seed: seed, prefix: newPrefix()}, nil
}

func newPrefix() string {
	p := make([]byte, 4)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

// ID returns the i-th id of a kind: 32 characters, the schema's limit.
func (f *Fixture) ID(kind string, i int) string {
	return fmt.Sprintf("%s%s%0*d", f.prefix, kind, 32-len(f.prefix)-len(kind), i)
}

// Order returns the seed order with the given requestId and merchantBizNo.
func (f *Fixture) Order(requestID, merchantBizNo string) []byte {
	o := maps.Clone(f.seed)
	o["requestId"] = requestID
	o["merchantBizNo"] = merchantBizNo
	b, err := json.Marshal(o)
	if err != nil {
		panic(err) // a map decoded from JSON always encodes
	}
	return b
}

// request is one prepared call: body and headers are fixed when it is made.
type request struct {
	body        []byte
	requestTime string // "" for an unsigned request
	signature   string
}

// makeRequests makes bodies [from, to) of req on every CPU the load
// generator may use, signing unless req.Unsigned.
func makeRequests(ctx context.Context, f *Fixture, key *rsa.PrivateKey, req Requests, from, to int) ([]request, error) {
	out := make([]request, to-from)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(out) {
					return
				}
				body := req.Body(f, from+i)
				if req.Unsigned {
					out[i] = request{body: body}
					continue
				}
				rt := signature.FormatEpochMillis(time.Now())
				sig, err := signature.Sign(key, http.MethodPost, SyncPath, ClientID, rt, body)
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
					return
				}
				out[i] = request{body: body, requestTime: rt, signature: signature.FormatHeader("1", sig)}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// outcome is what one drive measured.
type outcome struct {
	ok        int64
	errors    map[string]int64
	sample    string
	lats      []time.Duration // sorted
	elapsed   time.Duration
	exhausted bool  // a pool that is not repeated ran out
	late      int64 // open loop: requests sent more than lateAfter after their time
}

func (o outcome) errorCount() int64 {
	var n int64
	for _, c := range o.errors {
		n += c
	}
	return n
}

// lateAfter is how far behind its schedule an open-loop request may be sent
// before it counts as late: then every connection was busy or the load
// generator could not keep up, and the offered rate was not what it says.
const lateAfter = time.Millisecond

// feed hands out the requests of one window: round-robin over a repeated
// pool, else each at most once.
type feed struct {
	pool   []request
	repeat bool
	next   atomic.Int64
}

func (f *feed) take() (request, bool) {
	i := f.next.Add(1) - 1
	if !f.repeat && i >= int64(len(f.pool)) {
		return request{}, false
	}
	return f.pool[i%int64(len(f.pool))], true
}

// tally collects one worker's results and merges them into the total.
type tally struct {
	lats   []time.Duration
	errs   map[string]int64
	sample string
	late   int64
}

func (t *tally) record(lat time.Duration, kind, detail string) {
	if kind == "" {
		t.lats = append(t.lats, lat)
		return
	}
	if t.errs == nil {
		t.errs = map[string]int64{}
	}
	t.errs[kind]++
	if t.sample == "" {
		t.sample = kind + ": " + detail
	}
}

func (o *outcome) merge(mu *sync.Mutex, t *tally) {
	mu.Lock()
	defer mu.Unlock()
	o.ok += int64(len(t.lats))
	o.lats = append(o.lats, t.lats...)
	for k, v := range t.errs {
		o.errors[k] += v
	}
	if o.sample == "" {
		o.sample = t.sample
	}
	o.late += t.late
}

// driveClosed keeps workers connections busy, each sending its next request
// as soon as the last is answered, until d has passed or the feed runs
// out: the saturating load. Requests in flight at the deadline are waited
// for and counted, and elapsed covers them, so the rate is never
// flattered by a cut-off tail.
func (c *client) driveClosed(ctx context.Context, url string, f *feed, workers int, d time.Duration, check Check) (outcome, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		exhausted atomic.Bool
		total     = outcome{errors: map[string]int64{}}
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			var t tally
			for ctx.Err() == nil && time.Now().Before(deadline) {
				q, ok := f.take()
				if !ok {
					exhausted.Store(true)
					break
				}
				t0 := time.Now()
				kind, detail := c.do(ctx, url, q, check)
				if kind != "" && ctx.Err() != nil {
					break // an interrupted request is not an answer
				}
				t.record(time.Since(t0), kind, detail)
			}
			total.merge(&mu, &t)
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.exhausted = exhausted.Load()
	slices.Sort(total.lats)
	return total, ctx.Err()
}

// driveOpen sends at a fixed rate for d, whatever the answers do (open
// loop): request k is due at start + k/rate and its latency is counted
// from then, so time spent waiting for a free connection is part of it and
// a slow answer cannot hold back the load (no coordinated omission).
func (c *client) driveOpen(ctx context.Context, url string, f *feed, workers int, rate float64, d time.Duration, check Check) (outcome, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		slot      atomic.Int64
		exhausted atomic.Bool
		total     = outcome{errors: map[string]int64{}}
	)
	n := int64(math.Round(rate * d.Seconds()))
	interval := float64(time.Second) / rate
	start := time.Now().Add(10 * time.Millisecond) // every worker ready before the first slot
	for range workers {
		wg.Go(func() {
			var t tally
			for ctx.Err() == nil {
				k := slot.Add(1) - 1
				if k >= n {
					break
				}
				due := start.Add(time.Duration(float64(k) * interval))
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				} else if -wait > lateAfter {
					t.late++
				}
				q, ok := f.take()
				if !ok {
					exhausted.Store(true)
					break
				}
				kind, detail := c.do(ctx, url, q, check)
				if kind != "" && ctx.Err() != nil {
					break
				}
				t.record(time.Since(due), kind, detail)
			}
			total.merge(&mu, &t)
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.exhausted = exhausted.Load()
	slices.Sort(total.lats)
	return total, ctx.Err()
}

// client is the load generator's HTTP client: keep-alive connections to
// loopback, nothing else.
type client struct{ hc *http.Client }

func newClient(workers int) *client {
	return &client{hc: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTP_PROXY says
			MaxIdleConns:        4 * workers,
			MaxIdleConnsPerHost: 2 * workers,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}}
}

// do sends one prepared request and judges the answer.
func (c *client) do(ctx context.Context, url string, q request, check Check) (kind, detail string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(q.body))
	if err != nil {
		return "request", err.Error()
	}
	req.Header = http.Header{"Content-Type": {"application/json; charset=UTF-8"}}
	if q.requestTime != "" {
		req.Header["Client-Id"] = []string{ClientID}
		req.Header["Request-Time"] = []string{q.requestTime}
		req.Header["Signature"] = []string{q.signature}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "transport", err.Error()
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "transport", err.Error()
	}
	return check(resp, body)
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
