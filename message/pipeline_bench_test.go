package message_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
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
// step (in pipeline order: decode, base schema, scenario match, scenario schema,
// then the normalized body for the upstream), for the spec's seed body and
// for a body near the size limit.
func BenchmarkDecodeValidateNormalize(b *testing.B) {
	base, err := schema.Base()
	if err != nil {
		b.Fatal(err)
	}
	scenarios, err := scenario.New(nil)
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
			start := cpuTime()
			for b.Loop() {
				doc, err := message.Decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				if err := base.Validate(doc.Tree()); err != nil {
					b.Fatal(err)
				}
				r, err := doc.Request()
				if err != nil {
					b.Fatal(err)
				}
				sc := scenarios.Match(r)
				if sc == nil {
					b.Fatal("no match")
				}
				if err := sc.Validate(doc.Tree()); err != nil {
					b.Fatal(err)
				}
				if out := r.Normalize("4Q5Y8W0WSG45P907917", sc.Name(), ""); len(out) == 0 {
					b.Fatal("empty body")
				}
			}
			reportCPU(b, start)
		})
	}
}
