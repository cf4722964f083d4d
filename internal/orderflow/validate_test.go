package orderflow

import (
	"bytes"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/message"
	"github.com/caddy-alipay/ordersync/scenario"
)

// TestValidatorOrder: the Validator's steps refuse in the README's order,
// and admit is asked between the typed request and the scenario match.
func TestValidatorOrder(t *testing.T) {
	catalog, err := scenario.New([]scenario.Config{{Name: "coupon_with_code", MerchantBizType: "COUPON"}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(catalog)
	if err != nil {
		t.Fatal(err)
	}
	refuseAll := func(*message.Request) *Refusal {
		return &Refusal{UnSupportBusiness, "merchant", "merchantId: not allowed"}
	}
	good := newOrder("TICKETED").body()
	for _, tc := range []struct {
		name   string
		body   []byte
		admit  func(*message.Request) *Refusal
		reason string
		req    bool // the typed request comes with the refusal
	}{
		{"base schema", bytes.Replace(good, []byte(`"extInfo"`), []byte(`"extInfoX"`), 1), refuseAll, ReasonSchema, false},
		{"admit before the match", bytes.Replace(good, []byte(`COUPON`), []byte(`NOPE`), 1), refuseAll, "merchant", true},
		{"no scenario", bytes.Replace(good, []byte(`COUPON`), []byte(`NOPE`), 1), nil, ReasonNoScenario, true},
		{"status of no scenario", bytes.Replace(good, []byte(`TICKETED`), []byte(`QUEUED`), 1), nil, ReasonSchema, true},
		{"good", good, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := message.Decode(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			r, _, no := v.Validate(doc, tc.admit)
			if got := ""; no != nil {
				got = no.Reason
				if got != tc.reason {
					t.Fatalf("refused for %q (%s), want %q", got, no.Message, tc.reason)
				}
			} else if tc.reason != "" {
				t.Fatalf("accepted, want a refusal for %q", tc.reason)
			}
			if (r != nil) != tc.req {
				t.Errorf("request returned = %v, want %v", r != nil, tc.req)
			}
		})
	}
}

func TestSafeID(t *testing.T) {
	for in, want := range map[string]string{
		"R-1":                   "R-1",
		strings.Repeat("x", 64): strings.Repeat("x", 64),
		strings.Repeat("x", 65): "",
		"a\nb":                  "",
		"a\x7fb":                "",
		"":                      "",
	} {
		if got := SafeID(in); got != want {
			t.Errorf("SafeID(%q) = %q, want %q", in, got, want)
		}
	}
}
