package redisstore

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/storetest"
)

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Backend {
		c := counted{Backend: newBackend(b), trips: new(atomic.Int64)}
		c.rdb.AddHook(c)
		return c
	})
}

// counted reports what a Backend cost the server (storetest.Counters):
// the round trips it made (commands sent, counted by a client hook; a
// script the server had not cached costs two) and the server's CPU time.
// The server is the package's own, used by nothing else while a benchmark
// runs; the INFO calls that read its CPU time are not counted as trips.
type counted struct {
	*Backend
	trips *atomic.Int64
}

func (c counted) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c counted) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "info" {
			c.trips.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c counted) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		return next(ctx, cmds)
	}
}

func (c counted) BenchCounters() map[string]float64 {
	out := map[string]float64{"round-trips": float64(c.trips.Load())}
	info, err := c.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		return out
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			out["redis-cpu-µs"] += f * 1e6
		}
	}
	return out
}
