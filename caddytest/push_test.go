package caddytest

// End-to-end tests of the egress handler alipay_order_push against its contract
// (the README's egress section): the legacy system posts plain JSON to a real
// Caddy, which queues, signs, sends through reverse_proxy to the AlipayHK
// stand-in (push_alipay_test.go), verifies the reply, retries, and answers. Each
// test is named after the row of the answers table ("What the legacy system
// sends and gets") or the delivery rule it proves.
//
// Readings of the contract where it is not explicit are marked "Reading:".

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// TestPushFinalAnswerWithinWaitIsAlipayEnvelopeByteForByte: answers row
// "AlipayHK gave a final answer (S or F) within wait → 200, AlipayHK's
// envelope, byte for byte, after its signature verified", and "Each
// attempt" for the one attempt it takes.
func TestPushFinalAnswerWithinWaitIsAlipayEnvelopeByteForByte(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.setKeyVersion("2") // key_version reaches the Signature header
	in := pushConfig{upstream: ahk.addr(), keyVersion: "2"}.start(t, caddyOptions{})

	t.Run("S", func(t *testing.T) {
		// A big integer in extInfo: "the same JSON value" keeps number
		// literals (Reading: a production user expects no rounding).
		o := newOrder().with("extInfo.big_number", json.RawMessage("123456789012345678901234567890"))
		id := o.str("requestId")
		r := pushPost(t, in, o.bytes())
		r.expectAlipay(t, ahk.finalReply(t, id), id)
		atts := ahk.attemptsOf(id)
		if len(atts) != 1 {
			t.Fatalf("AlipayHK got %d attempts, want 1", len(atts))
		}
		ahk.checkWellFormed(t, id)
		if !pushSameJSON(atts[0].body, o.bytes()) {
			t.Errorf("AlipayHK got another JSON value than the legacy system posted:\n got %s\nwant %s", atts[0].body, o.bytes())
		}
		e := pushLookup(t, in, id).expectEntry(t, id)
		if e.State != pushSucceeded || e.Attempts != 1 || e.OrderStatus != "TICKETED" || e.MerchantBizNo != o.str("merchantBizNo") {
			t.Errorf("entry after S: %s", pushRaw(e.raw))
		}
		if !pushSameJSON(e.Reply, r.body) {
			t.Errorf("entry reply %s, want AlipayHK's envelope %s", e.Reply, r.body)
		}
	})

	t.Run("F", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		ahk.script(o.str("merchantBizNo"), ahkF("ORDER_STATUS_INVALID"))
		r := pushPost(t, in, o.bytes())
		r.expectAlipay(t, ahk.finalReply(t, id), id)
		if !strings.Contains(string(r.body), `"resultStatus":"F"`) {
			t.Fatalf("not the F envelope: %s", r.body)
		}
		if n := len(ahk.attemptsOf(id)); n != 1 {
			t.Errorf("an F was retried: %d attempts", n)
		}
		if e := pushLookup(t, in, id).expectEntry(t, id); e.State != pushFailed || !pushSameJSON(e.Reply, r.body) {
			t.Errorf("entry after F: %s", pushRaw(e.raw))
		}
	})
}

