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

// BenchWriters is the number of concurrent writers of the
// Transition/32writers benchmark: about what one busy gateway instance has
// in flight.
const BenchWriters = 32

// Bench runs the shared store benchmarks as sub-benchmarks of b:
//
//   - Transition/1writer and Transition/32writers: one accepted state
//     change as the handler makes it (LockOrder, GetOrder, Claim,
//     CommitSuccess, unlock), by one writer or by BenchWriters writers on
//     distinct orders. Reported as transitions/s.
//   - Replay: Claim of a finished request (the Done path), from
//     GOMAXPROCS goroutines. Reported as replays/s.
//
// newStore is called once per sub-benchmark run and must arrange for the
// store to be closed (b.Cleanup). Keys are unique per run, so stores may
// share a backend.
func Bench(b *testing.B, newStore func(b *testing.B) store.Backend) {
	b.Run("Transition/1writer", func(b *testing.B) { benchTransitions(b, newStore(b), 1) })
	b.Run(fmt.Sprintf("Transition/%dwriters", BenchWriters), func(b *testing.B) {
		benchTransitions(b, newStore(b), BenchWriters)
	})
	b.Run("Replay", func(b *testing.B) { benchReplay(b, newStore(b)) })
}

// benchTransitions has each writer advance its own order, one status per
// operation, as the handler would on a stream of order syncs (through
// store.Store, whose unlocks run in the background).
func benchTransitions(b *testing.B, backend store.Backend, writers int) {
	s := store.New(backend, store.Options{})
	ids := newIDSource(b)
	ctx := context.Background()
	var next atomic.Int64 // operations handed out so far
	var failed firstError
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	began := time.Now()
	for w := range writers {
		okey := store.OrderKey{ClientID: ids.prefix, MerchantBizNo: fmt.Sprintf("bench-order-%d", w)}
		wg.Go(func() {
			for seq := 0; next.Add(1) <= int64(b.N); seq++ {
				if err := benchTransition(ctx, s, okey, seq); err != nil {
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
}

func benchTransition(ctx context.Context, s *store.Store, okey store.OrderKey, seq int) error {
	unlock, err := s.LockOrder(ctx, okey, longLease)
	if err != nil {
		return fmt.Errorf("LockOrder: %w", err)
	}
	defer unlock()
	prev, err := s.GetOrder(ctx, okey)
	if err != nil {
		return fmt.Errorf("GetOrder: %w", err)
	}
	rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: fmt.Sprintf("%s-%d", okey.MerchantBizNo, seq)}
	claim, err := s.Claim(ctx, rkey, bodyA, longLease)
	if err != nil {
		return fmt.Errorf("Claim: %w", err)
	}
	defer claim.Release()
	if claim.Status != store.Claimed {
		return fmt.Errorf("Claim of a fresh requestId = %s", claim.Status)
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
