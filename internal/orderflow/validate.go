package orderflow

import (
	"strconv"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/schema"
)

// Refusal is an answer given before anything is stored: its result code,
// the reason label (for the log line and the metrics) and the
// resultMessage.
type Refusal struct {
	Code    Code
	Reason  string
	Message string
}

// The reason labels of the refusals both directions give, defined once:
// the egress answers and metrics use the same words.
const (
	ReasonMethod          = "method"
	ReasonMediaType       = "media_type"
	ReasonBodySize        = "body_size"
	ReasonJSON            = "json"
	ReasonSchema          = "schema"
	ReasonNoScenario      = "no_scenario"
	ReasonRequestIDReused = "request_id_reused"
	ReasonTransition      = "transition"
	ReasonScenarioChanged = "scenario_changed"
	ReasonAlreadyCurrent  = "already_current"
)

// BodyTooLargeMessage is the resultMessage of a body over max_body_size.
func BodyTooLargeMessage(limit int64) string {
	return "body: larger than " + strconv.FormatInt(limit, 10) + " bytes (max_body_size)"
}

// Validator is the validation every order body goes through, ingress and
// egress alike, in the README's order: the base schema, the typed request,
// the scenario match, the scenario's schemas, the status belongs to the
// scenario. It is immutable and safe for concurrent use.
type Validator struct {
	base      *schema.Schema
	scenarios *scenario.Catalog
}

// NewValidator returns the Validator of the enabled scenarios.
func NewValidator(scenarios *scenario.Catalog) (*Validator, error) {
	base, err := schema.Base()
	if err != nil {
		return nil, err
	}
	return &Validator{base: base, scenarios: scenarios}, nil
}

// Validate checks doc, a body decoded once (message.Decode). admit, when
// not nil, is asked once the typed request is read and before the scenario
// match (ingress: the client's merchant allow-list). It returns the request
// and its scenario, or the refusal; a refusal comes with the request and
// the scenario as far as they were known, for the log line (LoggableIDs
// reads the ids of a body that could not be read as a request).
func (v *Validator) Validate(doc *message.Document, admit func(*message.Request) *Refusal) (*message.Request, *scenario.Scenario, *Refusal) {
	if err := v.base.Validate(doc.Tree()); err != nil {
		return nil, nil, &Refusal{ParamIllegal, ReasonSchema, err.Error()}
	}
	r, err := doc.Request()
	if err != nil {
		return nil, nil, &Refusal{ParamIllegal, ReasonJSON, err.Error()}
	}
	if admit != nil {
		if no := admit(r); no != nil {
			return r, nil, no
		}
	}
	sc := v.scenarios.Match(r)
	if sc == nil {
		return r, nil, &Refusal{UnSupportBusiness, ReasonNoScenario, "merchantBizType: no enabled scenario matches this request"}
	}
	if err := sc.Validate(doc.Tree()); err != nil {
		return r, sc, &Refusal{ParamIllegal, ReasonSchema, err.Error()}
	}
	if !sc.Machine().Has(r.OrderStatus) {
		return r, sc, &Refusal{ParamIllegal, ReasonSchema, "orderStatus: not a status of scenario " + sc.Name()}
	}
	return r, sc, nil
}

// validate is step 4 of Serve: refuse encrypted bodies, decode once, and
// the Validator with the client's merchant allow-list. What it learnt goes
// into a for the log line.
func (f *Flow) validate(a *Answer, req *Request, c *Client) (*message.Request, *scenario.Scenario, *Refusal) {
	if req.Header.Get("Encrypt") != "" {
		// AlipayHK publishes no cipher details and no SDK implements it.
		return nil, nil, &Refusal{ParamIllegal, "encrypted", "Encrypt: encrypted request bodies are not supported"}
	}
	doc, err := message.Decode(req.Body)
	if err != nil {
		return nil, nil, &Refusal{ParamIllegal, ReasonJSON, err.Error()}
	}
	var admit func(*message.Request) *Refusal
	if c != nil && c.Merchants != nil {
		admit = func(r *message.Request) *Refusal {
			if _, ok := c.Merchants[r.MerchantID]; !ok {
				return &Refusal{UnSupportBusiness, "merchant", "merchantId: not allowed for this client"}
			}
			return nil
		}
	}
	r, sc, no := f.validator.Validate(doc, admit)
	a.Request = r
	if r == nil {
		a.RequestID, a.MerchantBizNo = LoggableIDs(doc)
	}
	if sc != nil {
		a.Scenario = sc.Name()
	}
	return r, sc, no
}

// LoggableIDs picks requestId and merchantBizNo out of a body that could
// not be read as a request, so that its log line can still be found by the
// caller's ids. Values that are not strings SafeID keeps are left out.
func LoggableIDs(doc *message.Document) (requestID, merchantBizNo string) {
	rid, _ := doc.String("requestId")
	biz, _ := doc.String("merchantBizNo")
	return SafeID(rid), SafeID(biz)
}

// SafeID returns an id that is fit for a log line and a header: at most 64
// bytes, no control character; "" otherwise. Ids that passed the base
// schema are always fit.
func SafeID(s string) string {
	if len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return ""
		}
	}
	return s
}
