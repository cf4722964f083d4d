package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// BenchWriters is the number of concurrent writers of the */32writers
// benchmarks: about what one busy gateway instance has in flight (the
// load run's 32 connections).
const BenchWriters = 32

// Counters may be implemented by the store.Backend a benchmark is given,
// to report what the store did besides taking time: Bench reports the
// growth of every counter per operation, as "<unit>/op". Backends' tests
// implement it on a wrapper, so that production types carry no
// benchmark-only methods.
type Counters interface {
	// BenchCounters returns cumulative counts by unit, e.g. "fsyncs",
	// "pages" (written), "redis-cmds". Units never change between calls.
	BenchCounters() map[string]float64
}

// Bench runs the shared store benchmarks as sub-benchmarks of b:
//
//   - FirstTime/1writer and FirstTime/32writers: the first-time path as
//     the handler runs it (Claim of a new requestId, LockOrder of a new
//     order, GetOrder, Commit, unlock), by one writer or by BenchWriters
//     writers. Each operation is a new order. Reported as transitions/s.
//   - FirstTimeClaimOrder/*: the same through Store.ClaimOrder (claim,
//     lock and read in one call) and a Commit that unlocks: one round
//     trip each on a backend that can (Redis).
//   - Transition/1writer and Transition/32writers: the same on an order
//     that already exists: each writer advances its own order, one status
//     per operation.
//   - Replay: Claim of a finished request (the Done path), from
//     GOMAXPROCS goroutines. Reported as replays/s.
//
// Every benchmark also reports the process's CPU time per operation
// (cpu-µs/op, user and system, where the OS tells it: figures that owe
// little to how busy the machine is), and the backend's Counters if it
// has them.
//
// newStore is called once per sub-benchmark run and must arrange for the
// store to be closed (b.Cleanup). Keys are unique per run, so stores may
// share a backend.
func Bench(b *testing.B, newStore func(b *testing.B) store.Backend) {
	for _, path := range []struct {
		name string
		op   func(ctx context.Context, s *store.Store, okey store.OrderKey, seq int) error
	}{
		{"FirstTime", benchFirstTime},
		{"FirstTimeClaimOrder", benchFirstTimeClaimOrder},
		{"Transition", benchTransition},
	} {
		for _, writers := range []int{1, BenchWriters} {
			name := fmt.Sprintf("%s/%dwriters", path.name, writers)
			if writers == 1 {
				name = path.name + "/1writer"
			}
			b.Run(name, func(b *testing.B) { benchWriters(b, newStore(b), writers, path.op) })
		}
	}
	b.Run("Replay", func(b *testing.B) { benchReplay(b, newStore(b)) })
}

// BenchFirstTime runs the FirstTime benchmark of Bench on s alone, with
// the given number of writers: for a backend's own benchmarks of a store
// in a particular state.
func BenchFirstTime(b *testing.B, s store.Backend, writers int) {
	benchWriters(b, s, writers, benchFirstTime)
}

