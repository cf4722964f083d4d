package caddytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

const testClient = "TEST-CLIENT-1"

// gateway describes the alipay_order_sync block of a test config.
type gateway struct {
	upstream string // host:port for reverse_proxy
	options  string // extra sub-directives inside alipay_order_sync
	store    string // store line; default bbolt in the instance's data dir
	proxy    string // extra reverse_proxy block content
	unsigned bool   // no sign_responses
}

// caddyfile renders a full Caddyfile for an instance.
func (g gateway) caddyfile(in *instance) string {
	k := demoKeys(in.t)
	st := g.store
	if st == "" {
		st = "store bbolt " + filepath.Join(in.dataDir, "orders.db")
	}
	sign := fmt.Sprintf("sign_responses {\n\t\t\t\tprivate_key_file %s\n\t\t\t\tkey_version 1\n\t\t\t}", k.gatewayPriv)
	if g.unsigned {
		sign = ""
	}
	body := fmt.Sprintf("\t\t\tclient %s {\n\t\t\t\tpublic_key_file 1 %s\n\t\t\t}\n\t\t\t%s\n\t\t\t%s\n\t\t\t%s",
		testClient, k.merchantPub, sign, st, g.options)
	return routeCaddyfile(in, body, g.upstream, g.proxy)
}

// routeCaddyfile is a config with one route on the sync path: an
// alipay_order_sync block whose content is exactly body, then
// reverse_proxy to upstream with proxyOptions in its block.
func routeCaddyfile(in *instance, body, upstream, proxyOptions string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_sync {
%s
		}
		reverse_proxy %s {
			%s
		}
	}
}
`, in.adminPort, in.port, syncPath, body, upstream, proxyOptions)
}

func (g gateway) start(t testing.TB) *instance {
	t.Helper()
	return startCaddy(t, g.caddyfile, caddyOptions{})
}

// uid returns a unique id of n hex characters.
func uid(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// seedJSON is examples/seed-gift-card.json, the spec's Gift Card example
// (docs/SPEC.md §4), byte for byte.
const seedJSON = `{"requestId":"00242206688873156335287814888550","merchantId":"2160120041113167","merchantBizNo":"00242206688873156335287814888550","orderStatus":"TICKETED","userId":"2160220041431868","merchantBizType":"ALIPAY_COUPON","orderCreateTime":1740385506708,"orderModifyTime":1742977506708,"tradeNo":"Gift_card_tradeNo","extInfo":{"benefit_issue_mode":"SALE","product_id":"22025021800135606000000001663483"}}`

// order is a body builder: the seed with a fresh requestId and
// merchantBizNo, changed by the given edits.
type order map[string]any

func newOrder() order {
	var m map[string]any
	if err := json.Unmarshal([]byte(seedJSON), &m); err != nil {
		panic(err)
	}
	m["requestId"] = uid(32)
	m["merchantBizNo"] = "GC-" + uid(16)
	return m
}

// with returns a copy with key set (dotted keys reach into objects) or
// deleted when v is nil.
func (o order) with(key string, v any) order {
	c := clone(o)
	parts := strings.Split(key, ".")
	m := map[string]any(c)
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	last := parts[len(parts)-1]
	if v == nil {
		delete(m, last)
	} else {
		m[last] = v
	}
	return c
}

// next is the same order with a new requestId (the next sync).
func (o order) next(status string, modifyTime int64) order {
	return o.with("requestId", uid(32)).with("orderStatus", status).with("orderModifyTime", modifyTime)
}

func (o order) bytes() []byte {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	return b
}

func clone(o order) order {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// signed is a properly signed call for body.
func signed(t testing.TB, body []byte) call {
	return call{clientID: testClient, body: body, key: demoKeys(t).merchant}
}
