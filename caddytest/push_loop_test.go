package caddytest

// The loop: egress → this project's own ingress handler → an issuing
// upstream. The ingress plays AlipayHK: it verifies the egress's signature,
// applies the scenario's state machine, replays a requestId it has seen,
// and signs its answers with the key the egress verifies.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPushThroughOwnIngress: the 200 with the verified envelope and the delivery
// rule "Reloads and restarts": "at-least-once with a stable requestId, which
// this project's own ingress handler turns into exactly one effect", through
// real processes: S, a replay after an answer lost on the way back, F from the
// ingress's state machine, F from the upstream, and a lane of four statuses.
func TestPushThroughOwnIngress(t *testing.T) {
	t.Parallel()
	issuer := newPushIssuer(t)
	ingress := gateway{upstream: issuer.addr(), options: allScenarios}.start(t)
	relay := newPushRelay(t, fmt.Sprintf("http://127.0.0.1:%d", ingress.port))
	in := pushConfig{upstream: relay.addr(), wait: "10s"}.start(t, caddyOptions{})

	t.Run("S", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		r := pushPost(t, in, o.bytes())
		answers := relay.answers(id)
		if len(answers) != 1 {
			t.Fatalf("the ingress answered %d times, want 1", len(answers))
		}
		r.expectAlipay(t, answers[0], id)
		var env envelope
		_ = json.Unmarshal(r.body, &env)
		if env.Result.ResultCode != "SUCCESS" || env.OrderID != issuer.orderIDOf(id) || env.OrderID == "" {
			t.Errorf("envelope %s, the upstream issued %q", r.body, issuer.orderIDOf(id))
		}
		if n := issuer.callsOf(id); n != 1 {
			t.Errorf("upstream called %d times", n)
		}
	})

	t.Run("replay of an answer lost after the ingress acted", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		relay.loseNext(id, 1) // the egress gets a 502 instead of the ingress's S
		r := pushPost(t, in, o.bytes())
		answers := relay.answers(id)
		if len(answers) != 2 || relay.count(id) != 2 {
			t.Fatalf("the ingress answered %d times (relayed %d), want 2: the lost answer is retried", len(answers), relay.count(id))
		}
		if string(answers[0]) != string(answers[1]) {
			t.Errorf("the retry was not a replay:\n%s\n%s", answers[0], answers[1])
		}
		r.expectAlipay(t, answers[1], id)
		if n := issuer.callsOf(id); n != 1 {
			t.Errorf("two attempts made %d effects at the upstream, want 1", n)
		}
	})

	t.Run("F from the ingress's state machine", func(t *testing.T) {
		// The order moved on at AlipayHK's side without the egress (another
		// channel sent USED): the egress's TICKETED is refused there.
		o := couponOrder()
		send(t, ingress.url(), signed(t, o.next("USED", 2000).bytes())).expect(t, "SUCCESS", "S")
		back := o.next("TICKETED", 3000)
		id := back.str("requestId")
		r := pushPost(t, in, back.bytes())
		answers := relay.answers(id)
		if len(answers) != 1 {
			t.Fatalf("the ingress answered %d times", len(answers))
		}
		r.expectAlipay(t, answers[0], id)
		if !strings.Contains(string(r.body), `"resultCode":"ORDER_STATUS_INVALID"`) {
			t.Errorf("want the ingress's ORDER_STATUS_INVALID, got %s", r.body)
		}
		if n := issuer.callsOf(id); n != 0 {
			t.Errorf("the upstream was called for a refused status")
		}
		if e := pushLookup(t, in, id).expectEntry(t, id); e.State != pushFailed {
			t.Errorf("entry: %s", pushRaw(e.raw))
		}
	})

	t.Run("F from the upstream", func(t *testing.T) {
		o := newOrder().with("merchantBizNo", "UPF-"+uid(12))
		id := o.str("requestId")
		r := pushPost(t, in, o.bytes())
		answers := relay.answers(id)
		if len(answers) != 1 {
			t.Fatalf("the ingress answered %d times", len(answers))
		}
		r.expectAlipay(t, answers[0], id)
		if !strings.Contains(string(r.body), `"resultCode":"PARAM_ILLEGAL"`) || !strings.Contains(string(r.body), `"resultStatus":"F"`) {
			t.Errorf("want the upstream's PARAM_ILLEGAL, got %s", r.body)
		}
		// The legacy system retries its POST: the entry's result, nothing sent.
		pushPost(t, in, o.bytes()).expectAlipay(t, answers[0], id)
		if relay.count(id) != 1 || issuer.callsOf(id) != 1 {
			t.Errorf("relayed %d, upstream called %d; want 1 and 1", relay.count(id), issuer.callsOf(id))
		}
	})

	t.Run("a lane of four statuses", func(t *testing.T) {
		o := pickOrder()
		var last string
		for i, s := range pushLane {
			step := o.next(s, int64(1000*(i+1)))
			pushPostAsync(t, in, step.bytes()).expectQueued(t, step.str("requestId"))
			last = step.str("requestId")
		}
		pushAwait(t, in, last, 60*time.Second, pushSucceeded)
		if got := issuer.laneOrder(o.str("merchantBizNo")); strings.Join(got, ",") != strings.Join(pushLane, ",") {
			t.Errorf("the upstream got %v, want %v", got, pushLane)
		}
	})
}

