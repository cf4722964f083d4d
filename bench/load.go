package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// Scenario names, in the order Run measures them by default.
const (
	// ScenarioBare posts the seed body to bare reverse_proxy: the baseline.
	ScenarioBare = "bare"
	// ScenarioFirstTime sends a new order with a new requestId each time:
	// verify, validate, claim, lock, forward, commit (fsync), signed reply.
	ScenarioFirstTime = "first-time"
	// ScenarioReplay repeats already-answered signed requests byte for byte:
	// verify, then the stored reply; the upstream is not called.
	ScenarioReplay = "replay"
	// ScenarioResend sends a new requestId for an order already in the same
	// status: the stored SUCCESS, signed afresh; the upstream is not called.
	ScenarioResend = "resend"
)

// Scenarios is every scenario, bare first because the ratios are against it.
var Scenarios = []string{ScenarioBare, ScenarioFirstTime, ScenarioReplay, ScenarioResend}

// MaxDuration bounds the window per scenario: fresh requests are signed
// before their window starts, and the last one's Request-Time must still be
// inside the gateway's default 5-minute window when it is sent.
const MaxDuration = 3 * time.Minute

// MaxPool caps an auto-sized pool of pre-signed requests (each costs about
// 1 KiB of the driver's memory), for machines with many cores.
const MaxPool = 60000

// committedOrders is how many orders replay and resend spread over: more
// than any sensible worker count, so workers seldom queue on one order's
// lock and the numbers describe the gateway rather than one hot key.
const committedOrders = 64

// Config tunes Run. Zero values take the defaults of the loadtest command.
type Config struct {
	// CaddyBin is the Caddy binary with this module (required).
	CaddyBin string
	// RepoRoot is the checkout; default found from the working directory.
	RepoRoot string
	// DataDir holds the gateway's orders.db; default a temporary directory.
	DataDir string
	// Workers is the number of concurrent connections; default 16.
	Workers int
	// Duration is the timed window of each scenario; default 10s.
	Duration time.Duration
	// Scenarios to measure, in order; default Scenarios.
	Scenarios []string
	// Pool is how many requests to pre-sign for first-time and resend;
	// 0 signs for the length of the window plus 10% (see freshPool).
	Pool int
	// Progress receives one line per phase; nil discards them.
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.Workers == 0 {
		c.Workers = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = Scenarios
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Workers < 1:
		return fmt.Errorf("workers must be at least 1, not %d", c.Workers)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration must be in (0, %s]: pre-signed Request-Times must stay inside the gateway's 5m window", MaxDuration)
	case c.Pool < 0:
		return fmt.Errorf("pool must not be negative")
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %v)", s, Scenarios)
		}
	}
	return nil
}

// Run starts one Caddy (see StartEnv), measures each scenario and stops
// Caddy again. It fails only when the run could not be made; wrong answers
// during a window are counted as errors in the Result, not returned.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "starting caddy (%s)\n", cfg.CaddyBin)
	env, err := StartEnv(ctx, EnvConfig{CaddyBin: cfg.CaddyBin, RepoRoot: cfg.RepoRoot, DataDir: cfg.DataDir})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	r, err := newRunner(cfg, env)
	if err != nil {
		return nil, err
	}
	defer r.client.CloseIdleConnections()

	rep := &Report{
		Date:               time.Now().UTC().Format(time.RFC3339),
		GoVersion:          runtime.Version(),
		OS:                 runtime.GOOS,
		Arch:               runtime.GOARCH,
		CPUs:               runtime.NumCPU(),
		CaddyVersion:       env.CaddyVersion,
		Workers:            cfg.Workers,
		Duration:           cfg.Duration.String(),
		PeakRSSPerScenario: true,
	}
	for _, name := range cfg.Scenarios {
		res, perScenario, err := r.scenario(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n--- caddy log (tail) ---\n%s", name, err, env.LogTail(4096))
		}
		rep.PeakRSSPerScenario = rep.PeakRSSPerScenario && perScenario
		rep.Results = append(rep.Results, res)
	}
	rep.computeRatios()
	return rep, nil
}

// request is one pre-signed call: body and headers are fixed at signing.
type request struct {
	body        []byte
	requestTime string
	signature   string
}

// checkFunc judges one answer: kind is "" when it is what the scenario
// must get, else a short label to count it under; detail explains it.
type checkFunc func(resp *http.Response, body []byte) (kind, detail string)

type runner struct {
	cfg    Config
	env    *Env
	client *http.Client
	key    *rsa.PrivateKey
	seed   map[string]any
	seedB  []byte
	prefix string
	n      atomic.Uint64

	committed      [][]byte // bodies of first-time requests answered SUCCESS
	committedBizNo []string // their merchantBizNo, same index
}

