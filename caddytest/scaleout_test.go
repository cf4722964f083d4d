package caddytest

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// redisGateway is a gateway whose state lives in the given Redis.
func redisGateway(upstream, addr, prefix string) gateway {
	return gateway{upstream: upstream, options: allScenarios,
		store: fmt.Sprintf("store redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix %s\n\t\t\t}", addr, prefix)}
}

// TestTwoInstancesOnOneRedisDecideOnce: two Caddy processes sharing one
// Redis never both accept a conflicting change, and duplicates of one
// requestId reach the upstream once across both.
func TestTwoInstancesOnOneRedisDecideOnce(t *testing.T) {
	addr := redistest.Start(t)
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		time.Sleep(20 * time.Millisecond) // widen the race window
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"orderId":"ORD-` + uid(8) + `","distributeResult":[]}`))
	})
	prefix := "e2e-" + uid(6) + ":"
	a := redisGateway(up.addr(), addr, prefix).start(t)
	b := redisGateway(up.addr(), addr, prefix).start(t)
	instances := []*instance{a, b}

	t.Run("conflicting end statuses", func(t *testing.T) {
		o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
		send(t, a.url(), signed(t, o.next("TICKETED", 1000).bytes())).expect(t, "SUCCESS", "S")
		before := up.count()
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := map[string]int{}
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				status := []string{"USED", "REFUNDED"}[i%2]
				ans := send(t, instances[(i/2)%2].url(), signed(t, o.next(status, 2000).bytes()))
				mu.Lock()
				accepted[status+":"+ans.env.Result.ResultCode]++
				mu.Unlock()
			}(i)
		}
		wg.Wait()
		if n := up.count() - before; n != 1 {
			t.Errorf("upstream saw %d end-status changes, want exactly 1 (%v)", n, accepted)
		}
		if accepted["USED:SUCCESS"] > 0 && accepted["REFUNDED:SUCCESS"] > 0 {
			t.Errorf("both instances accepted conflicting end statuses: %v", accepted)
		}
	})

	t.Run("duplicates across instances", func(t *testing.T) {
		body := newOrder().bytes()
		before := up.count()
		answers := sendConcurrently(t, 50, func(i int) string { return instances[i%2].url() }, body)
		success := sameSuccess(t, answers)
		if n := up.count() - before; n != 1 {
			t.Errorf("upstream saw one requestId %d times across two instances", n)
		}
		// Either instance replays the stored answer byte for byte.
		for _, in := range instances {
			r := send(t, in.url(), signed(t, body)).expect(t, "SUCCESS", "S")
			if success != nil && !bytes.Equal(r.body, success) {
				t.Error("replay differs between instances")
			}
		}
	})

	t.Run("state written by one is seen by the other", func(t *testing.T) {
		o := newOrder().with("merchantBizType", "PICK").with("extInfo", map[string]any{})
		send(t, a.url(), signed(t, o.next("TO_PICK_UP", 1000).bytes())).expect(t, "SUCCESS", "S")
		send(t, b.url(), signed(t, o.next("CLOSED", 2000).bytes())).expect(t, "ORDER_STATUS_INVALID", "F")
		send(t, b.url(), signed(t, o.next("FINISHED", 2000).bytes())).expect(t, "SUCCESS", "S")
	})
}

func TestRedisDownIsUnknownNeverSuccess(t *testing.T) {
	addr, stop, err := redistest.StartServer()
	if err != nil {
		if err == redistest.ErrNotInstalled {
			redistest.Start(t) // skips or fails exactly as the other Redis tests do
		}
		t.Fatal(err)
	}
	defer stop()
	up := issuingUpstream(t)
	in := redisGateway(up.addr(), addr, "down-"+uid(4)+":").start(t)
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "SUCCESS", "S")
	stop()
	before := up.count()
	send(t, in.url(), signed(t, newOrder().bytes())).expect(t, "UNKNOWN_EXCEPTION", "U")
	if up.count() != before {
		t.Error("the upstream was called while the state store was down")
	}
}

// TestStateSurvivesRestart: bbolt state and replay records outlive the
// process, and replays after a restart do not call the upstream.
func TestStateSurvivesRestart(t *testing.T) {
	up := issuingUpstream(t)
	dataDir := t.TempDir()
	g := gateway{upstream: up.addr(), options: allScenarios}
	first := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
	o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
	ticket := o.next("TICKETED", 1000)
	firstAnswer := send(t, first.url(), signed(t, ticket.bytes())).expect(t, "SUCCESS", "S")
	first.stop()

	second := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
	calls := up.count()
	replayed := send(t, second.url(), signed(t, ticket.bytes())).expect(t, "SUCCESS", "S")
	if !bytes.Equal(replayed.body, firstAnswer.body) || replayed.header.Get("Signature") != firstAnswer.header.Get("Signature") {
		t.Error("replay after restart differs from the first answer")
	}
	if up.count() != calls {
		t.Error("replay after restart called the upstream")
	}
	send(t, second.url(), signed(t, o.next("USED", 2000).bytes())).expect(t, "SUCCESS", "S")
	second.kill() // a crash, not a clean stop

	third := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
	send(t, third.url(), signed(t, o.next("TICKETED", 3000).bytes())).expect(t, "ORDER_STATUS_INVALID", "F")
	send(t, third.url(), signed(t, o.next("USED", 3000).bytes())).expect(t, "SUCCESS", "S")
}

// TestCrashMidFlightDoesNotStrandTheRequest: a process killed while the
// upstream holds a request leaves a claim that expires with its lease.
func TestCrashMidFlightDoesNotStrandTheRequest(t *testing.T) {
	addr := redistest.Start(t)
	hold := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		first := false
		once.Do(func() { first = true; close(entered) })
		if first {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alipaySuccess))
	})
	t.Cleanup(func() { close(hold) })
	g := redisGateway(up.addr(), addr, "crash-"+uid(4)+":")
	g.options += "\n\t\t\tupstream_timeout 2s\n\t\t\tclaim_lease 8s"
	a := g.start(t)
	body := newOrder().bytes()
	c := signed(t, body)
	go sendNoFail(t, a.url(), c) // its connection dies with the process
	<-entered
	a.kill()

	b := g.start(t)
	send(t, b.url(), signed(t, body)).expect(t, "UNKNOWN_EXCEPTION", "U") // still claimed
	deadline := time.Now().Add(20 * time.Second)
	for {
		ans := send(t, b.url(), signed(t, body))
		if ans.env.Result.ResultCode == "SUCCESS" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requestId still blocked long after the claim lease: %s", ans.body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
