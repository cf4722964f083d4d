package bench

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/signature"
)

// MaxPool caps the requests made for one pool (each costs about 1 KiB of
// the load generator's memory and, signed, one RSA signature).
const MaxPool = 300000

// Config tunes Run. Zero values take the loadtest command's defaults.
type Config struct {
	// CaddyBin is the Caddy binary with this module (required).
	CaddyBin string
	// HelperBin is ./bench/internal/helper built with the Caddy binary's
	// build tags (required): the upstream, and the signing bound.
	HelperBin string
	// RepoRoot is the checkout; default found from the working directory.
	RepoRoot string
	// DataDir is where each window's store directory is made; default the
	// system's temporary directory. Point it at the disk production would
	// use: the first-time figures depend on fsync.
	DataDir string
	// Workers is the number of connections of the saturating load and the
	// most the half load may use; default 32.
	Workers int
	// Duration is the measured time of each window; default 10s.
	Duration time.Duration
	// Warmup is how long each window's Caddy is driven, untimed, before the
	// window opens; default Duration/10 within [100ms, 2s].
	Warmup time.Duration
	// Rounds is how often every pair is measured; default 3.
	Rounds int
	// Paths to measure, each against its baseline; default every path.
	Paths []string
	// Pool > 0 caps the requests of a warm-up and of a window for paths
	// that never repeat one, so either may end early (smoke tests). 0 sizes
	// them from the rates measured so far.
	Pool int
	// SkipHalfLoad leaves out the open-loop windows at half load.
	SkipHalfLoad bool
	// BoundDuration is how long the signing bound signs; default 2s.
	BoundDuration time.Duration
	// NoPin runs every process on every CPU.
	NoPin bool
	// ServerCPUs and LoadCPUs override the split of the CPUs this process
	// may use: Caddy, the upstream and redis-server on ServerCPUs, the load
	// generator on LoadCPUs. Default: the lower half and the rest.
	ServerCPUs, LoadCPUs []int
	// ProfileDir, when set, receives a CPU profile of Caddy over each
	// saturating window, taken from its admin endpoint, named
	// round-<n>-<path>.pprof. Profiling costs Caddy a little CPU: figures
	// of a profiled run are for reading profiles, not for the report.
	ProfileDir string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.CaddyBin == "" || c.HelperBin == "" {
		return errors.New("the Caddy and helper binaries are required")
	}
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = min(max(c.Duration/10, 100*time.Millisecond), 2*time.Second)
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if len(c.Paths) == 0 {
		c.Paths = PathNames()
	}
	if c.BoundDuration == 0 {
		c.BoundDuration = 2 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Workers < 1:
		return fmt.Errorf("workers must be at least 1, not %d", c.Workers)
	case c.Duration < 0 || c.Warmup < 0 || c.BoundDuration < 0:
		return errors.New("durations must be positive")
	case c.Rounds < 1:
		return fmt.Errorf("rounds must be at least 1, not %d", c.Rounds)
	case c.Pool < 0:
		return errors.New("pool must not be negative")
	}
	for _, name := range c.Paths {
		p, ok := pathByName(name)
		if !ok || name == PathBare {
			return fmt.Errorf("unknown path %q (known: %s)", name, strings.Join(PathNames(), ", "))
		}
		if _, ok := pathByName(cmpOrStr(p.Baseline, PathBare)); !ok {
			return fmt.Errorf("path %s: unknown baseline %q", name, p.Baseline)
		}
	}
	return nil
}

func cmpOrStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// runner holds what lives for a whole run.
type runner struct {
	cfg       Config
	root      string
	fx        *Fixture
	key       *rsa.PrivateKey
	pin       Pinning
	serverEnv []string // GOMAXPROCS for pinned server processes
	tmp       string
	up        *upstreamProc
	redis     string
	redisPID  int
	client    *client
	pools     map[string][]request
	best      map[string]float64 // highest saturating rate seen per path
	signer    string             // the signing bound's implementation
	began     time.Time
}

