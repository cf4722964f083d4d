// Command loadtest measures the alipay_order_sync gateway against bare Caddy
// reverse_proxy in one run and prints the results and their ratios as
// markdown:
//
//	go run ./bench/loadtest                       # builds ./cmd/caddy, 16 workers, 10s per scenario
//	go run ./bench/loadtest -caddy ./caddy -workers 32 -duration 20s -out results.json
//
// It starts one Caddy with two loopback sites in front of an in-process
// upstream and sends traffic to 127.0.0.1 only. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
		caddyBin  = flag.String("caddy", "", "Caddy binary with this module; default: go build ./cmd/caddy into a temp dir")
		workers   = flag.Int("workers", 16, "concurrent workers (connections)")
		duration  = flag.Duration("duration", 10*time.Second, "timed window per scenario (at most "+bench.MaxDuration.String()+")")
		scenarios = flag.String("scenarios", strings.Join(bench.Scenarios, ","), "comma-separated scenarios to measure, in order")
		pool      = flag.Int("pool", 0, "requests to pre-sign for first-time and resend; 0: as many as can be signed in the window plus 10%")
		dataDir   = flag.String("data-dir", "", "directory for the gateway's orders.db; default a temp dir (fsync cost depends on its disk)")
		out       = flag.String("out", "", "also write the results as JSON to this file")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	// Ctrl-C still stops Caddy and removes the temp files.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := bench.RepoRoot()
	if err != nil {
		return err
	}
	bin := *caddyBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "ordersync-loadtest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "building ./cmd/caddy")
		if bin, err = bench.BuildCaddy(ctx, root, dir); err != nil {
			return err
		}
	}

	rep, err := bench.Run(ctx, bench.Config{
		CaddyBin:  bin,
		RepoRoot:  root,
		DataDir:   *dataDir,
		Workers:   *workers,
		Duration:  *duration,
		Scenarios: strings.FieldsFunc(*scenarios, func(r rune) bool { return r == ',' || r == ' ' }),
		Pool:      *pool,
		Progress:  os.Stderr,
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
