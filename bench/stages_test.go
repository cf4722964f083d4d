package bench

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestStagesExist keeps Stages in step with the code: every listed package
// exists and holds a benchmark matching its pattern. It reads the sources
// instead of running go test, so it costs milliseconds, and a rename of a
// package or a benchmark fails here rather than leaving a hole in the
// table.
func TestStagesExist(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Stages {
		re, err := regexp.Compile(s.Bench)
		if err != nil || strings.Contains(s.Bench, "/") {
			t.Errorf("stage %s: %q is not a regexp of top-level benchmark names", s.Name, s.Bench)
			continue
		}
		names, err := benchmarksIn(filepath.Join(root, s.Package))
		if err != nil {
			t.Errorf("stage %s: package %s: %v", s.Name, s.Package, err)
			continue
		}
		found := false
		for _, n := range names {
			found = found || re.MatchString(n)
		}
		if !found {
			t.Errorf("stage %s: no benchmark in %s matches %s (found %v); update bench.Stages", s.Name, s.Package, s.Bench, names)
		}
	}
}

// benchmarksIn lists the Benchmark functions of the _test.go files in dir.
func benchmarksIn(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Benchmark") {
				names = append(names, fd.Name.Name)
			}
		}
	}
	return names, nil
}

// TestParseBench reads go test output as go test prints it, including
// custom metrics, -count repeats and skips.
func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
pkg: github.com/caddy-alipay/ordersync/store/bboltstore
BenchmarkStore/Transition/1writer-2         	     194	   6144908 ns/op	       162.7 transitions/s	   16669 B/op	     156 allocs/op
BenchmarkStore/Transition/1writer-2         	     194	   5000000 ns/op	       200.0 transitions/s	   16669 B/op	     156 allocs/op
BenchmarkStore/Transition/1writer-2         	     194	   7000000 ns/op	       142.8 transitions/s	   16669 B/op	     156 allocs/op
BenchmarkDecode-2   	  133286	      9072 ns/op	  48.50 MB/s	    2168 B/op	      18 allocs/op
--- SKIP: BenchmarkRedis
    conformance_test.go:12: redis-server not installed
PASS
`)
	lines, skips := parseBench(out)
	if skips != "conformance_test.go:12: redis-server not installed" {
		t.Errorf("skips = %q", skips)
	}
	ms := medians(lines)
	if len(ms) != 2 {
		t.Fatalf("got %d benchmarks, want 2: %+v", len(ms), ms)
	}
	st := ms[0].result
	if ms[0].name != "BenchmarkStore/Transition/1writer" || st.Benchmark != "Store/Transition/1writer" ||
		st.NsPerOp != 6144908 || st.BytesOp != 16669 || st.AllocsOp != 156 ||
		len(st.Extra) != 1 || st.Extra[0] != "162.7 transitions/s" {
		t.Errorf("median of three = %+v", ms[0])
	}
	if d := ms[1].result; d.NsPerOp != 9072 || d.AllocsOp != 18 || len(d.Extra) != 0 {
		t.Errorf("Decode = %+v", d)
	}
	if got := groupDigits(1311436); got != "1,311,436" {
		t.Errorf("groupDigits = %q", got)
	}
}