func newRunner(cfg Config, env *Env) (*runner, error) {
	pem, err := os.ReadFile(filepath.Join(env.Root, "examples", "demo-keys", "merchant-private.pem"))
	if err != nil {
		return nil, err
	}
	key, err := signature.ParsePrivateKey(pem)
	if err != nil {
		return nil, err
	}
	seedB, err := os.ReadFile(filepath.Join(env.Root, "examples", "seed-gift-card.json"))
	if err != nil {
		return nil, err
	}
	seedB = bytes.TrimSpace(seedB)
	var seed map[string]any
	if err := json.Unmarshal(seedB, &seed); err != nil {
		return nil, fmt.Errorf("seed body: %v", err)
	}
	// A random prefix keeps ids unique when -data-dir reuses an orders.db.
	p := make([]byte, 4)
	_, _ = rand.Read(p)
	return &runner{
		cfg: cfg, env: env, key: key, seed: seed, seedB: seedB, prefix: hex.EncodeToString(p),
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil, // loopback only, whatever HTTP_PROXY says
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConns:        4 * cfg.Workers,
				MaxIdleConnsPerHost: 2 * cfg.Workers,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
		},
	}, nil
}

// id returns a fresh 32-character id (the schema's requestId limit).
func (r *runner) id() string { return fmt.Sprintf("%s%024x", r.prefix, r.n.Add(1)) }

// body is the seed with the given requestId and merchantBizNo.
func (r *runner) body(requestID, bizNo string) []byte {
	o := maps.Clone(r.seed)
	o["requestId"] = requestID
	o["merchantBizNo"] = bizNo
	b, err := json.Marshal(o)
	if err != nil {
		panic(err) // a map decoded from JSON always encodes
	}
	return b
}

func (r *runner) newOrder() (body []byte, bizNo string) {
	bizNo = "BENCH-" + r.id()
	return r.body(r.id(), bizNo), bizNo
}

func (r *runner) sign(body []byte) (request, error) {
	rt := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sig, err := signature.Sign(r.key, http.MethodPost, SyncPath, ClientID, rt, body)
	if err != nil {
		return request{}, err
	}
	return request{body: body, requestTime: rt, signature: signature.FormatHeader("1", sig)}, nil
}

