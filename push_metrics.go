package ordersync

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-alipay/ordersync/internal/outbox"
	"github.com/caddy-alipay/ordersync/store"
)

// pushMetrics are the egress handler's collectors (namespace caddy,
// subsystem alipay_order_push). Like the ingress ones they are made once
// per process and registered into every configuration's registry, so
// counters keep counting across reloads. Every label is bounded by
// configuration or by a fixed list: client is a configured client_id,
// never an order or request id.
type pushMetrics struct {
	requests        *prometheus.CounterVec
	queueDepth      *prometheus.GaugeVec
	oldestAge       *prometheus.GaugeVec
	callbacksQueued *prometheus.GaugeVec
	attempts        *prometheus.CounterVec
	attemptLatency  *prometheus.HistogramVec
	finals          *prometheus.CounterVec
	callbacks       *prometheus.CounterVec
	operator        *prometheus.CounterVec
	troubles        *prometheus.CounterVec
}

const pushMetricsSubsystem = "alipay_order_push"

var (
	sharedPushMetrics     *pushMetrics
	sharedPushMetricsOnce sync.Once
)

func newPushMetrics() *pushMetrics {
	m := &pushMetrics{}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: pushMetricsSubsystem, Name: name, Help: help}
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
		"Answers to the legacy system, by HTTP status, reason and client.")), []string{"status", "reason", "client"})
	m.queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("queue_depth",
		"Entries queued (not final yet), by client.")), []string{"client"})
	m.oldestAge = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("oldest_entry_age_seconds",
		"Age of the oldest queued entry (since it was queued), by client; 0 when none.")), []string{"client"})
	m.callbacksQueued = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("callbacks_pending",
		"Callbacks of final states not delivered yet, by client.")), []string{"client"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts(opts("attempts_total",
		"Delivery attempts to AlipayHK, by outcome and client.")), []string{"outcome", "client"})
	m.attemptLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: pushMetricsSubsystem, Name: "attempt_duration_seconds",
		Help:    "Time of one delivery attempt to AlipayHK, by client.",
		Buckets: prometheus.DefBuckets,
	}, []string{"client"})
	m.finals = prometheus.NewCounterVec(prometheus.CounterOpts(opts("final_states_total",
		"Entries that reached a final state, by state, who ended them and client.")), []string{"state", "by", "client"})
	m.callbacks = prometheus.NewCounterVec(prometheus.CounterOpts(opts("callbacks_total",
		"Callback deliveries to the legacy system, by result (delivered, failed) and client.")), []string{"result", "client"})
	m.operator = prometheus.NewCounterVec(prometheus.CounterOpts(opts("operator_actions_total",
		"Operator actions that changed an entry (retry, requeue, drop), by client.")), []string{"action", "client"})
	m.troubles = prometheus.NewCounterVec(prometheus.CounterOpts(opts("runner_errors_total",
		"Delivery runner failures that are not an attempt's outcome (store operations, lost leases), by operation.")), []string{"operation"})
	return m
}

func (m *pushMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.queueDepth, m.oldestAge, m.callbacksQueued, m.attempts,
		m.attemptLatency, m.finals, m.callbacks, m.operator, m.troubles}
}

// registerPushMetrics registers the shared collectors into reg; a second
// handler in the same config finds them there already.
func registerPushMetrics(reg prometheus.Registerer) (*pushMetrics, error) {
	sharedPushMetricsOnce.Do(func() { sharedPushMetrics = newPushMetrics() })
	if reg == nil {
		return sharedPushMetrics, nil
	}
	if err := registerCollectors(reg, sharedPushMetrics.collectors()); err != nil {
		return nil, err
	}
	return sharedPushMetrics, nil
}

// queue records a client's queue as the runner reports it (about once per
// poll interval, so the age is that fresh).
func (m *pushMetrics) queue(clientID string, st store.OutboxStats) {
	m.queueDepth.WithLabelValues(clientID).Set(float64(st.Queued))
	m.callbacksQueued.WithLabelValues(clientID).Set(float64(st.CallbacksPending))
	age := 0.0
	if !st.OldestQueuedAt.IsZero() {
		age = max(0, time.Since(st.OldestQueuedAt).Seconds())
	}
	m.oldestAge.WithLabelValues(clientID).Set(age)
}

// forget drops a client's gauges once its runner has stopped: a client
// no configuration delivers for has no queue to report.
func (m *pushMetrics) forget(clientID string) {
	m.queueDepth.DeleteLabelValues(clientID)
	m.oldestAge.DeleteLabelValues(clientID)
	m.callbacksQueued.DeleteLabelValues(clientID)
}

// pushObserver turns what the runner does into metrics and log lines. It
// outlives configurations (so does the runner), so it logs through the
// process's logger, not a configuration's.
type pushObserver struct {
	m   *pushMetrics
	log *zap.Logger
}

func newPushObserver(m *pushMetrics) *pushObserver {
	return &pushObserver{m: m, log: caddy.Log().Named("http.handlers.alipay_order_push")}
}

