package caddytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// crashAck is an S the caller got before the crash.
type crashAck struct {
	bizNo, status string
	body          []byte // the request body, signed afresh to replay it
	answer        []byte
	signature     string
	orderID       string
}

// TestNoAcknowledgedChangeLostOnSIGKILL (issue 9 item 13's crash figures):
// under concurrent load, Caddy is killed with SIGKILL (no clean-up of any
// kind) at an arbitrary moment, then started again on the same state. Every
// S a caller got before the kill is still there: replaying its request
// gives the same bytes and signature without calling the upstream, and the
// order is at least at the acknowledged status. Every S carries an orderId
// the upstream really issued (no false S). bbolt and Redis alike.
func TestNoAcknowledgedChangeLostOnSIGKILL(t *testing.T) {
	const rounds, workers = 3, 6
	var issuedMu sync.Mutex
	issued := map[string]bool{}
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		id := "ORD-" + uid(12)
		issuedMu.Lock()
		issued[id] = true
		issuedMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"orderId":%q,"distributeResult":[]}`, id)
	})
	stores := []struct {
		name string
		g    func(t *testing.T) gateway
	}{
		{"bbolt", func(*testing.T) gateway { return gateway{upstream: up.addr(), options: opsCouponScenario} }},
		{"redis", func(t *testing.T) gateway {
			return redisGateway(up.addr(), redistest.Start(t), "crash-"+uid(4)+":")
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			g := st.g(t)
			dataDir := t.TempDir()
			var sent, acked, checked, lost, falseS int
			for round := 1; round <= rounds; round++ {
				in := startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
				acks, n := crashLoad(t, in, workers, 1500*time.Millisecond+time.Duration(round)*300*time.Millisecond)
				sent += n
				acked += len(acks)
				if len(acks) == 0 {
					t.Fatalf("round %d: no S before the kill; the load did not run", round)
				}

				in = startCaddy(t, g.caddyfile, caddyOptions{dataDir: dataDir})
				calls := up.count()
				for _, a := range acks {
					checked++
					issuedMu.Lock()
					real := issued[a.orderID]
					issuedMu.Unlock()
					if !real {
						falseS++
						t.Errorf("round %d: S with orderId %q, which the upstream never issued", round, a.orderID)
					}
					r, err := trySend(t, in.url(), signed(t, a.body))
					if err != nil || r.env.Result.ResultCode != "SUCCESS" || !bytes.Equal(r.body, a.answer) || r.header.Get("Signature") != a.signature {
						lost++
						t.Errorf("round %d: the acknowledged %s of %s is gone after SIGKILL: replay %v %s", round, a.status, a.bizNo, err, r.body)
						continue
					}
					var v opsOrderView
					if status, body := opsAdminGet(t, in, opsOrderPath(testClient, a.bizNo), &v); status != http.StatusOK ||
						(a.status == "USED" && v.OrderStatus != "USED") || (v.OrderStatus != "TICKETED" && v.OrderStatus != "USED") {
						lost++
						t.Errorf("round %d: order %s acknowledged %s, stored: HTTP %d %s", round, a.bizNo, a.status, status, body)
					}
				}
				if n := up.count() - calls; n != 0 {
					t.Errorf("round %d: replaying acknowledged answers called the upstream %d times", round, n)
				}
				in.kill()
			}
			t.Logf("figures (%s): %d SIGKILL rounds, %d requests sent, %d S acknowledged, %d checked after the kill, acknowledged-then-lost %d, false S %d",
				st.name, rounds, sent, acked, checked, lost, falseS)
		})
	}
}

// crashLoad runs workers that each walk fresh coupon orders through
// TICKETED then USED against in, kills the process with SIGKILL after d,
// and returns every S acknowledged before the kill and how many requests
// were sent.
func crashLoad(t *testing.T, in *instance, workers int, d time.Duration) ([]crashAck, int) {
	t.Helper()
	var mu sync.Mutex
	var acks []crashAck
	sent := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				o := newOrder().with("merchantBizType", "COUPON").with("extInfo", map[string]any{})
				for i, status := range []string{"TICKETED", "USED"} {
					select {
					case <-stop:
						return
					default:
					}
					body := o.next(status, int64(1000*(i+1))).bytes()
					mu.Lock()
					sent++
					mu.Unlock()
					a, err := trySend(t, in.url(), signed(t, body))
					if err != nil || a.env.Result.ResultCode != "SUCCESS" {
						break // killed mid-flight, or U: this order is done
					}
					var env struct {
						OrderID string `json:"orderId"`
					}
					_ = json.Unmarshal(a.body, &env)
					mu.Lock()
					acks = append(acks, crashAck{bizNo: o["merchantBizNo"].(string), status: status, body: body,
						answer: a.body, signature: a.header.Get("Signature"), orderID: env.OrderID})
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(d)
	in.kill()
	close(stop)
	wg.Wait()
	return acks, sent
}