// TestPushRefusedBeforeSendingIsGatewayEnvelope: answers row "refused before
// sending: method, media type, size, schema, no scenario → 200, the caller's
// envelope made by the gateway (same codes, never signed)". Nothing reaches
// AlipayHK and nothing is queued. (Status changes: the next test.)
//
// Reading: Order-Push-Request-Id is "known" once the body decoded with a
// valid requestId, so schema and scenario refusals carry it.
func TestPushRefusedBeforeSendingIsGatewayEnvelope(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr(), options: "max_body_size 4KiB"}.start(t, caddyOptions{})
	o := newOrder()
	big := o.with("extInfo.note", strings.Repeat("x", 5000)) // only the size is wrong

	type tc struct {
		name          string
		call          pushCall
		code, letter  string
		message       []string
		knowRequestID bool
		order         order
	}
	mk := func(name string, ord order, code string, message ...string) tc {
		return tc{name: name, call: pushCall{body: ord.bytes()}, code: code, letter: "F", message: message, knowRequestID: true, order: ord}
	}
	cases := []tc{
		{name: "method PUT", call: pushCall{method: http.MethodPut, body: o.bytes()}, code: "METHOD_NOT_SUPPORTED", letter: "F", order: o},
		{name: "method DELETE", call: pushCall{method: http.MethodDelete, body: o.bytes()}, code: "METHOD_NOT_SUPPORTED", letter: "F", order: o},
		{name: "media type text/plain", call: pushCall{contentType: "text/plain", body: o.bytes()}, code: "MEDIA_TYPE_NOT_ACCEPTABLE", letter: "F", order: o},
		{name: "media type form", call: pushCall{contentType: "application/x-www-form-urlencoded", body: o.bytes()}, code: "MEDIA_TYPE_NOT_ACCEPTABLE", letter: "F", order: o},
		{name: "size over max_body_size", call: pushCall{body: big.bytes()}, code: "PARAM_ILLEGAL", letter: "F", order: big},
		{name: "schema: not JSON", call: pushCall{body: []byte(`{"requestId":`)}, code: "PARAM_ILLEGAL", letter: "F"},
		{name: "schema: not an object", call: pushCall{body: []byte(`[1,2]`)}, code: "PARAM_ILLEGAL", letter: "F"},
		mk("schema: missing extInfo", newOrder().with("extInfo", nil), "PARAM_ILLEGAL", "extInfo"),
		mk("schema: missing merchantBizNo", newOrder().with("merchantBizNo", nil), "PARAM_ILLEGAL", "merchantBizNo"),
		mk("schema: bad currency", newOrder().with("amount", map[string]any{"value": "100", "currency": "ABC"}), "PARAM_ILLEGAL", "amount.currency"),
		mk("schema: no userId or openId", newOrder().with("userId", nil), "PARAM_ILLEGAL", "userId"),
		mk("schema: float orderModifyTime", newOrder().with("orderModifyTime", 1.5), "PARAM_ILLEGAL", "orderModifyTime"),
		mk("schema: no product_id", newOrder().with("extInfo.product_id", nil), "PARAM_ILLEGAL", "extInfo.product_id"),
		mk("schema: control character in merchantBizNo", newOrder().with("merchantBizNo", "GC-\u0001"), "PARAM_ILLEGAL", "merchantBizNo"),
		mk("schema: status not of the scenario", newOrder().with("orderStatus", "USED"), "PARAM_ILLEGAL", "orderStatus"),
		{name: "schema: requestId too long", call: pushCall{body: newOrder().with("requestId", strings.Repeat("9", 33)).bytes()}, code: "PARAM_ILLEGAL", letter: "F", message: []string{"requestId"}},
		mk("no scenario: unknown merchantBizType", newOrder().with("merchantBizType", "SOMETHING_ELSE"), "UN_SUPPORT_BUSINESS", "merchantBizType"),
		mk("no scenario: gift card not SALE", newOrder().with("extInfo.benefit_issue_mode", "FREE"), "UN_SUPPORT_BUSINESS"),
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := ""
			if c.knowRequestID {
				id = c.order.str("requestId")
			}
			r := pushSend(t, in, c.call)
			env := r.expectGateway(t, c.code, c.letter, id)
			for _, part := range c.message {
				if !strings.Contains(env.Result.ResultMessage, part) {
					t.Errorf("resultMessage %q does not name %q", env.Result.ResultMessage, part)
				}
			}
			if c.order != nil {
				if lr := pushLookup(t, in, c.order.str("requestId")); lr.status != http.StatusNotFound {
					t.Errorf("a refused order was queued: lookup %s", lr)
				}
			}
		})
	}
	time.Sleep(time.Second) // anything queued by mistake would be sent by now
	if all := ahk.all(); len(all) != 0 {
		t.Errorf("AlipayHK got %d attempts for refused orders, first: %s", len(all), all[0].body)
	}
}

