// Command loadtest measures the alipay_order_sync gateway against bare Caddy
// reverse_proxy to the same upstream, in one interleaved run, and prints the
// ratios and the figures as markdown:
//
//	go run ./bench/loadtest                     # 3 rounds, 32 connections, 10s windows
//	go run ./bench/loadtest -rounds 1 -duration 2s -paths first-time-unsigned
//	go run ./bench/loadtest -tags openssl -out results.json
//
// Every path is measured next to its baseline, each window in a fresh
// Caddy process pinned to its own CPUs. Traffic goes to 127.0.0.1 only.
// See bench/README.md for the method.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddy-alipay/ordersync/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		caddyBin   = flag.String("caddy", "", "Caddy binary with this module; default: go build ./cmd/caddy (with -tags) into a temp dir")
		tags       = flag.String("tags", "", "build tags for ./cmd/caddy, e.g. openssl; with -caddy, read from the binary")
		conns      = flag.Int("connections", 32, "connections of the saturating load (and at most of the half load)")
		duration   = flag.Duration("duration", 10*time.Second, "measured time of each window")
		warmup     = flag.Duration("warmup", 0, "untimed load before each window; 0: duration/10 within [100ms, 2s]")
		rounds     = flag.Int("rounds", 3, "how often each path is measured next to its baseline")
		paths      = flag.String("paths", strings.Join(bench.PathNames(), ","), "comma-separated paths to measure, each against its baseline")
		pool       = flag.Int("pool", 0, "cap on the requests of one window for paths that never repeat one; 0: sized from the rates measured")
		halfLoad   = flag.Bool("half-load", true, "also measure p99 at half of the saturating load (open loop)")
		bound      = flag.Duration("bound-duration", 2*time.Second, "how long the signing bound signs")
		pin        = flag.Bool("pin", true, "pin Caddy and its upstream to some CPUs and the load generator to the others")
		serverCPUs = flag.String("server-cpus", "", "CPUs for Caddy, upstream and redis-server, e.g. 0 or 0-1; default the lower half")
		loadCPUs   = flag.String("load-cpus", "", "CPUs for the load generator; default the upper half")
		dataDir    = flag.String("data-dir", "", "where each window's bbolt file goes; default a temp dir (fsync cost depends on its disk)")
		profileDir = flag.String("cpuprofile", "", "directory for a CPU profile of Caddy over each saturating window (for reading, not for figures)")
		out        = flag.String("out", "", "also write the report, every window included, as JSON to this file")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	server, err := parseCPUs(*serverCPUs)
	if err != nil {
		return fmt.Errorf("-server-cpus: %w", err)
	}
	load, err := parseCPUs(*loadCPUs)
	if err != nil {
		return fmt.Errorf("-load-cpus: %w", err)
	}

	// Ctrl-C still stops every process and removes the temp files.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := bench.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ordersync-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	flags := bench.BuildFlags{Tags: *tags}
	bin := *caddyBin
	if bin == "" {
		fmt.Fprintf(os.Stderr, "building %s\n", bench.CaddyPackage)
		if bin, err = bench.Build(ctx, root, dir, bench.CaddyPackage, flags); err != nil {
			return err
		}
	} else if flags, err = bench.BinaryFlags(bin); err != nil {
		return fmt.Errorf("-caddy %s: %w", bin, err)
	}
	// The helper signs the signing bound: same tags, same signer as Caddy.
	helper, err := bench.Build(ctx, root, dir, bench.HelperPackage, bench.BuildFlags{Tags: flags.Tags})
	if err != nil {
		return err
	}

	rep, err := bench.Run(ctx, bench.Config{
		CaddyBin:      bin,
		HelperBin:     helper,
		RepoRoot:      root,
		DataDir:       *dataDir,
		Workers:       *conns,
		Duration:      *duration,
		Warmup:        *warmup,
		Rounds:        *rounds,
		Paths:         strings.FieldsFunc(*paths, func(r rune) bool { return r == ',' || r == ' ' }),
		Pool:          *pool,
		SkipHalfLoad:  !*halfLoad,
		BoundDuration: *bound,
		NoPin:         !*pin,
		ServerCPUs:    server,
		LoadCPUs:      load,
		ProfileDir:    *profileDir,
		Progress:      os.Stderr,
	})
	if err != nil {
		return err
	}
	if err := rep.Markdown(os.Stdout); err != nil {
		return err
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := rep.JSON(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

// parseCPUs reads a CPU list such as "0", "0-1" or "0,2-3".
func parseCPUs(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q is not a CPU list like 0,2-3", s)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}
