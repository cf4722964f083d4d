package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A Stage is one step of a request with the go test benchmarks that
// measure it.
type Stage struct {
	// Name is the stage as the table shows it.
	Name string
	// Package is the directory of the benchmarks, relative to the module
	// root ("." for the root package).
	Package string
	// Bench matches the names of the top-level benchmarks, e.g.
	// "^BenchmarkVerify$"; every sub-benchmark of a match is reported.
	Bench string
}

// Stages is the one list of stage benchmarks, in pipeline order. When a
// package or a benchmark is renamed or moves (internal/orderflow, the one
// decode), change it here; TestStagesExist fails until it matches the
// code again.
var Stages = []Stage{
	{"verify", "signature", "^BenchmarkVerify$"},
	{"decode+validate", "message", "^Benchmark(Decode|Request)$"},
	{"decode+validate", "schema", "^BenchmarkValidateBase$"},
	{"decode+validate", "scenario", "^Benchmark(Match|ValidateGiftCard)$"},
	{"decode+validate+normalize", "message", "^BenchmarkDecodeValidateNormalize$"},
	{"normalize", "message", "^BenchmarkNormalize$"},
	{"state machine", "scenario", "^BenchmarkDecide$"},
	{"forward glue", ".", "^BenchmarkForward$"},
	{"map reply", "internal/orderflow", "^BenchmarkMapReply$"},
	{"envelope+sign", "internal/orderflow", "^BenchmarkReply$"},
	{"envelope+sign", "signature", "^BenchmarkSign(Parallel)?$"},
	{"store claim/commit (bbolt)", "store/bboltstore", "^BenchmarkStore$"},
	{"store claim/commit, aged file (bbolt)", "store/bboltstore", "^BenchmarkAgedFile$"},
	{"store claim/commit (Redis)", "store/redisstore", "^BenchmarkStore$"},
	{"outbox enqueue/complete (bbolt)", "store/bboltstore", "^BenchmarkOutbox$"},
	{"outbox enqueue/complete (Redis)", "store/redisstore", "^BenchmarkOutbox$"},
	{"whole ingress flow without RSA (bbolt)", "internal/orderflow", "^BenchmarkServe$"},
	{"whole ingress handler without RSA (bbolt)", ".", "^BenchmarkServeHTTP$"},
}

// StageOptions are the go test flags of a stage run.
type StageOptions struct {
	Benchtime string // -benchtime; "" is go test's default (1s)
	Count     int    // -count; 0 is 1
	Tags      string // -tags, e.g. openssl
	// Progress receives the go test commands as they run; nil discards.
	Progress io.Writer
}

// StageResult is one benchmark line of one stage.
type StageResult struct {
	Stage     string
	Package   string
	Benchmark string // without the Benchmark prefix and the -GOMAXPROCS suffix
	NsPerOp   float64
	BytesOp   float64
	AllocsOp  float64
	Extra     []string // other metrics as printed, e.g. "1234 transitions/s"
	// Missing says why a stage has no figures (package gone, no match,
	// skipped); the other fields are then empty.
	Missing string
}

