package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Result is one scenario's measured window. Requests, the rate and the
// latencies count only answers that passed the scenario's check; the rest
// are Errors.
type Result struct {
	Scenario string `json:"scenario"`
	// Requests answered correctly in the window.
	Requests int64 `json:"requests"`
	// Errors are wrong answers and failed requests, by kind (a resultCode,
	// http_<status>, transport, …) in ErrorKinds, with one example.
	Errors      int64            `json:"errors"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
	ErrorSample string           `json:"error_sample,omitempty"`
	// Seconds is the window actually measured, including requests that
	// were in flight when it ended.
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	// CaddyCPUPerReqUs is the CPU time (user + system) the Caddy process
	// spent in the window per request. Driver, upstream and Caddy share the
	// machine's cores, so this travels between machines better than req/s.
	CaddyCPUPerReqUs float64 `json:"caddy_cpu_us_per_request"`
	// StartRSSKiB is the Caddy process's resident set when the window
	// opened: the Go runtime returns memory lazily, so it includes what
	// earlier scenarios left, and the peak is best read against it.
	StartRSSKiB int64 `json:"start_rss_kib"`
	// PeakRSSKiB is the Caddy process's VmHWM at the end of the window.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// UpstreamCalls is how often the upstream was called in the window:
	// one per request for bare and first-time, none for replay and resend.
	UpstreamCalls int64 `json:"upstream_calls"`
	// Presigned is the pool size of a scenario that never repeats a request.
	Presigned int `json:"presigned,omitempty"`
	// PoolExhausted means the pool ran out before the window ended, so the
	// window was shorter; the rate is still requests over Seconds.
	PoolExhausted bool `json:"pool_exhausted,omitempty"`
}

// Ratio compares a gateway scenario with bare reverse_proxy from the same
// run: throughput below 1 and latency above 1 are the gateway's cost.
type Ratio struct {
	Scenario   string  `json:"scenario"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_latency"`
	P99        float64 `json:"p99_latency"`
}

// Report is a whole run, with enough about the machine to read it later.
type Report struct {
	Date         string `json:"date"`
	GoVersion    string `json:"go_version"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	CPUs         int    `json:"cpus"`
	CaddyVersion string `json:"caddy_version"`
	Workers      int    `json:"workers"`
	Duration     string `json:"duration_per_scenario"`
	// PeakRSSPerScenario is false when VmHWM could not be reset between
	// windows; each peak is then the largest since Caddy started.
	PeakRSSPerScenario bool     `json:"peak_rss_per_scenario"`
	Results            []Result `json:"results"`
	Ratios             []Ratio  `json:"ratios_vs_bare,omitempty"`
}

func (rep *Report) computeRatios() {
	i := slices.IndexFunc(rep.Results, func(r Result) bool { return r.Scenario == ScenarioBare })
	if i < 0 {
		return
	}
	bare := rep.Results[i]
	for _, r := range rep.Results {
		if r.Scenario == ScenarioBare {
			continue
		}
		rep.Ratios = append(rep.Ratios, Ratio{
			Scenario:   r.Scenario,
			Throughput: ratio(r.RPS, bare.RPS),
			P50:        ratio(r.P50Ms, bare.P50Ms),
			P99:        ratio(r.P99Ms, bare.P99Ms),
		})
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Markdown writes the results table, the ratios against bare and a note for
// anything that makes a number less than it seems.
func (rep *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Caddy %s, %s %s/%s, %d CPUs, %d workers, %s per scenario, %s\n\n",
		rep.CaddyVersion, rep.GoVersion, rep.OS, rep.Arch, rep.CPUs, rep.Workers, rep.Duration, rep.Date)
	b.WriteString("| scenario | req/s | p50 ms | p90 ms | p99 ms | errors | upstream calls | Caddy CPU µs/req | RSS at start MiB | peak RSS MiB |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %.2f | %d | %d | %.0f | %.1f | %.1f |\n",
			r.Scenario, r.RPS, r.P50Ms, r.P90Ms, r.P99Ms, r.Errors, r.UpstreamCalls, r.CaddyCPUPerReqUs,
			float64(r.StartRSSKiB)/1024, float64(r.PeakRSSKiB)/1024)
	}
	if len(rep.Ratios) > 0 {
		b.WriteString("\n| vs bare | throughput | p50 latency | p99 latency |\n|---|---:|---:|---:|\n")
		for _, r := range rep.Ratios {
			fmt.Fprintf(&b, "| %s | %.2f× | %.2f× | %.2f× |\n", r.Scenario, r.Throughput, r.P50, r.P99)
		}
	}
	var notes []string
	if !rep.PeakRSSPerScenario {
		notes = append(notes, "peak RSS could not be reset between scenarios: each value is the peak since Caddy started")
	}
	for _, r := range rep.Results {
		if r.Errors > 0 {
			kinds := slices.Sorted(maps.Keys(r.ErrorKinds))
			notes = append(notes, fmt.Sprintf("%s: %d errors (%s), e.g. %s", r.Scenario, r.Errors, strings.Join(kinds, ", "), r.ErrorSample))
		}
		if r.PoolExhausted {
			notes = append(notes, fmt.Sprintf("%s: the %d pre-signed requests ran out after %.1fs; raise -pool for a full window", r.Scenario, r.Presigned, r.Seconds))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the report as indented JSON.
func (rep *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