// TestPushStatusChangeNotAllowedIsRefusedAndNeverSent: answers row "status
// change not allowed → 200, gateway envelope" and delivery rule "Never
// backwards", judged against the status AlipayHK accepted and against every
// status still queued; re-posting the current status follows the ingress's
// re-send rule (README "Order state and replays").
func TestPushStatusChangeNotAllowedIsRefusedAndNeverSent(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})

	t.Run("against the status AlipayHK accepted", func(t *testing.T) {
		o := couponOrder()
		used := o.next("USED", 2000)
		pushPost(t, in, used.bytes()).expectAlipay(t, ahk.finalReply(t, used.str("requestId")), used.str("requestId"))
		back := o.next("TICKETED", 3000)
		env := pushPost(t, in, back.bytes()).expectGateway(t, "ORDER_STATUS_INVALID", "F", back.str("requestId"))
		if !strings.Contains(env.Result.ResultMessage, "orderStatus") {
			t.Errorf("resultMessage %q does not name orderStatus", env.Result.ResultMessage)
		}
		time.Sleep(500 * time.Millisecond)
		if n := len(ahk.attemptsOf(back.str("requestId"))); n != 0 {
			t.Errorf("a backwards status was sent %d times", n)
		}
		if lr := pushLookup(t, in, back.str("requestId")); lr.status != http.StatusNotFound {
			t.Errorf("a refused status was queued: %s", lr)
		}
	})

	t.Run("against the statuses still queued", func(t *testing.T) {
		o := pickOrder()
		pending := o.next("PENDING", 1000)
		ahk.script(pending.str("requestId"), ahkU) // retried until the script changes
		pushPostAsync(t, in, pending.bytes()).expectQueued(t, pending.str("requestId"))
		toPick := o.next("TO_PICK_UP", 3000)
		pushPostAsync(t, in, toPick.bytes()).expectQueued(t, toPick.str("requestId"))
		// Nothing was accepted yet: only the queued TO_PICK_UP forbids
		// these (backwards; after TO_PICK_UP only FINISHED).
		taken := o.next("ORDER_TAKEN", 4000)
		pushPost(t, in, taken.bytes()).expectGateway(t, "ORDER_STATUS_INVALID", "F", taken.str("requestId"))
		closed := o.next("CLOSED", 4000)
		pushPost(t, in, closed.bytes()).expectGateway(t, "ORDER_STATUS_INVALID", "F", closed.str("requestId"))
		finished := o.next("FINISHED", 5000)
		pushPostAsync(t, in, finished.bytes()).expectQueued(t, finished.str("requestId"))

		// Delivery rule "Retries": the lane waits while its head is retried.
		deadline := time.Now().Add(30 * time.Second)
		for len(ahk.attemptsOf(pending.str("requestId"))) < 3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		for _, a := range ahk.lane(o.str("merchantBizNo")) {
			if a.requestID != pending.str("requestId") {
				t.Fatalf("%s was sent while the lane's head PENDING was still being retried", a.status)
			}
		}
		ahk.script(pending.str("requestId"), ahkS)
		pushAwait(t, in, finished.str("requestId"), 60*time.Second, pushSucceeded)
		var got []string
		for _, a := range ahk.lane(o.str("merchantBizNo")) {
			if len(got) == 0 || got[len(got)-1] != a.status {
				got = append(got, a.status)
			}
		}
		if strings.Join(got, ",") != "PENDING,TO_PICK_UP,FINISHED" {
			t.Errorf("AlipayHK got %v, want PENDING,TO_PICK_UP,FINISHED and never the refused ones", got)
		}
	})

	t.Run("re-posting the current status is the stored SUCCESS", func(t *testing.T) {
		o := newOrder()
		first := o.next("TICKETED", 1000)
		r := pushPost(t, in, first.bytes())
		r.expectAlipay(t, ahk.finalReply(t, first.str("requestId")), first.str("requestId"))
		var accepted envelope
		_ = json.Unmarshal(r.body, &accepted)
		again := o.next("TICKETED", 2000)
		// Reading: the gateway's SUCCESS (made from the stored reply, not
		// AlipayHK's answer) is decided by the gateway.
		env := pushPost(t, in, again.bytes()).expectGateway(t, "SUCCESS", "S", again.str("requestId"))
		if env.OrderID != accepted.OrderID || env.OrderStatus != "TICKETED" || !pushSameJSON(env.DistributeResult, accepted.DistributeResult) {
			t.Errorf("re-sent TICKETED: %+v, want the stored orderId %s and distributeResult %s", env, accepted.OrderID, accepted.DistributeResult)
		}
		time.Sleep(500 * time.Millisecond)
		if n := len(ahk.lane(o.str("merchantBizNo"))); n != 1 {
			t.Errorf("AlipayHK got the order %d times; a re-sent current status must not be sent", n)
		}
	})
}

// TestPushQueuedIs202WithTheEntry: answers row "queued and not final yet
// (AlipayHK said U, timed out, unreachable, 429, 5xx, or Prefer:
// respond-async) → 202 with the entry", and then the entry finishing once
// AlipayHK answers; a re-POST of the same body then gets AlipayHK's final
// envelope ("the same entry, its current result").
func TestPushQueuedIs202WithTheEntry(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr(), wait: "3s", attemptTimeout: "1s"}.start(t, caddyOptions{})
	causes := []struct {
		name  string
		step  ahkStep
		async bool
	}{
		{"AlipayHK said U", ahkU, false},
		{"AlipayHK said REQUEST_TRAFFIC_EXCEED_LIMIT", ahkTrafficLimit, false},
		{"timed out", ahkHang, false},
		{"unreachable (connection reset)", ahkReset, false},
		{"HTTP 429", ahk429, false},
		{"HTTP 5xx", ahk5xx, false},
		{"Prefer: respond-async", ahkS.after(500 * time.Millisecond), true},
	}
	orders := make([]order, len(causes))
	replies := make([]pushReply, len(causes))
	errs := make([]error, len(causes))
	var wg sync.WaitGroup
	for i, c := range causes {
		orders[i] = newOrder()
		ahk.script(orders[i].str("merchantBizNo"), c.step)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			replies[i], errs[i] = pushTry(in, pushCall{body: orders[i].bytes(), async: causes[i].async})
		}(i)
	}
	wg.Wait()
	for i, c := range causes {
		t.Run(c.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			o, id := orders[i], orders[i].str("requestId")
			e := replies[i].expectQueued(t, id)
			if e.MerchantBizNo != o.str("merchantBizNo") || e.OrderStatus != "TICKETED" {
				t.Errorf("202 entry: %s", replies[i].body)
			}
			if !c.async {
				if e.Attempts < 1 || e.lastError() == "" {
					t.Errorf("queued after failed attempts, but attempts %d, lastError %q", e.Attempts, e.lastError())
				}
			}
			ahk.script(o.str("merchantBizNo"), ahkS)
			done := pushAwait(t, in, id, 60*time.Second, pushSucceeded)
			final := ahk.finalReply(t, id)
			if !pushSameJSON(done.Reply, final) {
				t.Errorf("entry reply %s, want %s", done.Reply, final)
			}
			before := len(ahk.attemptsOf(id))
			pushPost(t, in, o.bytes()).expectAlipay(t, final, id)
			if after := len(ahk.attemptsOf(id)); after != before {
				t.Errorf("a re-POST of a final entry was sent again (%d → %d attempts)", before, after)
			}
		})
	}
}

