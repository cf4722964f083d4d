package ordersync

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	if err := registerCollectors(reg, sharedMetrics.collectors()); err != nil {
		return nil, err
	}
	return sharedMetrics, nil
}

// registerCollectors registers cs into reg, each once: a collector that is
// already there (a second handler of the same config) is fine.
func registerCollectors(reg prometheus.Registerer, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observe counts the answer in the metrics and writes its log line.
func (h *Handler) observe(a *orderflow.Answer, took time.Duration) {
	m := h.metrics
	scenarioName := a.Scenario
	if scenarioName == "" {
		scenarioName = "none"
	}
	// Labels are bounded by the configuration: a client id only when it
	// is configured.
	client := "other"
	if a.KnownClient {
		client = a.ClientID
	}
	m.requests.WithLabelValues(string(a.Code), string(a.Code.Status()), scenarioName, client).Inc()
	if a.AuthFailure != "" {
		m.signatureFailures.WithLabelValues(a.AuthFailure).Inc()
	}
	if a.Rejection != "" {
		m.rejections.WithLabelValues(scenarioName, a.Rejection).Inc()
	}
	if a.Replay {
		m.replays.WithLabelValues(client).Inc()
	}
	if a.Forwarded {
		m.upstream.WithLabelValues(scenarioName).Observe(a.Upstream.Seconds())
	}
	for _, op := range a.StoreOps() {
		m.storeLatency.WithLabelValues(op.Name).Observe(op.Took.Seconds())
		if op.Err != nil {
			m.storeErrors.WithLabelValues(op.Name).Inc()
		}
	}
	h.log(a, scenarioName, took)
}
