package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// BenchWriters is the number of concurrent writers of the */32writers
// benchmarks, as storetest's: about what one busy gateway has in flight.
const BenchWriters = 32

// Bench runs the shared outbox benchmarks as sub-benchmarks of b:
//
//   - Enqueue/1writer and Enqueue/32writers: one order sync queued as the
//     egress handler queues it (GetLane for the state check, then Enqueue
//     against its version), each into a lane of its own. Reported as
//     enqueues/s.
//   - Complete/1writer and Complete/32writers: one delivery's store work
//     once AlipayHK answered S (LeaseLane, GetLane for the head, Complete
//     with the reply and the accepted state, ReleaseLane) on entries queued
//     beforehand. Reported as completions/s.
//
// open is called once per sub-benchmark run and must arrange for the
// backend to be closed (b.Cleanup). Keys are unique per run, so backends
// may share storage.
func Bench(b *testing.B, open func(b *testing.B) store.OutboxBackend) {
	for _, writers := range []int{1, BenchWriters} {
		name := fmt.Sprintf("%dwriters", writers)
		if writers == 1 {
			name = "1writer"
		}
		b.Run("Enqueue/"+name, func(b *testing.B) { benchEnqueue(b, open(b), writers) })
		b.Run("Complete/"+name, func(b *testing.B) { benchComplete(b, open(b), writers) })
	}
}

// parallel runs op n times over writers goroutines and returns the time it
// took, failing b on the first error.
func parallel(b *testing.B, writers, n int, op func(i int) error) time.Duration {
	var next atomic.Int64
	var once sync.Once
	var failed error
	var wg sync.WaitGroup
	began := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					once.Do(func() { failed = err })
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	if failed != nil {
		b.Fatal(failed)
	}
	return took
}

func benchEnqueue(b *testing.B, ob store.OutboxBackend, writers int) {
	ids := newIDSource(b)
	client := ids.client()
	ctx := context.Background()
	at := now()
	b.ReportAllocs()
	b.ResetTimer()
	took := parallel(b, writers, b.N, func(i int) error {
		lane := store.LaneKey{ClientID: client, MerchantBizNo: fmt.Sprint("bench-", i)}
		_, existing, err := enqueueChecked(ctx, ob, newEntry(lane, fmt.Sprint("r-", i), "PAID", at))
		if err == nil && existing != nil {
			err = errors.New("a fresh requestId was a duplicate")
		}
		return err
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/took.Seconds(), "enqueues/s")
}

func benchComplete(b *testing.B, backend store.OutboxBackend, writers int) {
	ids := newIDSource(b)
	client := ids.client()
	ctx := context.Background()
	ob := store.NewOutbox(backend)
	at := now()
	lane := func(i int) store.LaneKey {
		return store.LaneKey{ClientID: client, MerchantBizNo: fmt.Sprint("bench-", i)}
	}
	parallel(b, BenchWriters, b.N, func(i int) error {
		_, err := backend.Enqueue(ctx, newEntry(lane(i), fmt.Sprint("r-", i), "PAID", at), 0)
		return err
	})
	b.ReportAllocs()
	b.ResetTimer()
	took := parallel(b, writers, b.N, func(i int) error {
		lease, err := ob.LeaseLane(ctx, lane(i), time.Minute)
		if err != nil {
			return fmt.Errorf("LeaseLane: %w", err)
		}
		defer lease.Release(ctx)
		l, err := ob.Lane(ctx, lane(i))
		if err != nil {
			return fmt.Errorf("Lane: %w", err)
		}
		if len(l.Queued) != 1 {
			return fmt.Errorf("lane holds %d entries, want 1", len(l.Queued))
		}
		head := l.Queued[0].RequestID
		if err := lease.Complete(ctx, head, succeeded(head, at)); err != nil {
			return fmt.Errorf("Complete: %w", err)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/took.Seconds(), "completions/s")
}