// TestPushLoopInOneCaddySharingTheStateFile: the egress example's shape —
// one Caddy with the legacy-facing egress site, the ingress site it sends
// to, and a demo upstream that issues ids, the egress and the ingress
// sharing one bbolt file and one Client-Id. The outbox must not collide
// with the ingress's order state.
func TestPushLoopInOneCaddySharingTheStateFile(t *testing.T) {
	t.Parallel()
	k := demoKeys(t)
	render := func(in *instance) string {
		ingressPort, demoPort := freePort(t), freePort(t)
		db := filepath.Join(in.dataDir, "shared.db")
		return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_push {
			client_id %s
			private_key_file %s
			alipay_public_key_file %s
			store bbolt %s
			wait 10s
			retry_initial 50ms
			retry_max 200ms
			scenario coupon_with_code {
				merchant_biz_type COUPON
			}
		}
		reverse_proxy 127.0.0.1:%d
	}
}

http://127.0.0.1:%d {
	route %s {
		alipay_order_sync {
			client %s {
				public_key_file 1 %s
			}
			sign_responses {
				private_key_file %s
				key_version 1
			}
			scenario coupon_with_code {
				merchant_biz_type COUPON
			}
			store bbolt %s
		}
		reverse_proxy 127.0.0.1:%d
	}
}

http://127.0.0.1:%d {
	header Content-Type application/json
	respond `+"`"+`{"orderId":"demo-{http.request.uuid}","distributeResult":[{"sceneCode":"PASS"}]}`+"`"+` 200
}
`, in.adminPort, in.port, pushLegacyPath, testClient, pushKeyFile("merchant-private.pem"), pushKeyFile("gateway-public.pem"), db, ingressPort,
			ingressPort, syncPath, testClient, k.merchantPub, k.gatewayPriv, db, demoPort,
			demoPort)
	}
	in := startCaddy(t, render, caddyOptions{})

	orderID := func(t *testing.T, r pushReply) string {
		t.Helper()
		if r.status != 200 || r.header.Get("Order-Push-Decided-By") != "alipayhk" {
			t.Fatalf("want the ingress's answer, got %s", r)
		}
		var env envelope
		_ = json.Unmarshal(r.body, &env)
		if env.Result.ResultCode != "SUCCESS" || !strings.HasPrefix(env.OrderID, "demo-") {
			t.Fatalf("want SUCCESS with an orderId from the demo upstream, got %s", r.body)
		}
		return env.OrderID
	}
	o := couponOrder()
	ticket := o.next("TICKETED", 1000)
	first := pushPost(t, in, ticket.bytes())
	id1 := orderID(t, first)
	// The legacy system retries: the same answer, byte for byte.
	pushPost(t, in, ticket.bytes()).expectAlipay(t, first.body, ticket.str("requestId"))
	id2 := orderID(t, pushPost(t, in, o.next("USED", 2000).bytes()))
	if id1 == id2 {
		t.Errorf("USED was not issued by the upstream (orderId %s again)", id2)
	}
	pushPost(t, in, o.next("TICKETED", 3000).bytes()).expectGateway(t, "ORDER_STATUS_INVALID", "F", "")
	gift := newOrder()
	orderID(t, pushPost(t, in, gift.bytes()))
}