// TestPushStoreUnavailableIs503AndNothingQueued: answers row "the state store
// is unavailable, so nothing was queued → 503, the caller's envelope with
// UNKNOWN_EXCEPTION (U)".
func TestPushStoreUnavailableIs503AndNothingQueued(t *testing.T) {
	t.Parallel()
	addr, stop, err := redistest.StartServer()
	if err != nil {
		if err == redistest.ErrNotInstalled {
			redistest.Start(t) // skips or fails exactly as the other Redis tests do
		}
		t.Fatal(err)
	}
	defer stop()
	ahk := newAlipayStandIn(t)
	store := fmt.Sprintf("store redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix push-%s:\n\t\t\t}", addr, uid(6))
	in := pushConfig{upstream: ahk.addr(), store: store}.start(t, caddyOptions{})
	ok := newOrder()
	pushPost(t, in, ok.bytes()).expectAlipay(t, ahk.finalReply(t, ok.str("requestId")), ok.str("requestId"))

	stop()
	for _, async := range []bool{false, true} {
		o := newOrder()
		r := pushSend(t, in, pushCall{body: o.bytes(), async: async})
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("store down (async %v): want 503, got %s", async, r)
		}
		r.gatewayEnvelope(t, "UNKNOWN_EXCEPTION", "U", o.str("requestId"))
		time.Sleep(time.Second)
		if n := len(ahk.attemptsOf(o.str("requestId"))); n != 0 {
			t.Errorf("an order refused with 503 was sent %d times", n)
		}
	}
}

// TestPushDerivedRequestId: "requestId is optional: when absent, the
// gateway derives it deterministically from (merchantBizNo, orderStatus,
// orderModifyTime) (32 lowercase hex characters), so a POST that the legacy
// system retries maps to the same requestId".
func TestPushDerivedRequestId(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})
	o := newOrder().with("requestId", nil)

	r := pushPost(t, in, o.bytes())
	id := r.header.Get("Order-Push-Request-Id")
	if !pushRequestIDPattern.MatchString(id) {
		t.Fatalf("derived requestId %q is not 32 lowercase hex: %s", id, r)
	}
	r.expectAlipay(t, ahk.finalReply(t, id), id)
	atts := ahk.attemptsOf(id)
	if len(atts) != 1 {
		t.Fatalf("AlipayHK got %d attempts with the derived requestId", len(atts))
	}
	var sent map[string]any
	_ = json.Unmarshal(atts[0].body, &sent)
	if sent["requestId"] != id {
		t.Errorf("AlipayHK got requestId %v, the legacy system was told %s", sent["requestId"], id)
	}

	t.Run("a retried POST maps to the same entry", func(t *testing.T) {
		again := pushPost(t, in, o.bytes())
		again.expectAlipay(t, r.body, id)
		if n := len(ahk.attemptsOf(id)); n != 1 {
			t.Errorf("a retried POST was sent again: %d attempts", n)
		}
	})
	t.Run("the same triple with another body is PARAM_ILLEGAL", func(t *testing.T) {
		// Reading: the requestId comes from the triple alone, so a body
		// that differs elsewhere is "the same requestId with a different
		// body".
		env := pushPost(t, in, o.with("tradeNo", "another-trade").bytes()).expectGateway(t, "PARAM_ILLEGAL", "F", id)
		if !strings.Contains(env.Result.ResultMessage, "requestId") {
			t.Errorf("resultMessage %q does not name requestId", env.Result.ResultMessage)
		}
	})
	t.Run("another triple, another requestId", func(t *testing.T) {
		other := newOrder().with("requestId", nil)
		r2 := pushPost(t, in, other.bytes())
		id2 := r2.header.Get("Order-Push-Request-Id")
		if !pushRequestIDPattern.MatchString(id2) || id2 == id {
			t.Fatalf("derived requestId of another order: %q (first %q)", id2, id)
		}
		r2.expectAlipay(t, ahk.finalReply(t, id2), id2)
		later := o.with("orderModifyTime", 1742977506709) // the same status re-sent later: the re-send rule
		r3 := pushPost(t, in, later.bytes())
		if id3 := r3.header.Get("Order-Push-Request-Id"); !pushRequestIDPattern.MatchString(id3) || id3 == id {
			t.Errorf("another orderModifyTime derived %q (first %q)", id3, id)
		}
	})
	t.Run("deterministic: another egress derives the same requestId", func(t *testing.T) {
		other := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})
		fresh := newOrder().with("requestId", nil)
		r1 := pushPost(t, in, fresh.bytes())
		r2 := pushPost(t, other, fresh.bytes())
		id1, id2 := r1.header.Get("Order-Push-Request-Id"), r2.header.Get("Order-Push-Request-Id")
		if id1 == "" || id1 != id2 {
			t.Errorf("two egress instances derived %q and %q for one order", id1, id2)
		}
		for _, a := range ahk.lane(fresh.str("merchantBizNo")) {
			if a.requestID != id1 {
				t.Errorf("AlipayHK got requestId %q, want %q", a.requestID, id1)
			}
		}
	})
}