// Run measures every configured path against its baseline, round after
// round, and returns the report. It fails only when the run could not be
// made; wrong answers in a window are counted as errors, not returned.
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, root: cfg.RepoRoot, pools: map[string][]request{}, best: map[string]float64{}, began: time.Now()}
	if r.root == "" {
		if r.root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	if r.fx, err = newFixture(r.root); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(filepath.Join(r.root, "examples", "demo-keys", "merchant-private.pem"))
	if err != nil {
		return nil, err
	}
	if r.key, err = signature.ParsePrivateKey(pem); err != nil {
		return nil, err
	}
	if r.tmp, err = os.MkdirTemp("", "ordersync-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmp)
	r.client = newClient(cfg.Workers)
	defer r.client.hc.CloseIdleConnections()

	r.pin = planPinning(cfg)
	if r.pin.Pinned() {
		r.serverEnv = []string{"GOMAXPROCS=" + strconv.Itoa(len(r.pin.Server))}
	}
	rep := r.newReport()
	r.logf("%s", rep.pinningLine())

	if r.up, err = startUpstream(cfg.HelperBin, r.tmp, r.serverEnv); err != nil {
		return nil, err
	}
	defer r.up.stop()
	if err := r.pinServer(r.up.pid()); err != nil {
		return nil, err
	}

	var paths []*Path
	for _, name := range cfg.Paths {
		p, _ := pathByName(name)
		if p.NeedsRedis && r.redis == "" {
			stop, err := r.startRedis()
			if err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s skipped: %v", p.Name, err))
				r.logf("%s skipped: %v", p.Name, err)
				continue
			}
			defer stop()
		}
		paths = append(paths, p)
	}

	for round := 1; round <= cfg.Rounds; round++ {
		for _, p := range paths {
			pr, err := r.pair(ctx, round, p)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round, p.Name, err)
			}
			rep.Pairs = append(rep.Pairs, pr)
		}
	}
	rep.Signer = r.signer
	rep.summarize()
	return rep, nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "[%6.1fs] "+format+"\n", append([]any{time.Since(r.began).Seconds()}, args...)...)
}

// startRedis starts the private redis-server the Redis path uses, pinned
// with Caddy: it is part of the server side.
func (r *runner) startRedis() (stop func(), err error) {
	addr, stop, err := redistest.StartServer()
	if err != nil {
		return nil, err
	}
	pid, err := childByName("redis-server")
	if err == nil {
		err = r.pinServer(pid)
	}
	if err != nil {
		stop()
		return nil, err
	}
	r.redis, r.redisPID = addr, pid
	return stop, nil
}

// pair measures one path and its baseline in one round: both at
// saturation, then both at the same open-loop rate, half of the lower of
// the two saturating rates. Odd rounds start with the baseline, even rounds
// with the path, so a drift of the machine during a round does not always
// favour the same side.
func (r *runner) pair(ctx context.Context, round int, p *Path) (PairResult, error) {
	base, _ := pathByName(cmpOrStr(p.Baseline, PathBare))
	pr := PairResult{Round: round, Path: p.Name, Baseline: base.Name}
	order := []*Path{base, p}
	if round%2 == 0 {
		order = []*Path{p, base}
	}
	sat := map[*Path]*Measurement{}
	for _, q := range order {
		m, err := r.window(ctx, round, p, q, 0)
		if err != nil {
			return pr, err
		}
		sat[q] = m
		r.best[q.Name] = max(r.best[q.Name], m.RPS)
	}
	pr.Gateway, pr.Base = sat[p], sat[base]
	if p.SigningBound {
		b, err := r.signingBound(ctx)
		if err != nil {
			return pr, fmt.Errorf("signing bound: %w", err)
		}
		pr.SigningBound = b
	}
	if !r.cfg.SkipHalfLoad {
		pr.HalfRPS = math.Round(min(pr.Gateway.RPS, pr.Base.RPS) / 2)
		if pr.HalfRPS < 1 {
			return pr, errors.New("no saturating rate to halve")
		}
		half := map[*Path]*Measurement{}
		for _, q := range order {
			m, err := r.window(ctx, round, p, q, pr.HalfRPS)
			if err != nil {
				return pr, err
			}
			half[q] = m
		}
		pr.GatewayHalf, pr.BaseHalf = half[p], half[base]
	}
	pr.ratios()
	return pr, nil
}

// Window is one path's Caddy process, started for one measurement window.
type Window struct {
	// URL is where the path's requests go.
	URL string
	r   *runner
}

// SendAll sends every request of req once, over the run's connections, and
// fails unless every answer passes check.
func (w *Window) SendAll(ctx context.Context, req Requests, check Check) error {
	n := req.Repeat
	if n == 0 {
		return errors.New("SendAll needs a pool of fixed size (Repeat)")
	}
	pool, err := w.r.pool(ctx, req, n)
	if err != nil {
		return err
	}
	out, err := w.r.client.driveClosed(ctx, w.URL, &feed{pool: pool[:n]}, w.r.cfg.Workers, time.Hour, check)
	if err != nil {
		return err
	}
	if out.ok != int64(n) {
		return fmt.Errorf("%d of %d answers right (%s)", out.ok, n, out.sample)
	}
	return nil
}

