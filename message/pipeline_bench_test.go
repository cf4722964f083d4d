package message_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/schema"
)

// largeBody is a gift card body near the default 64 KiB max_body_size: an
// extInfo with a few hundred nested items, escapes and non-ASCII text, the
// worst a legitimate caller is likely to send.
func largeBody() []byte {
	var b strings.Builder
	b.WriteString(`{"requestId":"00242206688873156335287814888550","merchantId":"2160120041113167",` +
		`"merchantBizNo":"00242206688873156335287814888550","orderStatus":"TICKETED",` +
		`"userId":"2160220041431868","merchantBizType":"ALIPAY_COUPON","orderCreateTime":1740385506708,` +
		`"orderModifyTime":1742977506708,"tradeNo":"Gift_card_tradeNo",` +
		`"amount":{"value":"10000","currency":"HKD"},"payAmount":{"value":"9500","currency":"HKD"},` +
		`"extInfo":{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483","items":[`)
	for i := 0; i < 330; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","name":"禮品卡 \u2014 %d HKD","qty":%d,"price":%d.%02d,"tags":["gift","card",null,true],"note":"line\none \"quoted\""}`,
			i, i*10, i%7+1, i*3, i%100)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// BenchmarkDecodeValidateNormalize is the handler's decode-validate-normalize
// step (CONTRACT §7.1: decode, base schema, scenario match, scenario schema,
// then the normalized body for the upstream), for the spec's seed body and
// for a body near the size limit.
func BenchmarkDecodeValidateNormalize(b *testing.B) {
	v, err := schema.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		raw  []byte
	}{
		{"seed", readFile(b, seedFile)},
		{"large", largeBody()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := bc.raw
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				doc, err := schema.Decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				if err := v.ValidateBase(doc); err != nil {
					b.Fatal(err)
				}
				r, err := message.Parse(raw)
				if err != nil {
					b.Fatal(err)
				}
				if mode, ok := r.ExtString("benefit_issue_mode"); !ok || mode != "SALE" {
					b.Fatal("no match")
				}
				if err := v.ValidateScenario(schema.GiftCard, doc); err != nil {
					b.Fatal(err)
				}
				if out := r.Normalize("4Q5Y8W0WSG45P907917", schema.GiftCard, ""); len(out) == 0 {
					b.Fatal("empty body")
				}
			}
		})
	}
}