// pushReordered is the same JSON value as body, written differently: keys
// in reverse order, indented, spaces around colons.
func pushReordered(t testing.TB, body []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",\n")
		}
		var v bytes.Buffer
		_ = json.Indent(&v, m[k], "    ", "  ")
		fmt.Fprintf(&b, "    %q :  %s", k, v.Bytes())
	}
	b.WriteString("\n}\n")
	return b.Bytes()
}

// TestPushSameRequestIdSameJSONValueIsTheSameEntry: "The same
// requestId again with the same body → the same entry (its current
// result); with a different body → PARAM_ILLEGAL. Nothing is queued
// twice", where the same body means the same JSON value.
func TestPushSameRequestIdSameJSONValueIsTheSameEntry(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})

	t.Run("final entry", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		first := pushPost(t, in, pushReordered(t, o.bytes()))
		first.expectAlipay(t, ahk.finalReply(t, id), id)
		pushPost(t, in, o.bytes()).expectAlipay(t, first.body, id)
		env := pushPost(t, in, o.with("tradeNo", "another-trade").bytes()).expectGateway(t, "PARAM_ILLEGAL", "F", id)
		if !strings.Contains(env.Result.ResultMessage, "requestId") {
			t.Errorf("resultMessage %q does not name requestId", env.Result.ResultMessage)
		}
		if n := len(ahk.attemptsOf(id)); n != 1 {
			t.Errorf("AlipayHK got %d attempts, want 1", n)
		}
		if e := pushLookup(t, in, id).expectEntry(t, id); e.State != pushSucceeded {
			t.Errorf("a refused different body changed the entry: %s", pushRaw(e.raw))
		}
	})

	t.Run("queued entry", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		ahk.script(id, ahkU)
		q1 := pushPostAsync(t, in, o.bytes()).expectQueued(t, id)
		q2 := pushPostAsync(t, in, pushReordered(t, o.bytes())).expectQueued(t, id)
		if q1.RequestID != q2.RequestID {
			t.Errorf("two entries for one requestId: %s, %s", q1.RequestID, q2.RequestID)
		}
		pushPost(t, in, o.with("tradeNo", "another-trade").bytes()).expectGateway(t, "PARAM_ILLEGAL", "F", id)
		ahk.script(id, ahkS)
		done := pushAwait(t, in, id, 60*time.Second, pushSucceeded)
		atts := ahk.settledAttemptsOf(t, id)
		if done.Attempts != len(atts) {
			t.Errorf("entry counts %d attempts, AlipayHK got %d: queued twice?", done.Attempts, len(atts))
		}
		var answeredS int
		for _, a := range atts {
			if a.answeredS {
				answeredS++
			}
		}
		if answeredS != 1 {
			t.Errorf("AlipayHK answered S %d times for one requestId", answeredS)
		}
		ahk.checkWellFormed(t, id)
	})
}

// TestPushLookupByRequestId: "GET <same path>?requestId=<id> returns
// the entry ... or 404", for each state.
func TestPushLookupByRequestId(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})

	t.Run("queued", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		ahk.script(id, ahkU)
		pushPostAsync(t, in, o.bytes()).expectQueued(t, id)
		deadline := time.Now().Add(30 * time.Second)
		var e pushEntry
		for {
			e = pushLookup(t, in, id).expectEntry(t, id)
			if e.Attempts >= 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		got := len(ahk.attemptsOf(id))
		if e.State != pushQueued || e.Attempts < 2 || e.lastError() == "" {
			t.Errorf("a retried entry: %s", pushRaw(e.raw))
		}
		if e.Attempts > got {
			t.Errorf("the entry counts %d attempts, AlipayHK got %d", e.Attempts, got)
		}
		if e.MerchantBizNo != o.str("merchantBizNo") || e.OrderStatus != "TICKETED" {
			t.Errorf("entry: %s", pushRaw(e.raw))
		}
		ahk.script(id, ahkS)
		pushAwait(t, in, id, 60*time.Second, pushSucceeded)
	})
	t.Run("succeeded", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		pushPost(t, in, o.bytes())
		e := pushLookup(t, in, id).expectEntry(t, id)
		if e.State != pushSucceeded || e.Attempts != 1 || !pushSameJSON(e.Reply, ahk.finalReply(t, id)) {
			t.Errorf("succeeded entry: %s", pushRaw(e.raw))
		}
	})
	t.Run("failed", func(t *testing.T) {
		o := newOrder()
		id := o.str("requestId")
		ahk.script(id, ahkF("PARAM_ILLEGAL"))
		pushPost(t, in, o.bytes())
		e := pushLookup(t, in, id).expectEntry(t, id)
		if e.State != pushFailed || !pushSameJSON(e.Reply, ahk.finalReply(t, id)) {
			t.Errorf("failed entry: %s", pushRaw(e.raw))
		}
	})
	t.Run("unknown requestId is 404", func(t *testing.T) {
		r := pushLookup(t, in, uid(32))
		if r.status != http.StatusNotFound {
			t.Fatalf("want 404, got %s", r)
		}
		r.expectHeaders(t, "gateway", "")
	})
}