// Attempt: one line per attempt, with the ids, never the key or the body.
func (o *pushObserver) Attempt(e outbox.AttemptEvent) {
	o.m.attempts.WithLabelValues(string(e.Outcome), e.ClientID).Inc()
	if e.Outcome != outbox.OutcomeAborted {
		o.m.attemptLatency.WithLabelValues(e.ClientID).Observe(e.Latency.Seconds())
	}
	level := zapcore.InfoLevel
	if !e.Outcome.Final() {
		level = zapcore.WarnLevel
	}
	ce := o.log.Check(level, "order push attempt")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("client_id", e.ClientID),
		zap.String("request_id", e.RequestID),
		zap.String("merchant_biz_no", e.MerchantBizNo),
		zap.Int("attempt", e.Number),
		zap.String("outcome", string(e.Outcome)),
		zap.String("result_code", e.ResultCode),
		zap.String("result_status", e.ResultStatus),
		zap.Int("http_status", e.HTTPStatus),
		zap.Duration("duration", e.Latency),
	}
	ce.Write(withRetry(fields, e.Error, e.NextAttemptAt)...)
}

// withRetry adds to an attempt's log fields why it did not end its work
// and when the next attempt is due, each only when there is one.
func withRetry(fields []zap.Field, err string, next time.Time) []zap.Field {
	if err != "" {
		fields = append(fields, zap.String("error", err))
	}
	if !next.IsZero() {
		fields = append(fields, zap.Time("next_attempt_at", next))
	}
	return fields
}

// Final: one line per final state.
func (o *pushObserver) Final(e outbox.FinalEvent) {
	o.m.finals.WithLabelValues(string(e.State), string(e.By), e.ClientID).Inc()
	level := zapcore.InfoLevel
	if e.State != store.EntrySucceeded {
		level = zapcore.WarnLevel
	}
	if ce := o.log.Check(level, "order push final"); ce != nil {
		ce.Write(
			zap.String("client_id", e.ClientID),
			zap.String("request_id", e.RequestID),
			zap.String("merchant_biz_no", e.MerchantBizNo),
			zap.String("state", string(e.State)),
			zap.String("ended_by", string(e.By)),
			zap.Int("attempts", e.Attempts),
			zap.Duration("age", e.Age),
			zap.String("last_error", e.LastError),
		)
	}
}

// Callback: one line per callback delivery attempt.
func (o *pushObserver) Callback(e outbox.CallbackEvent) {
	result := "failed"
	level := zapcore.WarnLevel
	if e.Delivered {
		result, level = "delivered", zapcore.InfoLevel
	}
	o.m.callbacks.WithLabelValues(result, e.ClientID).Inc()
	if ce := o.log.Check(level, "order push callback"); ce != nil {
		fields := []zap.Field{
			zap.String("client_id", e.ClientID),
			zap.String("request_id", e.RequestID),
			zap.String("webhook_id", e.WebhookID),
			zap.String("state", string(e.State)),
			zap.Int("attempt", e.Number),
			zap.Bool("delivered", e.Delivered),
			zap.Int("http_status", e.HTTPStatus),
			zap.Duration("duration", e.Latency),
		}
		ce.Write(withRetry(fields, e.Error, e.NextAttemptAt)...)
	}
}

// Operator: one line per operator action, saying what changed.
func (o *pushObserver) Operator(e outbox.OperatorEvent) {
	o.m.operator.WithLabelValues(string(e.Action), e.ClientID).Inc()
	o.log.Info("order push operator action",
		zap.String("client_id", e.ClientID),
		zap.String("request_id", e.RequestID),
		zap.String("merchant_biz_no", e.MerchantBizNo),
		zap.String("action", string(e.Action)),
		zap.String("from", string(e.From)),
		zap.String("to", string(e.To)),
	)
}

// Queue updates the gauges.
func (o *pushObserver) Queue(clientID string, st store.OutboxStats) { o.m.queue(clientID, st) }

// Trouble: a runner failure that is not an attempt's outcome.
func (o *pushObserver) Trouble(op string, lane store.LaneKey, err error) {
	o.m.troubles.WithLabelValues(op).Inc()
	fields := []zap.Field{zap.String("operation", op), zap.Error(err)}
	if lane.ClientID != "" {
		fields = append(fields, zap.String("client_id", lane.ClientID), zap.String("merchant_biz_no", lane.MerchantBizNo))
	}
	o.log.Error("order push runner", fields...)
}

var _ outbox.Observer = (*pushObserver)(nil)

// observe counts an answer to the legacy system and writes its log line.
func (p *PushHandler) observe(r *http.Request, resp outbox.Response, took time.Duration) {
	p.metrics.requests.WithLabelValues(strconv.Itoa(resp.Status), string(resp.Reason), p.cfg.ClientID).Inc()
	p.logger.Info("order push request",
		zap.String("method", r.Method),
		zap.Int("status", resp.Status),
		zap.String("decided_by", resp.Header.Get(outbox.HeaderDecidedBy)),
		zap.String("reason", string(resp.Reason)),
		zap.String("result_code", string(resp.Code)),
		zap.String("client_id", p.cfg.ClientID),
		zap.String("request_id", resp.RequestID),
		zap.String("merchant_biz_no", resp.MerchantBizNo),
		zap.String("scenario", resp.Scenario),
		zap.Duration("duration", took),
	)
}
