package ordersync

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// metrics are the module's collectors. They are created once per process
// and registered into every config's registry, so counters keep moving
// across reloads instead of restarting in a registry nobody serves.
type metrics struct {
	requests          *prometheus.CounterVec
	upstream          *prometheus.HistogramVec
	signatureFailures *prometheus.CounterVec
	rejections        *prometheus.CounterVec
	replays           *prometheus.CounterVec
	storeLatency      *prometheus.HistogramVec
	storeErrors       *prometheus.CounterVec
}

const (
	metricsNamespace = "caddy"
	metricsSubsystem = "alipay_order_sync"
)

var (
	sharedMetrics     *metrics
	sharedMetricsOnce sync.Once
)

func newMetrics() *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	hist := func(name, help string, buckets []float64) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help, Buckets: buckets}
	}
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"Order-sync requests answered, by result code, status letter, scenario and client.")),
			[]string{"result_code", "result_status", "scenario", "client"}),
		upstream: prometheus.NewHistogramVec(hist("upstream_duration_seconds",
			"Time the upstream (the next handler) took to answer, by scenario.", prometheus.DefBuckets),
			[]string{"scenario"}),
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts(opts("signature_failures_total",
			"Requests refused by authentication, by reason.")), []string{"reason"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts(opts("state_rejections_total",
			"Order status changes refused by the state machine, by scenario and rule.")), []string{"scenario", "rule"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts(opts("replays_total",
			"Stored final answers replayed for a repeated requestId, by client.")), []string{"client"}),
		storeLatency: prometheus.NewHistogramVec(hist("store_duration_seconds",
			"State store operation latency, by operation.", []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
			[]string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts(opts("store_errors_total",
			"State store operations that failed, by operation.")), []string{"operation"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.upstream, m.signatureFailures, m.rejections, m.replays, m.storeLatency, m.storeErrors}
}

// registerMetrics registers the shared collectors into reg; a second
// handler in the same config finds them already there, which is fine.
func registerMetrics(reg prometheus.Registerer) (*metrics, error) {
	sharedMetricsOnce.Do(func() { sharedMetrics = newMetrics() })
	if reg == nil {
		return sharedMetrics, nil
	}
	for _, c := range sharedMetrics.collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return sharedMetrics, nil
}

func (m *metrics) observeStore(op string, began time.Time, err error) {
	m.storeLatency.WithLabelValues(op).Observe(time.Since(began).Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// observe counts the answer and writes the one log line of the request.
func (h *Handler) observe(x *exchange, code orderflow.Code) {
	scenarioName := "none"
	if x.scenario != nil {
		scenarioName = x.scenario.Name()
	}
	h.metrics.requests.WithLabelValues(string(code), string(code.Status()), scenarioName, x.clientLabel).Inc()

	fields := []zap.Field{
		zap.String("client_id", x.clientID),
		zap.String("scenario", scenarioName),
		zap.String("result_code", string(code)),
		zap.String("result_status", string(code.Status())),
		zap.String("reason", x.reason),
		zap.Bool("replay", x.replay),
		zap.Duration("duration", time.Since(x.start)),
	}
	if x.req != nil {
		fields = append(fields,
			zap.String("request_id", x.req.RequestID),
			zap.String("merchant_biz_no", x.req.MerchantBizNo),
			zap.String("previous_status", x.previous),
			zap.String("order_status", x.req.OrderStatus),
			zap.String("user_id", mask(x.req.UserID)),
			zap.String("open_id", mask(x.req.OpenID)),
		)
	}
	if x.req == nil && (x.requestID != "" || x.merchantBizNo != "") {
		fields = append(fields, zap.String("request_id", x.requestID), zap.String("merchant_biz_no", x.merchantBizNo))
	}
	if x.calledUp {
		fields = append(fields, zap.Duration("upstream_duration", x.upstream))
	}
	h.logger.Info("order sync", fields...)
}

// mask keeps the first and last two characters of a long user
// identifier: enough to correlate with a merchant's report, not enough to
// identify. Short ones are hidden whole.
func mask(s string) string {
	if s == "" {
		return ""
	}
	r := []rune(s)
	if len(r) <= 8 {
		return "****"
	}
	return string(r[:2]) + "****" + string(r[len(r)-2:])
}