// TestPushEveryAttemptSameBytesFreshSignature: delivery rule "Each attempt":
// "Each attempt goes to
// path with the same requestId and the same body bytes, a fresh
// Request-Time (epoch milliseconds) and a fresh signature"; three U then S
// within wait also gives the answers table's 200.
func TestPushEveryAttemptSameBytesFreshSignature(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.setKeyVersion("1")
	in := pushConfig{upstream: ahk.addr(), wait: "10s"}.start(t, caddyOptions{})
	o := newOrder()
	id := o.str("requestId")
	ahk.script(id, append(ahkTimes(2, ahkU), ahkTrafficLimit, ahkS)...)
	r := pushPost(t, in, o.bytes())
	r.expectAlipay(t, ahk.finalReply(t, id), id)
	atts := ahk.attemptsOf(id)
	if len(atts) != 4 {
		t.Fatalf("AlipayHK got %d attempts, want 4 (U, U, U, S)", len(atts))
	}
	ahk.checkWellFormed(t, id) // path, Client-Id, epoch ms, signature over each attempt's own Request-Time, same bytes
	for i := 1; i < len(atts); i++ {
		// An attempt is signed after the previous one was answered, so its
		// Request-Time is not older than that one's arrival.
		prev := atts[i-1].at.UnixMilli()
		rt, _ := strconv.ParseInt(atts[i].header.Get("Request-Time"), 10, 64)
		if rt < prev {
			t.Errorf("attempt %d reuses an old Request-Time %d (previous attempt arrived at %d)", i+1, rt, prev)
		}
		if atts[i].header.Get("Request-Time") != atts[i-1].header.Get("Request-Time") &&
			atts[i].header.Get("Signature") == atts[i-1].header.Get("Signature") {
			t.Errorf("attempt %d: new Request-Time, old Signature", i+1)
		}
	}
	if e := pushLookup(t, in, id).expectEntry(t, id); e.Attempts != 4 || e.State != pushSucceeded {
		t.Errorf("entry: %s", pushRaw(e.raw))
	}
}

// TestPushBadRepliesCountAsUAndAreRetried: delivery rule "Reply check": "An
// unsigned, unverifiable or unparseable reply counts as U" and "Retries": "U
// (including REQUEST_TRAFFIC_EXCEED_LIMIT), transport errors, timeouts and HTTP
// 5xx are retried". Each fault twice, then S: the entry succeeds on the third
// attempt with AlipayHK's verified S, and its callback reports it.
func TestPushBadRepliesCountAsUAndAreRetried(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	secret := pushNewSecret()
	hooks := newHookReceiver(t, secret)
	in := pushConfig{upstream: ahk.addr(), attemptTimeout: "1s", callback: hooks.url(), secret: secret}.start(t, caddyOptions{})
	faults := []struct {
		name string
		step ahkStep
	}{
		{"unsigned S", ahkUnsigned},
		{"unsigned F", ahkUnsignedF},
		{"signed with the wrong key", ahkWrongKey},
		{"truncated", ahkTruncated},
		{"connection reset", ahkReset},
		{"HTTP 5xx", ahk5xx},
		{"HTTP 429", ahk429},
		{"U", ahkU},
		{"REQUEST_TRAFFIC_EXCEED_LIMIT", ahkTrafficLimit},
		{"timeout", ahkHang},
	}
	ids := make([]string, len(faults))
	for i, f := range faults {
		o := newOrder()
		ids[i] = o.str("requestId")
		ahk.script(ids[i], f.step, f.step, ahkS)
		pushPostAsync(t, in, o.bytes()).expectQueued(t, ids[i])
	}
	for i, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			id := ids[i]
			e := pushAwait(t, in, id, 90*time.Second, pushSucceeded, pushFailed, pushExpired)
			if e.State != pushSucceeded {
				t.Fatalf("%s was taken as final: %s", f.name, pushRaw(e.raw))
			}
			atts := ahk.attemptsOf(id)
			if len(atts) != 3 || e.Attempts != 3 {
				t.Errorf("AlipayHK got %d attempts, the entry counts %d; want 3 (two %s, then S)", len(atts), e.Attempts, f.name)
			}
			if !pushSameJSON(e.Reply, ahk.finalReply(t, id)) {
				t.Errorf("entry reply %s is not the verified S %s", e.Reply, ahk.finalReply(t, id))
			}
			ahk.checkWellFormed(t, id)
			ds := hooks.await(t, id, pushSucceeded, 30*time.Second)
			hooks.checkVerified(t, ds)
		})
	}
}

