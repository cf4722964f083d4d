// Package bench measures the alipay_order_sync gateway against bare Caddy
// reverse_proxy to the same upstream, in the same run, so results are read
// as ratios rather than absolute numbers that only mean something on the
// machine that made them.
//
// Run (the front end is bench/loadtest) measures every Path next to its
// baseline, round after round: each window in a fresh Caddy process with
// an empty store, Caddy and its upstream pinned to some CPUs and the load
// generator to the others, at saturation (closed loop) and at half load
// (open loop). It reports req/s, p50/p99, Caddy CPU per request, peak RSS,
// the ratios to the baseline and, for signed replies, to the signing bound.
// Stages and RunStages (front end bench/stages) collect the go test
// benchmarks of every stage of a request into one table.
//
// Everything is sent to 127.0.0.1 only.
package bench
