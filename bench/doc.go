// Package bench measures the alipay_order_sync gateway against bare Caddy
// reverse_proxy in the same run, so results are read as ratios rather than
// absolute numbers that only mean something on the machine that made them.
//
// Run starts one Caddy process (a binary built from ./cmd/caddy) with two
// loopback sites in front of one in-process upstream: a bare reverse_proxy
// and the gateway (alipay_order_sync with signature verification, signed
// replies and a bbolt store, then reverse_proxy). It then drives each
// scenario with concurrent workers for a fixed time and reports throughput,
// latency percentiles, errors, upstream calls and the Caddy process's peak
// resident memory. The command bench/loadtest is the front end; the tests
// in this package run the same code briefly and hold the Go benchmarks.
//
// Everything is sent to 127.0.0.1 only.
package bench
