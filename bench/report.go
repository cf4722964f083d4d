package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The loads a window is measured under.
const (
	// LoadSaturating is the closed loop: every connection sends its next
	// request as soon as the last is answered.
	LoadSaturating = "saturating"
	// LoadHalf is the open loop at half of the lower saturating rate of
	// the pair, the same rate for the path and its baseline.
	LoadHalf = "half"
)

// Measurement is one window: one path, one load, one fresh Caddy process.
// Requests, the rate and the latencies count only answers that passed the
// path's check; the rest are Errors.
type Measurement struct {
	Round int `json:"round"`
	// Pair is the path whose comparison this window belongs to; Path is
	// the one measured (the pair's path or its baseline).
	Pair string `json:"pair"`
	Path string `json:"path"`
	Load string `json:"load"`
	// TargetRPS is the open-loop rate of a half-load window.
	TargetRPS   float64          `json:"target_rps,omitempty"`
	Workers     int              `json:"connections"`
	Requests    int64            `json:"requests"`
	Errors      int64            `json:"errors"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
	ErrorSample string           `json:"error_sample,omitempty"`
	// Seconds is the window actually measured, including requests that
	// were in flight when it ended.
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	// Latencies; in an open-loop window counted from when each request was
	// due, not when a connection was free to send it.
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Late counts open-loop requests sent more than 1ms after they were
	// due: every connection was busy, or the load generator fell behind.
	Late int64 `json:"late,omitempty"`
	// CaddyCPUUs is the Caddy process's CPU time (user + system, from
	// /proc/<pid>/stat) in the window over the requests answered.
	CaddyCPUUs float64 `json:"caddy_cpu_us_per_request"`
	// ServerCPUUs adds the upstream's and redis-server's: all the server
	// side spends per request.
	ServerCPUUs float64 `json:"server_cpu_us_per_request"`
	// LoadCPUPercent is how busy the load generator kept its CPUs; near
	// 100 the rate may be its limit rather than Caddy's.
	LoadCPUPercent float64 `json:"load_generator_cpu_percent"`
	// OtherCPUPercent is the CPU time of the machine (all CPUs) that
	// neither the server side nor the load generator used: other
	// processes, and interrupts not charged to a process. Much above a few
	// percent, the machine was not quiet and the figures are noise.
	OtherCPUPercent float64 `json:"other_cpu_percent"`
	// StartRSSKiB is Caddy's resident set when the window opened.
	StartRSSKiB int64 `json:"start_rss_kib"`
	// PeakRSSKiB is Caddy's VmHWM at the end of the window, reset when it
	// opened (PeakRSSReset); otherwise the peak since Caddy started.
	PeakRSSKiB   int64 `json:"peak_rss_kib"`
	PeakRSSReset bool  `json:"peak_rss_reset"`
	// UpstreamCalls made in the window (-1: could not be read);
	// UpstreamMismatch when they are not what the path's answers need.
	UpstreamCalls    int64 `json:"upstream_calls"`
	UpstreamMismatch bool  `json:"upstream_mismatch,omitempty"`
	// Pool is how many requests the window could send, for a path that
	// never repeats one; PoolExhausted when it sent them all, and the
	// window ended early (its rate is still requests over Seconds).
	Pool          int  `json:"pool,omitempty"`
	PoolExhausted bool `json:"pool_exhausted,omitempty"`
}

// PairResult is one path against its baseline in one round, with the
// ratios computed within the round (path ÷ baseline).
type PairResult struct {
	Round    int    `json:"round"`
	Path     string `json:"path"`
	Baseline string `json:"baseline"`

	Gateway *Measurement `json:"saturating"`
	Base    *Measurement `json:"baseline_saturating"`
	// HalfRPS is the rate of both half-load windows: half of the lower of
	// the two saturating rates, so neither side is overloaded.
	HalfRPS     float64      `json:"half_load_rps,omitempty"`
	GatewayHalf *Measurement `json:"half_load,omitempty"`
	BaseHalf    *Measurement `json:"baseline_half_load,omitempty"`
	// SigningBound is RSA signatures per second on Caddy's CPUs, measured
	// right after this pair's saturating windows.
	SigningBound float64 `json:"signing_bound_per_second,omitempty"`

	Throughput  float64 `json:"throughput_ratio"`
	CPU         float64 `json:"caddy_cpu_ratio"`
	PeakRSS     float64 `json:"peak_rss_ratio"`
	P50         float64 `json:"p50_ratio"`
	P99         float64 `json:"p99_ratio"`
	P99Half     float64 `json:"half_load_p99_ratio,omitempty"`
	VsSignBound float64 `json:"signing_bound_ratio,omitempty"`
}

func (p *PairResult) ratios() {
	g, b := p.Gateway, p.Base
	p.Throughput = ratio(g.RPS, b.RPS)
	p.CPU = ratio(g.CaddyCPUUs, b.CaddyCPUUs)
	p.PeakRSS = ratio(float64(g.PeakRSSKiB), float64(b.PeakRSSKiB))
	p.P50 = ratio(g.P50Ms, b.P50Ms)
	p.P99 = ratio(g.P99Ms, b.P99Ms)
	if p.GatewayHalf != nil && p.BaseHalf != nil {
		p.P99Half = ratio(p.GatewayHalf.P99Ms, p.BaseHalf.P99Ms)
	}
	if p.SigningBound > 0 {
		p.VsSignBound = g.RPS / p.SigningBound
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Spread is a figure over the rounds: the median and the range.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Sorted(slices.Values(vs))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// Summary is one path over every round.
type Summary struct {
	Path     string `json:"path"`
	Baseline string `json:"baseline"`
	About    string `json:"about"`
	Rounds   int    `json:"rounds"`

	Throughput  Spread  `json:"throughput_ratio"`
	CPU         Spread  `json:"caddy_cpu_ratio"`
	PeakRSS     Spread  `json:"peak_rss_ratio"`
	P99         Spread  `json:"p99_ratio"`
	P99Half     *Spread `json:"half_load_p99_ratio,omitempty"`
	VsSignBound *Spread `json:"signing_bound_ratio,omitempty"`

	// The absolute figures behind the ratios, of the path and of its
	// baseline in the same pairs.
	RPS             Spread  `json:"rps"`
	BaseRPS         Spread  `json:"baseline_rps"`
	CPUUs           Spread  `json:"caddy_cpu_us_per_request"`
	BaseCPUUs       Spread  `json:"baseline_caddy_cpu_us_per_request"`
	ServerCPUUs     Spread  `json:"server_cpu_us_per_request"`
	BaseServerCPUUs Spread  `json:"baseline_server_cpu_us_per_request"`
	PeakMiB         Spread  `json:"peak_rss_mib"`
	BasePeakMiB     Spread  `json:"baseline_peak_rss_mib"`
	P50Ms           Spread  `json:"p50_ms"`
	P99Ms           Spread  `json:"p99_ms"`
	BaseP99Ms       Spread  `json:"baseline_p99_ms"`
	HalfRPS         *Spread `json:"half_load_rps,omitempty"`
	P99HalfMs       *Spread `json:"half_load_p99_ms,omitempty"`
	BaseP99HalfMs   *Spread `json:"baseline_half_load_p99_ms,omitempty"`
	SignBound       *Spread `json:"signing_bound_per_second,omitempty"`
}

// Report is a whole run, with enough about the machine to read it later.
type Report struct {
	Date         string     `json:"date"`
	GoVersion    string     `json:"go_version"`
	OS           string     `json:"os"`
	Arch         string     `json:"arch"`
	CPUs         int        `json:"cpus"`
	CaddyVersion string     `json:"caddy_version,omitempty"`
	Build        BuildFlags `json:"caddy_build"`
	// Signer is the implementation the signing bound used ("go", "openssl").
	Signer      string       `json:"signer,omitempty"`
	Pinning     Pinning      `json:"pinning"`
	Connections int          `json:"connections"`
	Duration    string       `json:"window"`
	Warmup      string       `json:"warmup"`
	Rounds      int          `json:"rounds"`
	Summary     []Summary    `json:"summary"`
	Pairs       []PairResult `json:"pairs"`
	Notes       []string     `json:"notes,omitempty"`
}

func (r *runner) newReport() *Report {
	rep := &Report{
		Date:        time.Now().UTC().Format(time.RFC3339),
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		CPUs:        runtime.NumCPU(),
		Pinning:     r.pin,
		Connections: r.cfg.Workers,
		Duration:    r.cfg.Duration.String(),
		Warmup:      r.cfg.Warmup.String(),
		Rounds:      r.cfg.Rounds,
	}
	rep.Build, _ = BinaryFlags(r.cfg.CaddyBin)
	rep.CaddyVersion = caddyVersion(r.cfg.CaddyBin)
	return rep
}

func (rep *Report) pinningLine() string {
	p := rep.Pinning
	if !p.Pinned() {
		return "not pinned (" + p.NotPinned + "): every process on every CPU"
	}
	return fmt.Sprintf("pinned: Caddy, upstream, redis-server and the signing bound on CPU %s; load generator on CPU %s",
		cpuString(p.Server), cpuString(p.Load))
}

func cpuString(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, ",")
}

// summarize computes the spreads over rounds and collects the notes on
// anything that makes a figure less than it seems.
func (rep *Report) summarize() {
	var order []string
	by := map[string][]PairResult{}
	for _, p := range rep.Pairs {
		if _, ok := by[p.Path]; !ok {
			order = append(order, p.Path)
		}
		by[p.Path] = append(by[p.Path], p)
	}
	for _, name := range order {
		ps := by[name]
		f := func(get func(PairResult) float64) Spread {
			vs := make([]float64, 0, len(ps))
			for _, p := range ps {
				vs = append(vs, get(p))
			}
			return spreadOf(vs)
		}
		path, _ := pathByName(name)
		mib := func(m *Measurement) float64 { return float64(m.PeakRSSKiB) / 1024 }
		s := Summary{
			Path: name, Baseline: ps[0].Baseline, About: path.About, Rounds: len(ps),
			Throughput:      f(func(p PairResult) float64 { return p.Throughput }),
			CPU:             f(func(p PairResult) float64 { return p.CPU }),
			PeakRSS:         f(func(p PairResult) float64 { return p.PeakRSS }),
			P99:             f(func(p PairResult) float64 { return p.P99 }),
			RPS:             f(func(p PairResult) float64 { return p.Gateway.RPS }),
			BaseRPS:         f(func(p PairResult) float64 { return p.Base.RPS }),
			CPUUs:           f(func(p PairResult) float64 { return p.Gateway.CaddyCPUUs }),
			BaseCPUUs:       f(func(p PairResult) float64 { return p.Base.CaddyCPUUs }),
			ServerCPUUs:     f(func(p PairResult) float64 { return p.Gateway.ServerCPUUs }),
			BaseServerCPUUs: f(func(p PairResult) float64 { return p.Base.ServerCPUUs }),
			PeakMiB:         f(func(p PairResult) float64 { return mib(p.Gateway) }),
			BasePeakMiB:     f(func(p PairResult) float64 { return mib(p.Base) }),
			P50Ms:           f(func(p PairResult) float64 { return p.Gateway.P50Ms }),
			P99Ms:           f(func(p PairResult) float64 { return p.Gateway.P99Ms }),
			BaseP99Ms:       f(func(p PairResult) float64 { return p.Base.P99Ms }),
		}
		if ps[0].GatewayHalf != nil {
			h := f(func(p PairResult) float64 { return p.P99Half })
			rps := f(func(p PairResult) float64 { return p.HalfRPS })
			gw := f(func(p PairResult) float64 { return p.GatewayHalf.P99Ms })
			base := f(func(p PairResult) float64 { return p.BaseHalf.P99Ms })
			s.P99Half, s.HalfRPS, s.P99HalfMs, s.BaseP99HalfMs = &h, &rps, &gw, &base
		}
		if ps[0].SigningBound > 0 {
			b := f(func(p PairResult) float64 { return p.SigningBound })
			v := f(func(p PairResult) float64 { return p.VsSignBound })
			s.SignBound, s.VsSignBound = &b, &v
		}
		rep.Summary = append(rep.Summary, s)
	}

	if !rep.Pinning.Pinned() {
		rep.Notes = append(rep.Notes, "processes were not pinned ("+rep.Pinning.NotPinned+"): Caddy and the load generator competed for the same CPUs")
	}
	if rep.Build.Race {
		rep.Notes = append(rep.Notes, "the Caddy binary was built with -race: the figures say nothing about speed")
	}
	for _, p := range rep.Pairs {
		for _, m := range []*Measurement{p.Base, p.Gateway, p.BaseHalf, p.GatewayHalf} {
			if m != nil {
				rep.Notes = append(rep.Notes, m.notes()...)
			}
		}
	}
}

// quietCPUPercent is how much of the machine's CPU other processes may use
// in a window before the report calls it noisy.
const quietCPUPercent = 5

// notes says what makes this window's figures less than they seem.
func (m *Measurement) notes() []string {
	at := fmt.Sprintf("round %d, %s pair, %s %s", m.Round, m.Pair, m.Path, m.Load)
	var out []string
	if m.Errors > 0 {
		kinds := slices.Sorted(maps.Keys(m.ErrorKinds))
		out = append(out, fmt.Sprintf("%s: %d errors (%s), e.g. %s", at, m.Errors, strings.Join(kinds, ", "), m.ErrorSample))
	}
	if m.PoolExhausted {
		out = append(out, fmt.Sprintf("%s: all %d prepared requests sent after %.1fs, the window ended early", at, m.Pool, m.Seconds))
	}
	if m.UpstreamMismatch {
		out = append(out, fmt.Sprintf("%s: the upstream was called %d times for %d answers: not the path it claims", at, m.UpstreamCalls, m.Requests))
	}
	if !m.PeakRSSReset {
		out = append(out, fmt.Sprintf("%s: peak RSS could not be reset; it is the peak since Caddy started", at))
	}
	if m.OtherCPUPercent > quietCPUPercent {
		out = append(out, fmt.Sprintf("%s: %.0f%% of the machine's CPU went to other processes", at, m.OtherCPUPercent))
	}
	if m.LoadCPUPercent > 90 {
		out = append(out, fmt.Sprintf("%s: the load generator kept its CPUs %.0f%% busy, the rate may be its limit", at, m.LoadCPUPercent))
	}
	if m.Load == LoadHalf {
		if n := m.Requests + m.Errors; n > 0 && float64(m.Late) > 0.01*float64(n) {
			out = append(out, fmt.Sprintf("%s: %d of %d requests went out more than 1ms late", at, m.Late, n))
		}
		if m.RPS < 0.95*m.TargetRPS {
			out = append(out, fmt.Sprintf("%s: %.0f req/s answered of %.0f offered", at, m.RPS, m.TargetRPS))
		}
	}
	return out
}

func fmtSpread(s Spread, format string) string {
	v := fmt.Sprintf(format, s.Median)
	if s.Min == s.Max {
		return v
	}
	return fmt.Sprintf("%s ("+format+"–"+format+")", v, s.Min, s.Max)
}

// Markdown writes the ratio table, the absolute figures and the notes.
func (rep *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	build := ""
	if rep.Build.Tags != "" {
		build = ", -tags " + rep.Build.Tags
	}
	if rep.Build.Race {
		build += ", -race"
	}
	signer := ""
	if rep.Signer != "" {
		signer = ", signer " + rep.Signer
	}
	fmt.Fprintf(&b, "Caddy %s%s%s; %s %s/%s, %d CPUs; %s.\n", rep.CaddyVersion, build, signer, rep.GoVersion, rep.OS, rep.Arch, rep.CPUs, rep.pinningLine())
	fmt.Fprintf(&b, "%d connections; %d round(s), each path next to its baseline, every window %s after %s of warm-up in a fresh Caddy; %s.\n",
		rep.Connections, rep.Rounds, rep.Duration, rep.Warmup, rep.Date)
	b.WriteString("Cells: median over rounds (min–max). Ratios are path ÷ baseline within a round.\n\n")

	b.WriteString("| path | vs | req/s | Caddy CPU per request | peak RSS | p99 at half load | req/s vs signing bound |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Summary {
		half, bound := "—", "—"
		if s.P99Half != nil {
			half = fmtSpread(*s.P99Half, "%.2f×") + fmt.Sprintf(" at %.0f req/s", s.HalfRPS.Median)
		}
		if s.VsSignBound != nil {
			bound = fmtSpread(*s.VsSignBound, "%.2f×") + fmt.Sprintf(" of %.0f/s", s.SignBound.Median)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s (%.0f vs %.0f µs) | %s | %s | %s |\n",
			s.Path, s.Baseline, fmtSpread(s.Throughput, "%.2f×"), fmtSpread(s.CPU, "%.2f×"), s.CPUUs.Median, s.BaseCPUUs.Median,
			fmtSpread(s.PeakRSS, "%.2f×"), half, bound)
	}

	b.WriteString("\n| path | req/s | p50 ms | p99 ms | p99 ms at half load | Caddy CPU µs/req | server CPU µs/req | peak RSS MiB |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rep.Summary {
		half, baseHalf := "—", "—"
		if s.P99Half != nil {
			half, baseHalf = fmtSpread(*s.P99HalfMs, "%.2f"), fmtSpread(*s.BaseP99HalfMs, "%.2f")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Path,
			fmtSpread(s.RPS, "%.0f"), fmtSpread(s.P50Ms, "%.2f"), fmtSpread(s.P99Ms, "%.2f"), half,
			fmtSpread(s.CPUUs, "%.0f"), fmtSpread(s.ServerCPUUs, "%.0f"), fmtSpread(s.PeakMiB, "%.1f"))
		fmt.Fprintf(&b, "| ↳ its %s | %s | | %s | %s | %s | %s | %s |\n", s.Baseline,
			fmtSpread(s.BaseRPS, "%.0f"), fmtSpread(s.BaseP99Ms, "%.2f"), baseHalf,
			fmtSpread(s.BaseCPUUs, "%.0f"), fmtSpread(s.BaseServerCPUUs, "%.0f"), fmtSpread(s.BasePeakMiB, "%.1f"))
	}
	b.WriteString("\n")
	for _, s := range rep.Summary {
		fmt.Fprintf(&b, "- **%s**: %s\n", s.Path, s.About)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the report, every window included, as indented JSON.
func (rep *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
