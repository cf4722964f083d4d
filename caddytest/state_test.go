package caddytest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// issuingUpstream answers SUCCESS with a distinct orderId per call.
func issuingUpstream(t testing.TB) *fakeUpstream {
	var n atomic.Int64
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		id := n.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"orderId":          "ORD-" + r.Header.Get("X-Order-Sync-Scenario") + "-" + string(rune('A'+id%26)) + uid(6),
			"distributeResult": []any{map[string]any{"sceneCode": "PASS"}},
		})
	})
}

const allScenarios = `scenario coupon_with_code {
				merchant_biz_type COUPON
			}
			scenario movie_ticket {
				merchant_biz_type MOVIE
			}
			scenario queue_up {
				merchant_biz_type QUEUE
			}
			scenario self_pick {
				merchant_biz_type PICK
			}
			scenario auto_deduct_voucher {
				merchant_biz_type VOUCHER
			}`

// step is one sync of an order and what it must get.
type step struct {
	status    string
	time      int64
	code      string
	forwarded bool // the upstream is called for this step
}

func runSteps(t *testing.T, in *instance, up *fakeUpstream, o order, steps []step) {
	t.Helper()
	prevStatus := ""
	for i, s := range steps {
		before := up.count()
		o = o.next(s.status, s.time)
		a := send(t, in.url(), signed(t, o.bytes()))
		letter := map[string]string{"SUCCESS": "S", "ORDER_STATUS_INVALID": "F", "PARAM_ILLEGAL": "F"}[s.code]
		a.expect(t, s.code, letter)
		if called := up.count() > before; called != s.forwarded {
			t.Fatalf("step %d (%s): upstream called = %v, want %v", i, s.status, called, s.forwarded)
		}
		if s.forwarded {
			var got struct{ PreviousStatus string }
			_ = json.Unmarshal(up.last(t).body, &got)
			if got.PreviousStatus != prevStatus {
				t.Errorf("step %d: previousStatus = %q, want %q", i, got.PreviousStatus, prevStatus)
			}
		}
		if s.code == "SUCCESS" {
			if a.env.OrderStatus != s.status {
				t.Errorf("step %d: orderStatus = %q", i, a.env.OrderStatus)
			}
			if s.forwarded {
				prevStatus = s.status
			}
		}
	}
}

// TestScenarioRulesEndToEnd walks every rule of the spec's table
// (docs/SPEC.md §6) through
// a real Caddy.
func TestScenarioRulesEndToEnd(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr(), options: allScenarios}.start(t)
	base := func(bizType string) order {
		return newOrder().with("merchantBizType", bizType).with("extInfo", map[string]any{"k": "v"})
	}
	tests := map[string]struct {
		o     order
		steps []step
	}{
		"gift card: resend is the stored success": {newOrder(), []step{
			{"TICKETED", 1000, "SUCCESS", true},
			{"TICKETED", 2000, "SUCCESS", false},
		}},
		"voucher: single status": {base("VOUCHER"), []step{
			{"TICKETED", 1000, "SUCCESS", true},
			{"TICKETED", 1000, "SUCCESS", false},
		}},
		"coupon: refund is an end": {base("COUPON"), []step{
			{"TICKETED", 1000, "SUCCESS", true},
			{"REFUNDED", 2000, "SUCCESS", true},
			{"USED", 3000, "ORDER_STATUS_INVALID", false},
			{"TICKETED", 4000, "ORDER_STATUS_INVALID", false},
			{"REFUNDED", 5000, "SUCCESS", false},
		}},
		"coupon: start anywhere, never back": {base("COUPON"), []step{
			{"USED", 1000, "SUCCESS", true},
			{"TICKETED", 2000, "ORDER_STATUS_INVALID", false},
		}},
		"movie: skip forward": {base("MOVIE"), []step{
			{"TICKETED", 1000, "SUCCESS", true},
			{"USED", 2000, "SUCCESS", true},
			{"REFUNDED", 3000, "ORDER_STATUS_INVALID", false},
		}},
		"queue: CALL_NUM repeats, CANCELLED only from CALL_NUM": {base("QUEUE"), []step{
			{"CALL_NUM", 1000, "SUCCESS", true},
			{"CALL_NUM", 2000, "SUCCESS", true},
			{"NUMBER_ARRIVED", 3000, "SUCCESS", true},
			{"CANCELLED", 4000, "ORDER_STATUS_INVALID", false},
			{"CALL_NUM", 5000, "ORDER_STATUS_INVALID", false},
			{"FINISHED", 6000, "SUCCESS", true},
		}},
		"queue: cancel after a call": {base("QUEUE"), []step{
			{"CALL_NUM", 1000, "SUCCESS", true},
			{"CANCELLED", 2000, "SUCCESS", true},
		}},
		"self pick: after TO_PICK_UP only FINISHED": {base("PICK"), []step{
			{"PENDING", 1000, "SUCCESS", true},
			{"TO_PICK_UP", 2000, "SUCCESS", true},
			{"CLOSED", 3000, "ORDER_STATUS_INVALID", false},
			{"REFUNDED", 3000, "ORDER_STATUS_INVALID", false},
			{"FINISHED", 4000, "SUCCESS", true},
			{"REFUNDED", 5000, "ORDER_STATUS_INVALID", false},
		}},
		"stale update": {base("PICK"), []step{
			{"ORDER_TAKEN", 5000, "SUCCESS", true},
			{"TO_PICK_UP", 4000, "ORDER_STATUS_INVALID", false},
			{"TO_PICK_UP", 5000, "SUCCESS", true},
		}},
		"status of another scenario": {base("PICK"), []step{
			{"TICKETED", 1000, "PARAM_ILLEGAL", false},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { runSteps(t, in, up, tc.o, tc.steps) })
	}
}

