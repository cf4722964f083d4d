package orderflow

import (
	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
)

// validate is step 4 of Serve, in the README's order: refuse encrypted
// bodies, decode once, the base schema, the typed request, the client's
// merchant allow-list, the scenario match, the scenario's schema and its
// statuses. It returns the request and its scenario, or the refusal; what
// it learnt goes into a for the log line.
func (f *Flow) validate(a *Answer, req *Request, c *Client) (*message.Request, *scenario.Scenario, *refusal) {
	if req.Header.Get("Encrypt") != "" {
		// AlipayHK publishes no cipher details and no SDK implements it.
		return nil, nil, &refusal{ParamIllegal, "encrypted", "Encrypt: encrypted request bodies are not supported"}
	}
	doc, err := message.Decode(req.Body)
	if err != nil {
		return nil, nil, &refusal{ParamIllegal, "json", err.Error()}
	}
	if err := f.baseSchema.Validate(doc.Tree()); err != nil {
		a.RequestID, a.MerchantBizNo = loggableIDs(doc)
		return nil, nil, &refusal{ParamIllegal, "schema", err.Error()}
	}
	r, err := doc.Request()
	if err != nil {
		return nil, nil, &refusal{ParamIllegal, "json", err.Error()}
	}
	a.Request = r
	if c != nil && c.Merchants != nil {
		if _, ok := c.Merchants[r.MerchantID]; !ok {
			return nil, nil, &refusal{UnSupportBusiness, "merchant", "merchantId: not allowed for this client"}
		}
	}
	sc := f.cfg.Scenarios.Match(r)
	if sc == nil {
		return nil, nil, &refusal{UnSupportBusiness, "no_scenario", "merchantBizType: no enabled scenario matches this request"}
	}
	a.Scenario = sc.Name()
	if err := sc.Validate(doc.Tree()); err != nil {
		return nil, nil, &refusal{ParamIllegal, "schema", err.Error()}
	}
	if !sc.Machine().Has(r.OrderStatus) {
		return nil, nil, &refusal{ParamIllegal, "schema", "orderStatus: not a status of scenario " + sc.Name()}
	}
	return r, sc, nil
}

// loggableIDs picks requestId and merchantBizNo out of a body that failed
// validation, so its log line can still be found by the caller's ids.
// Values that are not short strings are left out.
func loggableIDs(doc *message.Document) (requestID, merchantBizNo string) {
	pick := func(key string) string {
		if v, ok := doc.String(key); ok && len(v) <= 64 {
			return v
		}
		return ""
	}
	return pick("requestId"), pick("merchantBizNo")
}
