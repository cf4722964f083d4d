package ordersync

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
)

// log writes the one line of a request at info, and what went wrong
// besides (a state store failure, a reply that could not be signed) at
// error. Fields are passed to the entry directly: a logger.With per
// request costs more than the whole line (issue 13 measured 14µs).
func (h *Handler) log(a *orderflow.Answer, scenarioName string, took time.Duration) {
	for _, op := range a.StoreOps() {
		if op.Err != nil {
			h.logger.Error("state store failed", zap.String("operation", op.Name), zap.Error(op.Err))
		}
	}
	if a.SignErr != nil {
		h.logger.Error("signing the response failed", zap.Error(a.SignErr))
	}
	if a.UpstreamErr != nil {
		h.logger.Debug("next handler returned an error", zap.Error(a.UpstreamErr))
	}
	ce := h.logger.Check(zapcore.InfoLevel, "order sync")
	if ce == nil {
		return // info is off: build no fields
	}
	// The fields escape to the logger's cores: a pooled array saves
	// allocating one (about 1 KB) per request.
	buf := logFields.Get().(*[maxLogFields]zap.Field)
	defer func() {
		*buf = [maxLogFields]zap.Field{} // drop the references before pooling
		logFields.Put(buf)
	}()
	fields := append(buf[:0],
		zap.String("client_id", a.ClientID),
		zap.String("scenario", scenarioName),
		zap.String("result_code", string(a.Code)),
		zap.String("result_status", string(a.Code.Status())),
		zap.String("reason", a.Reason),
		zap.Bool("replay", a.Replay),
		zap.Duration("duration", took),
	)
	switch r := a.Request; {
	case r != nil:
		fields = append(fields,
			zap.String("request_id", r.RequestID),
			zap.String("merchant_biz_no", r.MerchantBizNo),
			zap.String("previous_status", a.Previous),
			zap.String("order_status", r.OrderStatus),
			zap.String("user_id", mask(r.UserID)),
			zap.String("open_id", mask(r.OpenID)),
		)
	case a.RequestID != "" || a.MerchantBizNo != "":
		fields = append(fields, zap.String("request_id", a.RequestID), zap.String("merchant_biz_no", a.MerchantBizNo))
	}
	if a.Forwarded {
		fields = append(fields, zap.Duration("upstream_duration", a.Upstream))
	}
	ce.Write(fields...)
}

// maxLogFields is the most fields the line has.
const maxLogFields = 14

var logFields = sync.Pool{New: func() any { return new([maxLogFields]zap.Field) }}

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