// window measures path q, in the pair of path p, in a Caddy process of its
// own: at saturation (rate 0) or at the given open-loop rate.
func (r *runner) window(ctx context.Context, round int, p, q *Path, rate float64) (*Measurement, error) {
	m := &Measurement{Round: round, Pair: p.Name, Path: q.Name, Load: LoadSaturating, TargetRPS: rate, Workers: r.cfg.Workers}
	if rate > 0 {
		m.Load = LoadHalf
	}
	f, err := r.feedFor(ctx, q)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp(cmpOrStr(r.cfg.DataDir, r.tmp), "window-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if q.NeedsRedis {
		if err := redistest.Do(r.redis, "FLUSHALL"); err != nil {
			return nil, fmt.Errorf("emptying redis: %w", err)
		}
	}
	site := &Site{Upstream: r.up.addr, Root: r.root, DataDir: dir, Redis: r.redis}
	sites, url, err := q.Site(site)
	if err != nil {
		site.release()
		return nil, err
	}
	r.logf("round %d, %s: %s %s", round, p.Name, q.Name, m.Load)
	caddy, err := startCaddy(ctx, r.cfg.CaddyBin, dir, site, sites, r.serverEnv)
	if err != nil {
		return nil, err
	}
	defer caddy.stop()
	defer r.client.hc.CloseIdleConnections() // before Caddy stops: nothing for it to wait for
	fail := func(err error) (*Measurement, error) {
		return nil, fmt.Errorf("%s: %w\n--- caddy log (tail) ---\n%s", q.Name, err, caddy.logTail(4096))
	}
	if err := r.pinServer(caddy.pid()); err != nil {
		return nil, err
	}
	if q.Setup != nil {
		if err := q.Setup(ctx, &Window{URL: url, r: r}); err != nil {
			return fail(fmt.Errorf("setup: %w", err))
		}
	}

	if err := r.pinLoad(); err != nil {
		return nil, err
	}
	defer r.unpinLoad()
	w, err := r.client.driveClosed(ctx, url, f, r.cfg.Workers, r.cfg.Warmup, q.Check)
	if err != nil {
		return nil, err
	}
	if n := w.errorCount(); n > 0 {
		return fail(fmt.Errorf("warm-up: %d of %d answers wrong (%s)", n, n+w.ok, w.sample))
	}
	// The window's requests: at the open-loop rate, or at the best rate
	// seen so far (the warm-up's own, on a cold Caddy, undershoots; it is
	// the estimate only for a path's first window).
	est := max(r.best[q.Name], 1.5*float64(w.ok)/w.elapsed.Seconds())
	if rate > 0 {
		est = rate
	}
	if !f.repeat && int(f.next.Load())+int(est*r.cfg.Duration.Seconds()) > len(f.pool) {
		r.unpinLoad()
		f, err = r.grow(ctx, q, f, r.cfg.Duration, est)
		if err == nil {
			err = r.pinLoad()
		}
		if err != nil {
			return nil, err
		}
	}
	if !f.repeat {
		m.Pool = len(f.pool) - int(f.next.Load())
	}

	// Threads started since the last pinning inherited their creator's
	// CPUs; pinning again costs nothing and leaves no doubt.
	server := []int{caddy.pid(), r.up.pid()}
	if q.NeedsRedis {
		server = append(server, r.redisPID)
	}
	if err := r.pinServer(server...); err != nil {
		return nil, err
	}
	m.StartRSSKiB, _ = currentRSS(caddy.pid())
	m.PeakRSSReset = resetPeakRSS(caddy.pid()) == nil
	calls0, callsErr := r.up.calls()
	cpu := startCPU(append(server, os.Getpid())...)
	busy0, busyErr := busyCPU()
	profiled := make(chan error, 1)
	if r.cfg.ProfileDir != "" && rate == 0 {
		path := filepath.Join(r.cfg.ProfileDir, fmt.Sprintf("round-%d-%s.pprof", round, q.Name))
		go func() { profiled <- caddy.cpuProfile(ctx, r.cfg.Duration, path) }()
	} else {
		profiled <- nil
	}
	var out outcome
	if rate > 0 {
		out, err = r.client.driveOpen(ctx, url, f, r.cfg.Workers, rate, r.cfg.Duration, q.Check)
	} else {
		out, err = r.client.driveClosed(ctx, url, f, r.cfg.Workers, r.cfg.Duration, q.Check)
	}
	if err != nil {
		return nil, err
	}
	m.PeakRSSKiB, _ = peakRSS(caddy.pid())
	used, cpuErr := cpu.used()
	// Read with used, before the profile is written: its tail is not
	// the window's other CPU.
	busy1, busyErr1 := busyCPU()
	if err := <-profiled; err != nil {
		r.logf("  CPU profile: %v", err)
	}
	calls1, callsErr1 := r.up.calls()

	m.Requests, m.Errors, m.ErrorSample = out.ok, out.errorCount(), out.sample
	if len(out.errors) > 0 {
		m.ErrorKinds = out.errors
	}
	m.Seconds = out.elapsed.Seconds()
	m.RPS = float64(out.ok) / m.Seconds
	m.P50Ms, m.P90Ms, m.P99Ms = ms(percentile(out.lats, .5)), ms(percentile(out.lats, .9)), ms(percentile(out.lats, .99))
	m.Late, m.PoolExhausted = out.late, out.exhausted
	if callsErr == nil && callsErr1 == nil {
		m.UpstreamCalls = calls1 - calls0
	} else {
		m.UpstreamCalls = -1
	}
	if n := float64(out.ok + m.Errors); n > 0 && cpuErr == nil {
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / n }
		m.CaddyCPUUs = us(used[0])
		var server time.Duration
		for _, u := range used[:len(used)-1] {
			server += u
		}
		m.ServerCPUUs = us(server)
		cpus := len(r.pin.Load)
		if cpus == 0 {
			cpus = runtime.NumCPU()
		}
		m.LoadCPUPercent = 100 * used[len(used)-1].Seconds() / out.elapsed.Seconds() / float64(cpus)
		if busyErr == nil && busyErr1 == nil {
			other := busy1 - busy0
			for _, u := range used {
				other -= u
			}
			m.OtherCPUPercent = max(0, 100*other.Seconds()/out.elapsed.Seconds()/float64(runtime.NumCPU()))
		}
	}
	if want := int64(q.UpstreamCalls) * m.Requests; m.UpstreamCalls != want {
		m.UpstreamMismatch = true
	}
	r.logf("  %.0f req/s, p50 %.2f ms, p99 %.2f ms, Caddy %.0f µs/req, peak RSS %.1f MiB, %d errors",
		m.RPS, m.P50Ms, m.P99Ms, m.CaddyCPUUs, float64(m.PeakRSSKiB)/1024, m.Errors)
	return m, nil
}