func TestResendReturnsStoredOrder(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr()}.start(t)
	o := newOrder()
	first := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	again := send(t, in.url(), signed(t, o.next("TICKETED", 1742977506708).bytes())).expect(t, "SUCCESS", "S")
	if again.env.OrderID != first.env.OrderID || !bytes.Equal(again.env.DistributeResult, first.env.DistributeResult) {
		t.Errorf("re-send answered %s / %s, first was %s / %s", again.env.OrderID, again.env.DistributeResult, first.env.OrderID, first.env.DistributeResult)
	}
	if up.count() != 1 {
		t.Errorf("upstream called %d times; a re-send must not issue a second gift card", up.count())
	}
	sdkVerifies(t, again, demoKeys(t).gatewayPublic)
}

// TestResendKeepsDistributeResultBytes: the first answer and the stored
// order re-sent for the current status carry the upstream's
// distributeResult exactly: the characters a JSON encoder likes to escape
// (& < >) and the whitespace it likes to drop (Python's json.dumps writes
// ", " and ": ") left as they were.
func TestResendKeepsDistributeResultBytes(t *testing.T) {
	const dr = "[{\"sceneCode\": \"PASS\", \"extInfo\": {\"detailLink\": \"https://example.com/v?a=1&b=<2>\",\n  \"name\": \"券 & co\"}}]"
	up := newUpstream(t, jsonReply(http.StatusOK, `{"orderId":"ORD-AMP","distributeResult":`+dr+`}`))
	in := gateway{upstream: up.addr()}.start(t)
	o := newOrder()
	first := send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	if string(first.env.DistributeResult) != dr {
		t.Fatalf("first answer's distributeResult = %s, want %s", first.env.DistributeResult, dr)
	}
	again := send(t, in.url(), signed(t, o.next("TICKETED", 1742977506708).bytes())).expect(t, "SUCCESS", "S")
	if string(again.env.DistributeResult) != dr {
		t.Errorf("re-sent status answered distributeResult %s, want the upstream's bytes %s", again.env.DistributeResult, dr)
	}
	if up.count() != 1 {
		t.Errorf("upstream called %d times, want 1", up.count())
	}
}

func TestReplayIsByteIdentical(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr()}.start(t)
	body := newOrder().bytes()
	first := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
	// A retry signed afresh over the same bytes is a replay.
	second := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("replay body differs:\n%s\n%s", first.body, second.body)
	}
	for _, h := range []string{"Response-Time", "Signature", "Client-Id"} {
		if first.header.Get(h) != second.header.Get(h) {
			t.Errorf("replay header %s differs: %q vs %q", h, first.header.Get(h), second.header.Get(h))
		}
	}
	if up.count() != 1 {
		t.Errorf("upstream called %d times", up.count())
	}

	// A final F is replayed as well.
	o := newOrder().with("orderStatus", "TICKETED")
	send(t, in.url(), signed(t, o.bytes())).expect(t, "SUCCESS", "S")
	reused := o.with("amount", map[string]any{"value": "1", "currency": "HKD"})
	send(t, in.url(), signed(t, reused.bytes())).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "requestId")
}