// presign signs up to n bodies on every core, stopping early when d > 0
// has passed. It runs before a window opens: signing in the window would
// make the driver, not Caddy, the bottleneck on a small machine (one
// RSA-2048 signature costs more than the gateway's whole verify path).
func (r *runner) presign(ctx context.Context, n int, d time.Duration, gen func(i int) []byte) ([]request, error) {
	out := make([]request, n)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	start := time.Now()
	for range runtime.NumCPU() {
		wg.Go(func() {
			for ctx.Err() == nil && (d <= 0 || time.Since(start) < d) {
				// Every index taken is filled, so out[:taken] is complete.
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				q, err := r.sign(gen(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				out[i] = q
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out[:min(int(next.Load()), n)], nil
}

// outcome is what one drive measured.
type outcome struct {
	ok        int64
	errors    map[string]int64
	sample    string
	lats      []time.Duration
	elapsed   time.Duration
	exhausted bool
}

func (o outcome) errorCount() int64 {
	var n int64
	for _, c := range o.errors {
		n += c
	}
	return n
}

// drive sends pool with cfg.Workers workers until d has passed or, when
// cycle is false, every request was sent once. Requests in flight at the
// deadline are waited for and counted, and elapsed covers them, so the
// rate is never flattered by a cut-off tail.
func (r *runner) drive(ctx context.Context, url string, pool []request, cycle bool, d time.Duration, check checkFunc) (outcome, error) {
	if len(pool) == 0 {
		return outcome{}, errors.New("no requests to send")
	}
	var (
		next      atomic.Int64
		exhausted atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		total     = outcome{errors: map[string]int64{}}
	)
	start := time.Now()
	deadline := start.Add(d)
	for range r.cfg.Workers {
		wg.Go(func() {
			var (
				lats   []time.Duration
				errs   = map[string]int64{}
				sample string
			)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(len(pool)) && !cycle {
					exhausted.Store(true)
					break
				}
				q := pool[i%int64(len(pool))]
				t0 := time.Now()
				kind, detail := r.do(ctx, url, q, check)
				lat := time.Since(t0)
				if kind == "" {
					lats = append(lats, lat)
					continue
				}
				if ctx.Err() != nil {
					break // an interrupted request is not an answer
				}
				errs[kind]++
				if sample == "" {
					sample = kind + ": " + detail
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total.ok += int64(len(lats))
			total.lats = append(total.lats, lats...)
			for k, v := range errs {
				total.errors[k] += v
			}
			if total.sample == "" {
				total.sample = sample
			}
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	total.exhausted = exhausted.Load() && total.elapsed < d
	if err := ctx.Err(); err != nil {
		return total, err
	}
	slices.Sort(total.lats)
	return total, nil
}

// do sends one pre-signed request and judges the answer.
func (r *runner) do(ctx context.Context, url string, q request, check checkFunc) (kind, detail string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(q.body))
	if err != nil {
		return "request", err.Error()
	}
	req.Header = http.Header{
		"Content-Type": {"application/json; charset=UTF-8"},
		"Client-Id":    {ClientID},
		"Request-Time": {q.requestTime},
		"Signature":    {q.signature},
	}
	resp, err := r.client.Do(req)
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

// checkBare accepts what the upstream answers: 200 with an orderId.
func checkBare(resp *http.Response, body []byte) (string, string) {
	if resp.StatusCode != http.StatusOK {
		return "http_" + strconv.Itoa(resp.StatusCode), string(truncate(body))
	}
	var b struct {
		OrderID string `json:"orderId"`
	}
	if json.Unmarshal(body, &b) != nil || b.OrderID == "" {
		return "no_order_id", string(truncate(body))
	}
	return "", ""
}

// checkGateway accepts only a signed SUCCESS envelope with an orderId: the
// gateway answers HTTP 200 for failures too, so the status code alone would
// count refusals as throughput.
func checkGateway(resp *http.Response, body []byte) (string, string) {
	if resp.StatusCode != http.StatusOK {
		return "http_" + strconv.Itoa(resp.StatusCode), string(truncate(body))
	}
	var env struct {
		Result struct {
			ResultCode    string `json:"resultCode"`
			ResultMessage string `json:"resultMessage"`
		} `json:"result"`
		OrderID string `json:"orderId"`
	}
	switch {
	case json.Unmarshal(body, &env) != nil:
		return "not_envelope", string(truncate(body))
	case env.Result.ResultCode != "SUCCESS":
		return env.Result.ResultCode, env.Result.ResultMessage
	case env.OrderID == "":
		return "no_order_id", string(truncate(body))
	case resp.Header.Get("Signature") == "":
		return "unsigned", "SUCCESS without a Signature header"
	}
	return "", ""
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// warmup is how long a cycling scenario runs untimed first, so connections,
// buffers and Caddy's heap exist before the window opens.
func (r *runner) warmup() time.Duration {
	return min(max(r.cfg.Duration/10, 200*time.Millisecond), time.Second)
}

// scenario prepares, warms up and measures one scenario. perScenarioRSS
// reports whether the peak RSS is this window's own (false: it is the
// high-water mark since Caddy started).
func (r *runner) scenario(ctx context.Context, name string) (res Result, perScenarioRSS bool, err error) {
	var (
		url   = r.env.GatewayURL
		check = checkGateway
		pool  []request
		cycle bool
	)
	switch name {
	case ScenarioBare:
		// The seed bytes with real headers, so both sites get the same request.
		url, check, cycle = r.env.BareURL, checkBare, true
		q, err := r.sign(r.seedB)
		if err != nil {
			return res, false, err
		}
		pool = []request{q}
	case ScenarioFirstTime:
		pool, err = r.freshPool(ctx, name, func(int) []byte { b, _ := r.newOrder(); return b })
	case ScenarioReplay:
		if err = r.commit(ctx); err != nil {
			return res, false, err
		}
		// Signed afresh over the same bytes, which is still a replay, so
		// the Request-Times are new whatever ran since the commit.
		cycle = true
		pool, err = r.presign(ctx, len(r.committed), 0, func(i int) []byte { return r.committed[i] })
	case ScenarioResend:
		if err = r.commit(ctx); err != nil {
			return res, false, err
		}
		pool, err = r.freshPool(ctx, name, func(i int) []byte {
			return r.body(r.id(), r.committedBizNo[i%len(r.committedBizNo)])
		})
	}
	if err != nil {
		return res, false, err
	}
	if cycle {
		fmt.Fprintf(r.cfg.Progress, "%s: warming up for %s\n", name, r.warmup())
		w, err := r.drive(ctx, url, pool, true, r.warmup(), check)
		if err != nil {
			return res, false, err
		}
		if n := w.errorCount(); n > 0 {
			return res, false, fmt.Errorf("warm-up: %d of %d answers wrong (%s)", n, n+w.ok, w.sample)
		}
	}

	pid := r.env.PID()
	startRSS, _ := currentRSS(pid)
	perScenarioRSS = resetPeakRSS(pid) == nil
	calls := r.env.UpstreamCalls()
	cpu0, cpuErr := cpuTime(pid)
	fmt.Fprintf(r.cfg.Progress, "%s: measuring for %s with %d workers\n", name, r.cfg.Duration, r.cfg.Workers)
	out, err := r.drive(ctx, url, pool, cycle, r.cfg.Duration, check)
	if err != nil {
		return res, false, err
	}
	rss, _ := peakRSS(pid)
	cpu1, cpuErr1 := cpuTime(pid)
	res = Result{
		Scenario:      name,
		Requests:      out.ok,
		Errors:        out.errorCount(),
		ErrorSample:   out.sample,
		Seconds:       out.elapsed.Seconds(),
		RPS:           float64(out.ok) / out.elapsed.Seconds(),
		P50Ms:         ms(percentile(out.lats, 0.50)),
		P90Ms:         ms(percentile(out.lats, 0.90)),
		P99Ms:         ms(percentile(out.lats, 0.99)),
		StartRSSKiB:   startRSS,
		PeakRSSKiB:    rss,
		UpstreamCalls: r.env.UpstreamCalls() - calls,
		PoolExhausted: out.exhausted,
	}
	if n := out.ok + res.Errors; n > 0 && cpuErr == nil && cpuErr1 == nil {
		res.CaddyCPUPerReqUs = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(n)
	}
	if len(out.errors) > 0 {
		res.ErrorKinds = out.errors
	}
	if !cycle {
		res.Presigned = len(pool)
	}
	return res, perScenarioRSS, nil
}

// freshPool pre-signs the requests of a scenario that never repeats one.
// Without cfg.Pool it first sends a short calibration burst, which warms
// the path up and proves the setup answers SUCCESS, then signs on every
// core for the length of the window plus 10%. The gateway signs each of
// these replies with an RSA key of the same size on the same cores, so it
// cannot use them up faster than they were made. (Sizing from the burst's
// rate was tried first: on a young store and cold connections it undershot
// the sustained rate by up to 3×.)
func (r *runner) freshPool(ctx context.Context, name string, gen func(i int) []byte) ([]request, error) {
	if r.cfg.Pool > 0 {
		fmt.Fprintf(r.cfg.Progress, "%s: pre-signing %d requests\n", name, r.cfg.Pool)
		return r.presign(ctx, r.cfg.Pool, 0, gen)
	}
	calN := max(100, 25*r.cfg.Workers)
	fmt.Fprintf(r.cfg.Progress, "%s: calibrating with %d requests\n", name, calN)
	cal, err := r.presign(ctx, calN, 0, gen)
	if err != nil {
		return nil, err
	}
	out, err := r.drive(ctx, r.env.GatewayURL, cal, false, time.Minute, checkGateway)
	if err != nil {
		return nil, err
	}
	if e := out.errorCount(); e > 0 {
		return nil, fmt.Errorf("calibration: %d of %d answers wrong (%s)", e, e+out.ok, out.sample)
	}
	d := r.cfg.Duration + r.cfg.Duration/10
	fmt.Fprintf(r.cfg.Progress, "%s: pre-signing for %s\n", name, d.Round(time.Millisecond))
	pool, err := r.presign(ctx, MaxPool, d, gen)
	fmt.Fprintf(r.cfg.Progress, "%s: %d requests signed\n", name, len(pool))
	return pool, err
}

// commit creates, once, the orders replay and resend work on: first-time
// requests that got SUCCESS, kept byte for byte.
func (r *runner) commit(ctx context.Context) error {
	if r.committed != nil {
		return nil
	}
	bizNos := make([]string, committedOrders)
	bodies := make([][]byte, committedOrders)
	for i := range bodies {
		bodies[i], bizNos[i] = r.newOrder()
	}
	pool, err := r.presign(ctx, committedOrders, 0, func(i int) []byte { return bodies[i] })
	if err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Progress, "committing %d orders for replay and resend\n", committedOrders)
	out, err := r.drive(ctx, r.env.GatewayURL, pool, false, time.Minute, checkGateway)
	if err != nil {
		return err
	}
	if out.ok != committedOrders {
		return fmt.Errorf("committing orders: %d of %d answered SUCCESS (%s)", out.ok, committedOrders, out.sample)
	}
	r.committed, r.committedBizNo = bodies, bizNos
	return nil
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