// TestPushConnectionRefusedIsRetried: delivery rule "Retries": "transport errors
// ... are retried": AlipayHK not listening at all, then back.
func TestPushConnectionRefusedIsRetried(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr(), wait: "2s"}.start(t, caddyOptions{})
	ahk.closeListener()
	o := newOrder()
	id := o.str("requestId")
	e := pushPost(t, in, o.bytes()).expectQueued(t, id)
	if e.Attempts < 1 || e.lastError() == "" {
		t.Errorf("202 after refused connections: attempts %d, lastError %q", e.Attempts, e.lastError())
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Attempts < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		e = pushLookup(t, in, id).expectEntry(t, id)
	}
	if e.Attempts < 3 || e.State != pushQueued {
		t.Fatalf("not retried while refused: %s", pushRaw(e.raw))
	}
	ahk.reopen(t)
	done := pushAwait(t, in, id, 60*time.Second, pushSucceeded)
	got := len(ahk.attemptsOf(id))
	if got < 1 || done.Attempts <= got {
		t.Errorf("entry counts %d attempts, AlipayHK got %d: the refused ones must count", done.Attempts, got)
	}
}

// TestPushRetriesUntilMaxAgeThenExpired: delivery rule "Retries": "retried ...
// until max_age — then the entry is expired", final state expired, and its
// callback (delivery rule "Callback"), with a secret given without the whsec_
// prefix.
func TestPushRetriesUntilMaxAgeThenExpired(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	secret := strings.TrimPrefix(pushNewSecret(), "whsec_")
	hooks := newHookReceiver(t, secret)
	in := pushConfig{upstream: ahk.addr(), maxAge: "3s", callback: hooks.url(), secret: secret}.start(t, caddyOptions{})
	o := newOrder()
	id := o.str("requestId")
	ahk.script(id, ahkU)
	pushPostAsync(t, in, o.bytes()).expectQueued(t, id)
	e := pushAwait(t, in, id, 60*time.Second, pushExpired, pushSucceeded, pushFailed)
	if e.State != pushExpired {
		t.Fatalf("an entry AlipayHK always answers U ended %s", e.State)
	}
	created, updated := pushTime(t, "createdAt", e.CreatedAt), pushTime(t, "updatedAt", e.UpdatedAt)
	if age := updated.Sub(created); age < 3*time.Second-10*time.Millisecond {
		t.Errorf("expired after %s, before max_age 3s", age)
	}
	if got := len(ahk.attemptsOf(id)); got < 3 || e.Attempts != got {
		t.Errorf("expired after %d attempts (AlipayHK got %d); retry_max 200ms over 3s makes many", e.Attempts, got)
	}
	// Backoff: sleeps drawn from [0, min(200ms, 50ms·2^(n-1))] average about
	// 100ms once capped, so 3s hold some 30 attempts; hundreds mean the
	// retries do not back off. (A slow machine only makes fewer.)
	if e.Attempts > 300 {
		t.Errorf("%d attempts in 3s: retries without backoff", e.Attempts)
	}
	if e.lastError() == "" {
		t.Error("an expired entry has no lastError")
	}
	n := len(ahk.attemptsOf(id))
	time.Sleep(time.Second)
	if m := len(ahk.attemptsOf(id)); m != n {
		t.Errorf("an expired entry was still sent (%d → %d attempts)", n, m)
	}
	ds := hooks.await(t, id, pushExpired, 30*time.Second)
	hooks.checkVerified(t, ds)
}