func TestUnknownIsNotStoredSoRetrySucceeds(t *testing.T) {
	var calls atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alipaySuccess))
	})
	in := gateway{upstream: up.addr()}.start(t)
	body := newOrder().bytes()
	send(t, in.url(), signed(t, body)).expect(t, "UNKNOWN_EXCEPTION", "U")
	send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
	send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
	if up.count() != 2 {
		t.Errorf("upstream called %d times, want 2", up.count())
	}
}

// TestOtherBodyWhileInFlightIsRetryLater: an F is final, so a requestId
// reused with another body gets PARAM_ILLEGAL only against a stored answer.
// While the first request is in flight the answer is U (retry later): the
// first may still end U, and then the other body is processed afresh.
func TestOtherBodyWhileInFlightIsRetryLater(t *testing.T) {
	hold := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release) // a failed assertion must not leave the upstream waiting
	entered := make(chan struct{}, 1)
	var calls atomic.Int64
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alipaySuccess))
	})
	in := gateway{upstream: up.addr()}.start(t)
	first := newOrder()
	other := first.with("amount", map[string]any{"value": "1", "currency": "HKD"})
	third := first.with("amount", map[string]any{"value": "2", "currency": "HKD"})

	firstAnswer := make(chan answer, 1)
	go func() {
		a, err := trySend(t, in.url(), signed(t, first.bytes()))
		if err != nil {
			t.Error(err)
		}
		firstAnswer <- a
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first request never reached the upstream")
	}
	send(t, in.url(), signed(t, other.bytes())).expect(t, "UNKNOWN_EXCEPTION", "U").messageHas(t, "requestId", "retry later")
	release()
	(<-firstAnswer).expect(t, "UNKNOWN_EXCEPTION", "U")

	// Nothing was stored for the requestId: the other body is new.
	s := send(t, in.url(), signed(t, other.bytes())).expect(t, "SUCCESS", "S")
	if up.count() != 2 {
		t.Fatalf("upstream called %d times, want 2", up.count())
	}
	// Now its answer is final: replayed for its bytes, PARAM_ILLEGAL for others.
	if again := send(t, in.url(), signed(t, other.bytes())).expect(t, "SUCCESS", "S"); !bytes.Equal(again.body, s.body) {
		t.Errorf("replay differs:\n%s\n%s", again.body, s.body)
	}
	for _, o := range []order{first, third} {
		send(t, in.url(), signed(t, o.bytes())).expect(t, "PARAM_ILLEGAL", "F").messageHas(t, "requestId", "different body")
	}
	if up.count() != 2 {
		t.Errorf("upstream called %d times, want 2", up.count())
	}
}

func TestConcurrentDuplicatesReachUpstreamOnce(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alipaySuccess))
	})
	in := gateway{upstream: up.addr()}.start(t)
	body := newOrder().bytes()
	answers := sendConcurrently(t, 50, func(int) string { return in.url() }, body)
	successBody := sameSuccess(t, answers)
	if up.count() != 1 {
		t.Errorf("upstream called %d times for 50 identical requests", up.count())
	}
	// After the dust settles every retry gets the stored SUCCESS.
	final := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
	if successBody != nil && !bytes.Equal(final.body, successBody) {
		t.Error("replay differs from the first SUCCESS")
	}
}

func TestConcurrentTransitionsOnOneOrderAreSerialized(t *testing.T) {
	up := issuingUpstream(t)
	in := gateway{upstream: up.addr(), options: allScenarios}.start(t)
	o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
	send(t, in.url(), signed(t, o.next("TICKETED", 1000).bytes())).expect(t, "SUCCESS", "S")
	before := up.count()
	// USED and REFUNDED are both ends: exactly one may win.
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status := "USED"
			if i%2 == 1 {
				status = "REFUNDED"
			}
			a := send(t, in.url(), signed(t, o.next(status, 2000).bytes()))
			results[i] = status + ":" + a.env.Result.ResultCode
		}(i)
	}
	wg.Wait()
	wins := map[string]int{}
	for _, r := range results {
		wins[r]++
	}
	if up.count()-before != 1 {
		t.Errorf("upstream saw %d conflicting transitions, want 1 (%v)", up.count()-before, wins)
	}
	if wins["USED:SUCCESS"] > 0 && wins["REFUNDED:SUCCESS"] > 0 {
		t.Errorf("both end statuses accepted: %v", wins)
	}
}
