package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// zapLogging sends go-redis's own messages (dial failures, pool trouble)
// to Caddy's logger instead of bare lines on stderr.
type zapLogging struct{ logger *zap.Logger }

func (z zapLogging) Printf(_ context.Context, format string, v ...any) {
	z.logger.Warn(fmt.Sprintf(format, v...))
}

var redisLoggerOnce sync.Once

// routeRedisLogs installs the logger once: go-redis's logger is global to
// the process.
func routeRedisLogs() {
	redisLoggerOnce.Do(func() {
		redis.SetLogger(zapLogging{logger: caddy.Log().Named("redis")})
	})
}
