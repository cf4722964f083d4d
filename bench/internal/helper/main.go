// Command helper runs the server-side processes of a bench/loadtest run
// that are not Caddy, so they can be pinned to Caddy's CPUs while the load
// generator runs elsewhere:
//
//	helper upstream                      # the backend both Caddy sites proxy to
//	helper signbound -key <pem> -duration 2s
//
// The load tool builds it with the build tags of the Caddy binary it
// measures, so "signbound" signs with the implementation that binary uses.
// Both roles exit when their standard input closes, so they never outlive
// the load tool.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// CallsPath answers the number of requests the upstream has served; the
// load tool reads it around each window to check the path taken.
const CallsPath = "/__bench/calls"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper upstream | helper signbound -key <pem> [-duration d]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = upstream()
	case "signbound":
		err = signbound(os.Args[2:])
	default:
		err = fmt.Errorf("unknown role %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
}

// upstream is the issuing backend: the cheapest possible success reply, so
// what is measured is Caddy and the gateway, not a backend.
func upstream() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CallsPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strconv.FormatInt(calls.Load(), 10))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		body := make([]byte, 0, 64)
		body = append(body, `{"orderId":"ORD-`...)
		body = strconv.AppendInt(body, n, 10)
		body = append(body, `","distributeResult":[]}`...)
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("listening %s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the load tool goes away
	return nil
}

// Bound is what signbound prints: signatures per second with every CPU
// this process may use, one goroutine per CPU.
type Bound struct {
	Backend    string  `json:"backend"`
	Procs      int     `json:"procs"`
	Signatures int64   `json:"signatures"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
}

// signbound prints "ready", waits for a line on stdin (the load tool pins
// the process meanwhile), signs for the given time and prints a Bound.
func signbound(args []string) error {
	fs := flag.NewFlagSet("signbound", flag.ContinueOnError)
	keyFile := fs.String("key", "", "PEM private key the gateway signs its replies with")
	d := fs.Duration("duration", 2*time.Second, "how long to sign")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	sign, backend, err := newSigner(pem)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return errors.New("stdin closed before the start signal")
	}

	procs := runtime.GOMAXPROCS(0)
	// A tenth of the time first, untimed, so every goroutine is running
	// and warm when the count starts.
	warm := *d / 10
	var (
		count    atomic.Int64
		counting atomic.Bool
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range procs {
		wg.Go(func() {
			for !stop.Load() {
				if err := sign(time.Now()); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				if counting.Load() {
					count.Add(1)
				}
			}
		})
	}
	time.Sleep(warm)
	counting.Store(true)
	began := time.Now()
	time.Sleep(*d)
	n := count.Load()
	elapsed := time.Since(began)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return json.NewEncoder(os.Stdout).Encode(Bound{
		Backend: backend, Procs: procs, Signatures: n,
		Seconds: elapsed.Seconds(), PerSecond: float64(n) / elapsed.Seconds(),
	})
}