// TestPushFailedOrExpiredEntryUnblocksItsLane: delivery rule "Retries": "Lanes
// blocked by a retrying entry wait; an entry that ends failed or expired
// unblocks its lane", with the order of "One order, one lane".
func TestPushFailedOrExpiredEntryUnblocksItsLane(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	in := pushConfig{upstream: ahk.addr(), maxAge: "4s"}.start(t, caddyOptions{})

	lane := func(t *testing.T, end func(headID string)) (head, next order) {
		o := pickOrder()
		head, next = o.next("PENDING", 1000), o.next("ORDER_TAKEN", 2000)
		ahk.script(head.str("requestId"), ahkU)
		pushPostAsync(t, in, head.bytes()).expectQueued(t, head.str("requestId"))
		pushPostAsync(t, in, next.bytes()).expectQueued(t, next.str("requestId"))
		end(head.str("requestId"))
		pushAwait(t, in, next.str("requestId"), 60*time.Second, pushSucceeded)
		atts := ahk.lane(o.str("merchantBizNo"))
		seenNext := false
		for _, a := range atts {
			switch a.requestID {
			case next.str("requestId"):
				seenNext = true
			case head.str("requestId"):
				if seenNext {
					t.Errorf("the head was sent after the next entry")
				}
			}
		}
		return head, next
	}
	t.Run("failed", func(t *testing.T) {
		lane(t, func(headID string) {
			time.Sleep(500 * time.Millisecond) // a few U first
			ahk.script(headID, ahkF("ORDER_STATUS_INVALID"))
			if e := pushAwait(t, in, headID, 30*time.Second, pushFailed); !pushSameJSON(e.Reply, ahk.finalReply(t, headID)) {
				t.Errorf("failed entry's reply: %s", e.Reply)
			}
		})
	})
	t.Run("expired", func(t *testing.T) {
		// The next entry is posted with the head, so both would expire
		// together; it is posted 2s later instead, leaving it 2s of life
		// after the head expires.
		o := pickOrder()
		head := o.next("PENDING", 1000)
		ahk.script(head.str("requestId"), ahkU)
		pushPostAsync(t, in, head.bytes()).expectQueued(t, head.str("requestId"))
		time.Sleep(2 * time.Second)
		next := o.next("ORDER_TAKEN", 2000)
		pushPostAsync(t, in, next.bytes()).expectQueued(t, next.str("requestId"))
		pushAwait(t, in, head.str("requestId"), 30*time.Second, pushExpired)
		pushAwait(t, in, next.str("requestId"), 30*time.Second, pushSucceeded)
		atts := ahk.lane(o.str("merchantBizNo"))
		if last := atts[len(atts)-1]; last.requestID != next.str("requestId") {
			t.Errorf("the lane's last attempt is %s, want the next entry's", last.status)
		}
		for _, a := range atts[:len(atts)-1] {
			if a.requestID != head.str("requestId") {
				t.Errorf("the next entry was sent before the head expired")
			}
		}
	})
}

// TestPushCallbackSignedRetriedUntil2xx: delivery rule "Callback": every final
// state is POSTed at least once, retried until the legacy system answers 2xx,
// signed per Standard Webhooks with webhook-id the same across retries; body:
// the entry as in the GET. The secret comes from {env.*}.
func TestPushCallbackSignedRetriedUntil2xx(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	secret := pushNewSecret()
	hooks := newHookReceiver(t, secret)
	in := pushConfig{upstream: ahk.addr(), callback: hooks.url(), secret: "{env.PUSH_TEST_CALLBACK_SECRET}"}.
		start(t, caddyOptions{env: []string{"PUSH_TEST_CALLBACK_SECRET=" + secret}})

	check := func(t *testing.T, id, state string, failures int) []hookDelivery {
		ds := hooks.await(t, id, state, 60*time.Second)
		hooks.checkVerified(t, ds)
		if len(ds) != failures+1 {
			t.Errorf("%d deliveries, want %d (%d answered 500, then one 2xx)", len(ds), failures+1, failures)
		}
		for i, d := range ds {
			if d.id != ds[0].id {
				t.Errorf("delivery %d has webhook-id %q, the first had %q", i+1, d.id, ds[0].id)
			}
			if d.entry.State != state {
				t.Errorf("delivery %d reports state %q", i+1, d.entry.State)
			}
		}
		look := pushLookup(t, in, id).expectEntry(t, id)
		got := ds[len(ds)-1].entry
		got.requireKeys(t, pushLookupKeys...)
		if got.RequestID != look.RequestID || got.MerchantBizNo != look.MerchantBizNo || got.OrderStatus != look.OrderStatus ||
			got.State != look.State || got.Attempts != look.Attempts || !pushSameJSON(got.Reply, look.Reply) ||
			pushStr(got.CreatedAt) != pushStr(look.CreatedAt) {
			t.Errorf("callback body is not the entry:\ncallback %s\nlookup   %s", ds[len(ds)-1].body, pushRaw(look.raw))
		}
		time.Sleep(time.Second)
		if later := hooks.of(id); len(later) != len(ds) {
			t.Errorf("delivered again after a 2xx: %d deliveries", len(later))
		}
		return ds
	}
	var succeededID, failedID string
	t.Run("succeeded, retried until 2xx", func(t *testing.T) {
		o := newOrder()
		succeededID = o.str("requestId")
		hooks.failFirst(succeededID, 2)
		pushPost(t, in, o.bytes()).expectAlipay(t, ahk.finalReply(t, succeededID), succeededID)
		check(t, succeededID, pushSucceeded, 2)
	})
	t.Run("failed", func(t *testing.T) {
		o := newOrder()
		failedID = o.str("requestId")
		ahk.script(failedID, ahkF("UN_SUPPORT_BUSINESS"))
		pushPost(t, in, o.bytes()).expectAlipay(t, ahk.finalReply(t, failedID), failedID)
		check(t, failedID, pushFailed, 0)
	})
	if a, b := hooks.of(succeededID), hooks.of(failedID); len(a) > 0 && len(b) > 0 && a[0].id == b[0].id {
		t.Errorf("two entries' callbacks share webhook-id %q", a[0].id)
	}
}