// feedFor prepares the requests of q's warm-up; grow adds those of the
// window once the warm-up has shown the rate.
func (r *runner) feedFor(ctx context.Context, q *Path) (*feed, error) {
	if q.Requests.Repeat > 0 {
		pool, err := r.pool(ctx, q.Requests, q.Requests.Repeat)
		if err != nil {
			return nil, err
		}
		return &feed{pool: pool[:q.Requests.Repeat], repeat: true}, nil
	}
	return r.grow(ctx, q, &feed{}, r.cfg.Warmup, r.estimate(q))
}

// grow makes f hold enough requests for d more at rate, with a margin; a
// window that still runs out ends early and says so, and later windows are
// sized from its rate.
func (r *runner) grow(ctx context.Context, q *Path, f *feed, d time.Duration, rate float64) (*feed, error) {
	if f.repeat {
		return f, nil
	}
	n := int(f.next.Load()) + int(rate*d.Seconds()*1.25) + 2*r.cfg.Workers
	if r.cfg.Pool > 0 {
		n = int(f.next.Load()) + r.cfg.Pool
	}
	n = min(n, MaxPool)
	if n <= len(f.pool) {
		return f, nil
	}
	pool, err := r.pool(ctx, q.Requests, n)
	if err != nil {
		return nil, err
	}
	f.pool = pool[:n]
	return f, nil
}

// estimate is the rate to size q's warm-up for: the highest q reached so
// far, else its baseline's (the gateway does what bare does and more),
// else a guess.
func (r *runner) estimate(q *Path) float64 {
	if v := r.best[q.Name]; v > 0 {
		return v
	}
	if v := r.best[cmpOrStr(q.Baseline, PathBare)]; v > 0 {
		return v
	}
	return 2000
}

// pool returns at least n requests of req's pool, making the missing ones
// on every CPU (the load generator is not pinned between windows).
func (r *runner) pool(ctx context.Context, req Requests, n int) ([]request, error) {
	have := r.pools[req.Pool]
	if len(have) >= n {
		return have, nil
	}
	verb := "signing"
	if req.Unsigned {
		verb = "making"
	}
	began := time.Now()
	more, err := makeRequests(ctx, r.fx, r.key, req, len(have), n)
	if err != nil {
		return nil, err
	}
	r.logf("%s %d %s requests took %s", verb, n-len(have), req.Pool, time.Since(began).Round(time.Millisecond))
	r.pools[req.Pool] = append(have, more...)
	return r.pools[req.Pool], nil
}