// RunStages runs the stages' benchmarks, one go test per package, and
// returns a row per benchmark, in the order of stages. A stage whose
// package or benchmarks are missing gets a row saying so, not an error.
func RunStages(ctx context.Context, root string, stages []Stage, opt StageOptions) ([]StageResult, error) {
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	var pkgs []string
	for _, s := range stages {
		if _, err := regexp.Compile(s.Bench); err != nil || strings.Contains(s.Bench, "/") {
			return nil, fmt.Errorf("stage %s: %q must be a regexp of top-level benchmark names", s.Name, s.Bench)
		}
		if !slices.Contains(pkgs, s.Package) {
			pkgs = append(pkgs, s.Package)
		}
	}
	lines := map[string][]benchLine{}
	why := map[string]string{}
	for _, pkg := range pkgs {
		if st, err := os.Stat(filepath.Join(root, pkg)); err != nil || !st.IsDir() {
			why[pkg] = "package " + pkg + " not found"
			continue
		}
		var pats []string
		for _, s := range stages {
			if s.Package == pkg {
				pats = append(pats, "(?:"+s.Bench+")")
			}
		}
		args := []string{"test", "-run", "^$", "-bench", strings.Join(pats, "|"), "-benchmem"}
		if opt.Benchtime != "" {
			args = append(args, "-benchtime", opt.Benchtime)
		}
		if opt.Count > 1 {
			args = append(args, "-count", strconv.Itoa(opt.Count))
		}
		if opt.Tags != "" {
			args = append(args, "-tags", opt.Tags)
		}
		args = append(args, "./"+filepath.ToSlash(filepath.Clean(pkg)))
		fmt.Fprintf(opt.Progress, "go %s\n", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ls, skips := parseBench(out)
		lines[pkg] = ls
		switch {
		case err != nil:
			why[pkg] = fmt.Sprintf("go test failed: %v: %s", err, lastLines(out, 5))
		case len(ls) == 0 && skips != "":
			why[pkg] = "skipped: " + skips
		}
	}

	var res []StageResult
	for _, s := range stages {
		re := regexp.MustCompile(s.Bench)
		n := len(res)
		for _, l := range medians(lines[s.Package]) {
			top, _, _ := strings.Cut(l.name, "/")
			if re.MatchString(top) {
				r := l.result
				r.Stage, r.Package = s.Name, s.Package
				res = append(res, r)
			}
		}
		if len(res) == n {
			m := why[s.Package]
			if m == "" {
				m = "no benchmark matches " + s.Bench
			}
			res = append(res, StageResult{Stage: s.Name, Package: s.Package, Benchmark: s.Bench, Missing: m})
		}
	}
	return res, nil
}

type benchLine struct {
	name   string // full name with Benchmark prefix, without -N
	result StageResult
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads go test -bench output: one benchLine per result line,
// and the reasons of skipped benchmarks.
func parseBench(out []byte) (lines []benchLine, skips string) {
	s := bufio.NewScanner(bytes.NewReader(out))
	var skipped []string
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) >= 2 && f[0] == "---" && f[1] == "SKIP:" && s.Scan() {
			skipped = append(skipped, strings.TrimSpace(s.Text()))
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		r := StageResult{Benchmark: strings.TrimPrefix(name, "Benchmark")}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			switch f[i+1] {
			case "ns/op":
				r.NsPerOp = v
			case "B/op":
				r.BytesOp = v
			case "allocs/op":
				r.AllocsOp = v
			case "MB/s":
				// throughput of SetBytes; ns/op says the same
			default:
				r.Extra = append(r.Extra, f[i]+" "+f[i+1])
			}
		}
		lines = append(lines, benchLine{name: name, result: r})
	}
	return lines, strings.Join(slices.Compact(skipped), "; ")
}

// medians folds the lines of a -count run into one per benchmark: the one
// with the median ns/op, in first-seen order.
func medians(ls []benchLine) []benchLine {
	var order []string
	by := map[string][]benchLine{}
	for _, l := range ls {
		if _, ok := by[l.name]; !ok {
			order = append(order, l.name)
		}
		by[l.name] = append(by[l.name], l)
	}
	out := make([]benchLine, 0, len(order))
	for _, name := range order {
		g := by[name]
		slices.SortStableFunc(g, func(a, b benchLine) int {
			switch {
			case a.result.NsPerOp < b.result.NsPerOp:
				return -1
			case a.result.NsPerOp > b.result.NsPerOp:
				return 1
			}
			return 0
		})
		out = append(out, g[len(g)/2])
	}
	return out
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], " | ")
}

// StagesMarkdown writes the results as a table.
func StagesMarkdown(w io.Writer, res []StageResult) error {
	var b strings.Builder
	b.WriteString("| stage | package | benchmark | ns/op | B/op | allocs/op | other |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---|\n")
	for _, r := range res {
		pkg := r.Package
		if pkg == "." {
			pkg = "(root)"
		}
		if r.Missing != "" {
			fmt.Fprintf(&b, "| %s | %s | `%s` | — | — | — | %s |\n", r.Stage, pkg, r.Benchmark, r.Missing)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Stage, pkg, r.Benchmark,
			groupDigits(r.NsPerOp), groupDigits(r.BytesOp), groupDigits(r.AllocsOp), strings.Join(r.Extra, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// groupDigits prints a figure rounded to an integer, with thin thousands
// separators so that 1311436 ns/op reads at a glance.
func groupDigits(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	if v < 10 && v != float64(int64(v)) {
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
