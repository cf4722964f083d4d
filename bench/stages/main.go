// Command stages runs the go test benchmark of every stage of a request
// (verify, decode and validate, normalize, forward glue, reply mapping,
// envelope and signature, the stores on bbolt and Redis) and prints them
// as one markdown table with allocs/op:
//
//	go run ./bench/stages
//	go run ./bench/stages -benchtime 2s -count 5 -stage verify,envelope+sign
//
// The benchmarks live next to their code; bench.Stages lists where. See
// bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"

	"github.com/caddy-alipay/ordersync/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stages:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		benchtime = flag.String("benchtime", "", "go test -benchtime (default go test's 1s)")
		count     = flag.Int("count", 1, "go test -count; with more than 1, each row is the run with the median ns/op")
		tags      = flag.String("tags", "", "go test -tags, e.g. openssl")
		only      = flag.String("stage", "", "comma-separated stage names to run; default all")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, err := bench.RepoRoot()
	if err != nil {
		return err
	}
	stages := bench.Stages
	if *only != "" {
		want := strings.Split(*only, ",")
		stages = slices.DeleteFunc(slices.Clone(stages), func(s bench.Stage) bool { return !slices.Contains(want, s.Name) })
		if len(stages) == 0 {
			return fmt.Errorf("no stage named %q", *only)
		}
	}
	res, err := bench.RunStages(ctx, root, stages, bench.StageOptions{Benchtime: *benchtime, Count: *count, Tags: *tags, Progress: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("`go run ./bench/stages%s`, %s %s/%s, %d CPUs\n\n", flagsUsed(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if err := bench.StagesMarkdown(os.Stdout, res); err != nil {
		return err
	}
	for _, r := range res {
		if r.Missing != "" {
			return fmt.Errorf("some stages have no figures; see the table")
		}
	}
	return nil
}

// flagsUsed repeats the flags given, so the table says what produced it.
func flagsUsed() string {
	var b strings.Builder
	flag.Visit(func(f *flag.Flag) { fmt.Fprintf(&b, " -%s %s", f.Name, f.Value) })
	return b.String()
}