// signingBound runs the helper's signbound role on Caddy's CPUs: how many
// reply signatures per second those CPUs can make at all, with the key and
// the implementation the gateway signs with.
func (r *runner) signingBound(ctx context.Context) (float64, error) {
	key := filepath.Join(r.root, "examples", "demo-keys", "gateway-private.pem")
	p, err := startProc(r.cfg.HelperBin, []string{"signbound", "-key", key, "-duration", r.cfg.BoundDuration.String()},
		r.tmp, r.serverEnv, filepath.Join(r.tmp, "signbound.log"), true)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	lines := p.lines()
	next := func() (string, error) {
		select {
		case l, ok := <-lines:
			if ok {
				return l, nil
			}
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(r.cfg.BoundDuration + 30*time.Second):
		}
		return "", fmt.Errorf("no answer:\n%s", p.logTail(2048))
	}
	if l, err := next(); err != nil || l != "ready" {
		return 0, cmpOr(err, fmt.Errorf("unexpected %q", l))
	}
	if err := r.pinServer(p.pid()); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		return 0, err
	}
	l, err := next()
	if err != nil {
		return 0, err
	}
	var b struct {
		Backend   string  `json:"backend"`
		PerSecond float64 `json:"per_second"`
	}
	if err := json.Unmarshal([]byte(l), &b); err != nil || b.PerSecond <= 0 {
		return 0, fmt.Errorf("unreadable result %q", l)
	}
	r.signer = b.Backend
	r.logf("signing bound: %.0f signatures/s (%s)", b.PerSecond, b.Backend)
	return b.PerSecond, nil
}

// Pinning says where the processes of a run execute.
type Pinning struct {
	// Server runs Caddy, the upstream, redis-server and the signing bound.
	Server []int `json:"server_cpus,omitempty"`
	// Load runs the load generator.
	Load []int `json:"load_cpus,omitempty"`
	// NotPinned says why every process ran on every CPU, when they did.
	NotPinned string `json:"not_pinned,omitempty"`

	all []int
}

// Pinned reports whether the processes were pinned.
func (p Pinning) Pinned() bool { return p.NotPinned == "" }

func planPinning(cfg Config) Pinning {
	all, err := allowedCPUs()
	p := Pinning{all: all}
	switch {
	case cfg.NoPin:
		p.NotPinned = "turned off"
	case err != nil:
		p.NotPinned = err.Error()
	case len(cfg.ServerCPUs) > 0 || len(cfg.LoadCPUs) > 0:
		p.Server, p.Load = cfg.ServerCPUs, cfg.LoadCPUs
		if len(p.Server) == 0 || len(p.Load) == 0 {
			p.NotPinned = "give both the server and the load CPUs"
		}
		for _, c := range append(slices.Clone(p.Server), p.Load...) {
			if !slices.Contains(all, c) {
				p.NotPinned = fmt.Sprintf("CPU %d is not among those this process may use (%v)", c, all)
			}
		}
		for _, c := range p.Server {
			if slices.Contains(p.Load, c) {
				p.NotPinned = fmt.Sprintf("CPU %d is given to both the server and the load", c)
			}
		}
	case len(all) < 2:
		p.NotPinned = fmt.Sprintf("only %d CPU available", len(all))
	default:
		p.Server, p.Load = all[:len(all)/2], all[len(all)/2:]
	}
	if p.NotPinned == "" {
		// Whether the kernel lets this process set affinities at all.
		if err := pinProcess(os.Getpid(), all); err != nil {
			p.NotPinned = err.Error()
		}
	}
	if p.NotPinned != "" {
		p.Server, p.Load = nil, nil
	}
	return p
}

func (r *runner) pinServer(pids ...int) error {
	if !r.pin.Pinned() {
		return nil
	}
	for _, pid := range pids {
		if err := pinProcess(pid, r.pin.Server); err != nil {
			return fmt.Errorf("pinning process %d: %w", pid, err)
		}
	}
	return nil
}

// pinLoad moves the load generator to its CPUs for a window; unpinLoad
// gives it every CPU back, for making requests between windows.
func (r *runner) pinLoad() error {
	if !r.pin.Pinned() {
		return nil
	}
	runtime.GOMAXPROCS(len(r.pin.Load))
	return pinProcess(os.Getpid(), r.pin.Load)
}

func (r *runner) unpinLoad() {
	if !r.pin.Pinned() {
		return
	}
	_ = pinProcess(os.Getpid(), r.pin.all)
	runtime.GOMAXPROCS(len(r.pin.all))
}