// benchWriters runs op b.N times, spread over writers goroutines, each on
// an order key of its own (through store.Store, whose unlocks run in the
// background, as the handler uses it).
func benchWriters(b *testing.B, backend store.Backend, writers int, op func(context.Context, *store.Store, store.OrderKey, int) error) {
	s := store.New(backend, store.Options{})
	ids := newIDSource(b)
	ctx := context.Background()
	var next atomic.Int64 // operations handed out so far
	var failed firstError
	var wg sync.WaitGroup
	m := startMeter(backend)
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	for w := range writers {
		okey := store.OrderKey{ClientID: ids.prefix, MerchantBizNo: fmt.Sprintf("bench-order-%d", w)}
		wg.Go(func() {
			for seq := 0; next.Add(1) <= int64(b.N); seq++ {
				if err := op(ctx, s, okey, seq); err != nil {
					failed.set(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	s.Wait()
	if err := failed.get(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transitions/s")
	m.report(b)
}

// benchFirstTime is one first-time sync: a new requestId for a new order
// (the writer's order key with seq appended), in the handler's order.
func benchFirstTime(ctx context.Context, s *store.Store, wkey store.OrderKey, seq int) error {
	okey := store.OrderKey{ClientID: wkey.ClientID, MerchantBizNo: fmt.Sprintf("%s-%d", wkey.MerchantBizNo, seq)}
	rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: okey.MerchantBizNo}
	return benchCommit(ctx, s, okey, rkey, seq)
}

// benchFirstTimeClaimOrder is benchFirstTime through Store.ClaimOrder.
func benchFirstTimeClaimOrder(ctx context.Context, s *store.Store, wkey store.OrderKey, seq int) error {
	okey := store.OrderKey{ClientID: wkey.ClientID, MerchantBizNo: fmt.Sprintf("%s-%d", wkey.MerchantBizNo, seq)}
	rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: okey.MerchantBizNo}
	claim, err := s.ClaimOrder(ctx, rkey, bodyA, okey, longLease)
	if err != nil {
		return fmt.Errorf("ClaimOrder: %w", err)
	}
	defer claim.Release()
	if claim.Status != store.Claimed {
		return fmt.Errorf("ClaimOrder of a fresh requestId = %s", claim.Status)
	}
	next := sampleOrder(fmt.Sprint("S", seq), int64(seq), rkey.RequestID)
	if err := claim.Commit(ctx, store.OrderChange{Key: okey, Prev: claim.Order, Next: next}, benchReply, longTTL); err != nil {
		return fmt.Errorf("Commit: %w", err)
	}
	return nil
}

// benchTransition advances the writer's own order by one status.
func benchTransition(ctx context.Context, s *store.Store, okey store.OrderKey, seq int) error {
	rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: fmt.Sprintf("%s-%d", okey.MerchantBizNo, seq)}
	return benchCommit(ctx, s, okey, rkey, seq)
}

// benchCommit is the store's part of an accepted request, as the handler
// calls it: claim, lock, read, commit, unlock.
func benchCommit(ctx context.Context, s *store.Store, okey store.OrderKey, rkey store.RequestKey, seq int) error {
	claim, err := s.Claim(ctx, rkey, bodyA, longLease)
	if err != nil {
		return fmt.Errorf("Claim: %w", err)
	}
	defer claim.Release()
	if claim.Status != store.Claimed {
		return fmt.Errorf("Claim of a fresh requestId = %s", claim.Status)
	}
	if err := claim.LockOrder(ctx, okey, longLease); err != nil {
		return fmt.Errorf("LockOrder: %w", err)
	}
	prev, err := s.GetOrder(ctx, okey)
	if err != nil {
		return fmt.Errorf("GetOrder: %w", err)
	}
	next := sampleOrder(fmt.Sprint("S", seq), int64(seq), rkey.RequestID)
	if err := claim.Commit(ctx, store.OrderChange{Key: okey, Prev: prev, Next: next}, benchReply, longTTL); err != nil {
		return fmt.Errorf("Commit: %w", err)
	}
	return nil
}

// benchReply is about the size of a real signed envelope.
var benchReply = sampleReply("bench")

// benchReplay spreads the replays over a few finished requests so that a
// backend with per-key contention is not flattered or punished by one key.
func benchReplay(b *testing.B, s store.Backend) {
	const keys = 64
	ids := newIDSource(b)
	ctx := context.Background()
	rkeys := make([]store.RequestKey, keys)
	for i := range rkeys {
		rkeys[i] = store.RequestKey{ClientID: ids.prefix, RequestID: fmt.Sprint("replay-", i)}
		tok := token()
		res, err := s.Claim(ctx, rkeys[i], bodyA, tok, longLease)
		if err != nil || res.Status != store.Claimed {
			b.Fatalf("Claim: %v, %v", res.Status, err)
		}
		if err := s.Finish(ctx, rkeys[i], tok, benchReply, longTTL); err != nil {
			b.Fatalf("Finish: %v", err)
		}
	}
	var failed firstError
	var n atomic.Int64
	m := startMeter(s)
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1))
		for pb.Next() {
			i++
			res, err := s.Claim(ctx, rkeys[i%keys], bodyA, token(), longLease)
			if err == nil && res.Status != store.Done {
				err = fmt.Errorf("Claim of a finished request = %s", res.Status)
			}
			if err != nil {
				failed.set(err)
				return
			}
		}
	})
	elapsed := time.Since(began)
	b.StopTimer()
	if err := failed.get(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "replays/s")
	m.report(b)
}

// meter reads the process's CPU time and the backend's counters at the
// start of a benchmark, to report their growth per operation.
type meter struct {
	cpu      time.Duration
	cpuOK    bool
	counters Counters
	start    map[string]float64
}

func startMeter(s store.Backend) *meter {
	m := &meter{}
	if c, ok := s.(Counters); ok {
		m.counters, m.start = c, c.BenchCounters()
	}
	m.cpu, m.cpuOK = processCPU()
	return m
}

// report adds the per-operation metrics to b. Call it once the timed
// work (and nothing else) has run since startMeter.
func (m *meter) report(b *testing.B) {
	if cpu, ok := processCPU(); ok && m.cpuOK {
		b.ReportMetric(float64(cpu-m.cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	if m.counters == nil {
		return
	}
	for unit, v := range m.counters.BenchCounters() {
		b.ReportMetric((v-m.start[unit])/float64(b.N), unit+"/op")
	}
}

// firstError keeps the first error reported by concurrent workers.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
