package caddytest

// The egress under load and failure: order within a lane under
// concurrency, SIGKILL and restart on the same bbolt file, two instances on
// one Redis with one killed mid-delivery, and reloads while posting.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
)

// pushAck is an order the egress acknowledged with 202.
type pushAck struct {
	requestID string
	bizNo     string
	status    string
	seq       int // place in its lane's acceptance order
}

// pushAcks collects acknowledgements from many goroutines.
type pushAcks struct {
	mu   sync.Mutex
	list []pushAck
}

func (a *pushAcks) add(x pushAck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, x)
}

func (a *pushAcks) all() []pushAck {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]pushAck(nil), a.list...)
}

func (a *pushAcks) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.list)
}

// pushPostLane posts one lane's statuses in order, each after the previous
// was acknowledged (the lane's acceptance order is then the posting order),
// to the instance urlFor(k) for the k-th status. A call cut by a reload or
// a crash is retried with the same body, as a legacy system does, up to
// retries times; stop ends the lane early. It returns the acknowledged
// steps.
func pushPostLane(t testing.TB, urlFor func(k int) string, o order, statuses []string, retries int, stop func() bool, acks *pushAcks) {
	for k, s := range statuses {
		step := o.next(s, int64(1000*(k+1)))
		var r pushReply
		var err error
		for try := 0; ; try++ {
			if stop() {
				return
			}
			r, err = pushTryURL(urlFor(k), pushCall{body: step.bytes(), async: true})
			if err == nil && r.status != http.StatusServiceUnavailable && r.status != http.StatusBadGateway {
				break
			}
			if try >= retries {
				return // not acknowledged: the lane ends here
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r.status != http.StatusAccepted {
			t.Errorf("lane %s, %s: want 202, got %s", o.str("merchantBizNo"), s, r)
			return
		}
		acks.add(pushAck{requestID: step.str("requestId"), bizNo: o.str("merchantBizNo"), status: s, seq: k})
	}
}

// pushCheckLaneOrder asserts that, per lane, the stand-in's first arrivals
// of each requestId are in acceptance order.
func pushCheckLaneOrder(t testing.TB, ahk *alipayStandIn, acks []pushAck) {
	t.Helper()
	byLane := map[string][]pushAck{}
	for _, a := range acks {
		byLane[a.bizNo] = append(byLane[a.bizNo], a)
	}
	for biz, lane := range byLane {
		sort.Slice(lane, func(i, j int) bool { return lane[i].seq < lane[j].seq })
		var want, got []string
		for _, a := range lane {
			want = append(want, a.requestID)
		}
		seen := map[string]bool{}
		for _, a := range ahk.lane(biz) {
			if !seen[a.requestID] {
				seen[a.requestID] = true
				got = append(got, a.requestID)
			}
		}
		// Unacknowledged posts may have been queued too; only the order of
		// the acknowledged ones is checked.
		var gotAcked []string
		for _, id := range got {
			for _, w := range want {
				if id == w {
					gotAcked = append(gotAcked, id)
				}
			}
		}
		if strings.Join(gotAcked, ",") != strings.Join(want, ",") {
			t.Errorf("lane %s: AlipayHK got %v, accepted order %v", biz, gotAcked, want)
		}
	}
}

// pushAwaitAll waits until every acknowledged entry is final on one of
// the instances and returns the ones that did not succeed.
func pushAwaitAll(t testing.TB, in *instance, acks []pushAck, timeout time.Duration) (lost []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, a := range acks {
		for {
			r, err := pushTryURL(pushURL(in)+"?requestId="+a.requestID, pushCall{method: http.MethodGet})
			if err == nil && r.status == http.StatusOK {
				e := pushDecodeEntry(t, r.body)
				if e.State == pushSucceeded {
					break
				}
				if e.State != pushQueued {
					lost = append(lost, fmt.Sprintf("%s (%s %s) ended %s", a.requestID, a.bizNo, a.status, e.State))
					break
				}
			}
			if time.Now().After(deadline) {
				lost = append(lost, fmt.Sprintf("%s (%s %s): %v %v", a.requestID, a.bizNo, a.status, err, r))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return lost
}

// TestPushOrderWithinALaneUnderConcurrency: delivery rule "One order, one
// lane": "Entries of the same
// (client_id, merchantBizNo) are delivered strictly in the order they were
// accepted ... Different orders are delivered concurrently." Lanes are
// posted concurrently with respond-async; in some lanes all statuses race.
func TestPushOrderWithinALaneUnderConcurrency(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.setDefault(ahkS.after(30 * time.Millisecond)) // attempts overlap
	in := pushConfig{upstream: ahk.addr()}.start(t, caddyOptions{})
	url := func(int) string { return pushURL(in) }

	const lanes, racing = 12, 4
	acks := &pushAcks{}
	var wg sync.WaitGroup
	for i := 0; i < lanes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushPostLane(t, url, pickOrder(), pushLane, 0, func() bool { return false }, acks)
		}()
	}
	// Racing lanes: all four statuses at once. Whatever the gateway
	// accepts must be a forward sequence, delivered in that order.
	type raced struct {
		bizNo    string
		accepted map[string]string // requestId -> status
	}
	races := make([]raced, racing)
	var mu sync.Mutex
	for i := range races {
		o := pickOrder()
		races[i] = raced{bizNo: o.str("merchantBizNo"), accepted: map[string]string{}}
		for k, s := range pushLane {
			step := o.next(s, int64(1000*(k+1)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := pushTry(in, pushCall{body: step.bytes(), async: true})
				if err != nil {
					t.Error(err)
					return
				}
				switch r.status {
				case http.StatusAccepted:
					mu.Lock()
					races[i].accepted[step.str("requestId")] = step.str("orderStatus")
					mu.Unlock()
				default:
					r.expectGateway(t, "ORDER_STATUS_INVALID", "F", step.str("requestId"))
				}
			}()
		}
	}
	wg.Wait()
	all := acks.all()
	if len(all) != lanes*len(pushLane) {
		t.Fatalf("%d of %d sequential posts acknowledged", len(all), lanes*len(pushLane))
	}
	for _, r := range races {
		for id, s := range r.accepted {
			all = append(all, pushAck{requestID: id, bizNo: r.bizNo, status: s, seq: pushRank(s)})
		}
	}
	if lost := pushAwaitAll(t, in, all, 3*time.Minute); len(lost) > 0 {
		t.Fatalf("%d entries did not succeed: %v", len(lost), lost)
	}
	pushCheckLaneOrder(t, ahk, all)
	for _, r := range races {
		if len(r.accepted) == 0 {
			t.Errorf("racing lane %s: nothing accepted", r.bizNo)
		}
		var ranks []int
		for _, a := range ahk.lane(r.bizNo) {
			ranks = append(ranks, pushRank(a.status))
		}
		if !sort.IntsAreSorted(ranks) || len(ranks) != len(r.accepted) {
			t.Errorf("racing lane %s: AlipayHK got ranks %v for %d accepted statuses", r.bizNo, ranks, len(r.accepted))
		}
	}
	if ov := ahk.overlaps(); len(ov) > 0 {
		t.Errorf("lanes with two attempts in flight at once: %v", ov)
	}
	// Lanes progress concurrently: attempts of different lanes overlapped.
	atts := ahk.all()
	concurrent := false
	for i := 0; i < len(atts) && !concurrent; i++ {
		for j := i + 1; j < len(atts); j++ {
			if atts[i].bizNo != atts[j].bizNo && atts[j].at.Before(atts[i].landedAt) && atts[i].at.Before(atts[j].landedAt) {
				concurrent = true
				break
			}
		}
	}
	if !concurrent {
		t.Error("no two lanes were ever delivered at the same time")
	}
	for _, a := range all {
		if n := len(ahk.attemptsOf(a.requestID)); n != 1 {
			t.Errorf("%s sent %d times although AlipayHK always answered S", a.requestID, n)
		}
	}
}

// TestPushSIGKILLLosesNoAcknowledgedOrder: delivery rule "Durable first": "a
// crash after the legacy system got 202 loses nothing", and "Reloads and
// restarts": "after a restart, queued entries resume ... at-least-once with a
// stable requestId, which this project's own ingress handler turns into exactly
// one effect". The egress Caddy is killed with entries queued, entries whose
// answer the ingress has given but the egress has not received (held by the
// relay), and posts in progress; it restarts on the same bbolt file.
func TestPushSIGKILLLosesNoAcknowledgedOrder(t *testing.T) {
	t.Parallel()
	issuer := newPushIssuer(t)
	ingress := gateway{upstream: issuer.addr(), options: allScenarios}.start(t)
	relay := newPushRelay(t, fmt.Sprintf("http://127.0.0.1:%d", ingress.port))
	cfg := pushConfig{upstream: relay.addr(), attemptTimeout: "20s", maxAge: "10m"}
	dataDir := t.TempDir()
	egress := cfg.start(t, caddyOptions{dataDir: dataDir})
	relay.holdAfter(8)

	acks := &pushAcks{}
	var killed atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !killed.Load() {
				pushPostLane(t, func(int) string { return pushURL(egress) }, pickOrder(), pushLane[:3], 0, killed.Load, acks)
			}
		}()
	}
	deadline := time.Now().Add(90 * time.Second)
	for (len(relay.heldIDs()) < 4 || acks.len() < 40) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	egress.kill() // posts in progress are cut: those are not acknowledged
	killed.Store(true)
	wg.Wait()
	heldAtKill := relay.heldIDs()
	all := acks.all()
	relayedAtKill := 0
	for _, a := range all {
		if relay.count(a.requestID) > 0 {
			relayedAtKill++
		}
	}
	if len(heldAtKill) == 0 || relayedAtKill == len(all) {
		t.Fatalf("not a crash mid-delivery: %d answers held, %d of %d acknowledged orders relayed", len(heldAtKill), relayedAtKill, len(all))
	}
	relay.release()

	restarted := cfg.start(t, caddyOptions{dataDir: dataDir, port: egress.port, adminPort: egress.adminPort})
	lost := pushAwaitAll(t, restarted, all, 3*time.Minute)
	repeated, split, effects := issuer.effects()
	redelivered := 0
	for _, id := range heldAtKill {
		if relay.count(id) >= 2 {
			redelivered++
		}
	}
	lanes := map[string]bool{}
	for _, a := range all {
		lanes[a.bizNo] = true
	}
	t.Logf("acknowledged (202) orders checked: %d in %d lanes; acknowledged-then-lost = %d; at the kill: %d answers in flight (held), %d acknowledged not yet sent; after the restart %d of the in-flight ones were sent again and answered by the ingress's replay; effects at the upstream: %d",
		len(all), len(lanes), len(lost), len(heldAtKill), len(all)-relayedAtKill, redelivered, effects)
	if len(lost) > 0 {
		t.Errorf("acknowledged-then-lost = %d: %v", len(lost), lost)
	}
	if len(repeated) > 0 || len(split) > 0 {
		t.Errorf("more than one effect: %v %v", repeated, split)
	}
	for _, a := range all {
		if issuer.callsOf(a.requestID) != 1 {
			t.Errorf("%s (%s %s): %d effects at the upstream, want 1", a.requestID, a.bizNo, a.status, issuer.callsOf(a.requestID))
		}
	}
	if redelivered != len(heldAtKill) {
		t.Errorf("%d of %d entries in flight at the kill were sent again after the restart", redelivered, len(heldAtKill))
	}
	byLane := map[string][]pushAck{}
	for _, a := range all {
		byLane[a.bizNo] = append(byLane[a.bizNo], a)
	}
	for biz, lane := range byLane {
		sort.Slice(lane, func(i, j int) bool { return lane[i].seq < lane[j].seq })
		got := issuer.laneOrder(biz)
		for i, a := range lane {
			if i >= len(got) || got[i] != a.status {
				t.Errorf("lane %s reached the upstream as %v, accepted %d statuses in order", biz, got, len(lane))
				break
			}
		}
	}
}

// TestPushTwoInstancesOnOneRedisOneKilledMidDelivery: delivery rule "Many
// instances": "With the
// Redis store, any number of Caddy instances share the outbox; a lane is
// delivered by one instance at a time (leased); a crashed instance's lanes
// are resumed by the others after the lease."
//
// Reading: the lease's length is the implementer's (no option in the egress
// Caddyfile); the survivor gets two minutes.
func TestPushTwoInstancesOnOneRedisOneKilledMidDelivery(t *testing.T) {
	t.Parallel()
	addr := redistest.Start(t)
	ahk := newAlipayStandIn(t)
	ahk.setReplay(true)     // AlipayHK turns a redelivery into one effect
	ahk.setDefault(ahkHold) // decided on arrival, answered after release
	store := fmt.Sprintf("store redis {\n\t\t\t\taddress %s\n\t\t\t\tkey_prefix push-%s:\n\t\t\t}", addr, uid(6))
	cfg := func(name string) pushConfig {
		return pushConfig{upstream: ahk.addr(), store: store, attemptTimeout: "60s", maxAge: "10m",
			proxy: "header_up X-Egress-Instance " + name}
	}
	a := cfg("A").start(t, caddyOptions{})
	b := cfg("B").start(t, caddyOptions{})
	urls := []string{pushURL(a), pushURL(b)}

	// Each lane's statuses alternate between the instances: one lane,
	// whichever instance accepted an entry.
	const lanes = 8
	acks := &pushAcks{}
	var wg sync.WaitGroup
	for i := 0; i < lanes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushPostLane(t, func(k int) string { return urls[(i+k)%2] }, pickOrder(), pushLane[:3], 0, func() bool { return false }, acks)
		}()
	}
	wg.Wait()
	all := acks.all()
	if len(all) != lanes*3 {
		t.Fatalf("%d of %d posts acknowledged", len(all), lanes*3)
	}
	inFlightOfA := func() []ahkAttempt {
		return ahk.snapshot(func(r *ahkAttempt) bool { return r.instance == "A" && r.done.IsZero() })
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(inFlightOfA()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	held := inFlightOfA()
	if len(held) == 0 {
		t.Fatal("instance A never had an attempt in flight")
	}
	killedAt := time.Now()
	a.kill()
	ahk.release()

	lost := pushAwaitAll(t, b, all, 3*time.Minute)
	t.Logf("acknowledged orders checked: %d; acknowledged-then-lost = %d; attempts of A in flight at the kill: %d", len(all), len(lost), len(held))
	if len(lost) > 0 {
		t.Errorf("acknowledged-then-lost = %d: %v", len(lost), lost)
	}
	for _, h := range held {
		resumed := ahk.snapshot(func(r *ahkAttempt) bool {
			return r.requestID == h.requestID && r.instance == "B" && r.at.After(killedAt)
		})
		if len(resumed) == 0 {
			t.Errorf("%s (lane %s) was in flight on A at the kill and never sent by B", h.requestID, h.bizNo)
		}
	}
	if ov := ahk.overlaps(); len(ov) > 0 {
		t.Errorf("lanes delivered by two instances at once: %v", ov)
	}
	pushCheckLaneOrder(t, ahk, all)
	perStatus := map[string]map[string]bool{}
	for _, x := range ahk.all() {
		key := x.bizNo + "/" + x.status
		if perStatus[key] == nil {
			perStatus[key] = map[string]bool{}
		}
		perStatus[key][x.requestID] = true
		if x.problem != "" {
			t.Errorf("attempt %s from %s: %s", x.requestID, x.instance, x.problem)
		}
	}
	for key, ids := range perStatus {
		if len(ids) != 1 {
			t.Errorf("%s reached AlipayHK under %d requestIds", key, len(ids))
		}
	}
}

// TestPushReloadUnderLoadNeitherDuplicatesNorDrops: delivery rule "Reloads
// and restarts": "A config
// reload neither duplicates nor drops deliveries". Orders are posted while
// the config is reloaded four times; every acknowledged order is delivered,
// none twice, and every final state gets its callback.
//
// Reading: a duplicate is an attempt sent after AlipayHK already answered
// that requestId with a verified S; an attempt cut before any answer and
// retried is not one.
func TestPushReloadUnderLoadNeitherDuplicatesNorDrops(t *testing.T) {
	t.Parallel()
	ahk := newAlipayStandIn(t)
	ahk.setReplay(true)
	ahk.setDefault(ahkS.after(5 * time.Millisecond))
	secret := pushNewSecret()
	hooks := newHookReceiver(t, secret)
	cfg := pushConfig{upstream: ahk.addr(), callback: hooks.url(), secret: secret}
	in := cfg.start(t, caddyOptions{})

	acks := &pushAcks{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				pushPostLane(t, func(int) string { return pushURL(in) }, pickOrder(), pushLane[:3], 20, func() bool { return false }, acks)
			}
		}()
	}
	for i, retryMax := range []string{"300ms", "200ms", "250ms", "200ms"} {
		time.Sleep(700 * time.Millisecond)
		c := cfg
		c.retryMax = retryMax
		c.options = fmt.Sprintf("# reload %d", i)
		in.load(t, c.caddyfile(in))
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	all := acks.all()
	lost := pushAwaitAll(t, in, all, 3*time.Minute)
	t.Logf("acknowledged orders checked: %d across 4 reloads; acknowledged-then-lost = %d", len(all), len(lost))
	if len(all) < 12 {
		t.Fatalf("only %d orders acknowledged under reloads", len(all))
	}
	if len(lost) > 0 {
		t.Errorf("acknowledged-then-lost = %d: %v", len(lost), lost)
	}
	for _, a := range all {
		var answered bool
		for _, x := range ahk.settledAttemptsOf(t, a.requestID) {
			if answered {
				t.Errorf("%s (%s %s) sent again after AlipayHK answered it S", a.requestID, a.bizNo, a.status)
				break
			}
			answered = x.answeredS
		}
		ds := hooks.await(t, a.requestID, pushSucceeded, time.Minute)
		hooks.checkVerified(t, ds)
	}
	if ov := ahk.overlaps(); len(ov) > 0 {
		t.Errorf("lanes with two attempts in flight at once (two runners?): %v", ov)
	}
	pushCheckLaneOrder(t, ahk, all)
}
