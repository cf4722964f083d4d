package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/store"
)

// Every attempt carries the same requestId and body bytes, a fresh
// Request-Time in epoch milliseconds and a fresh signature over it, with
// the headers the official SDKs send; AlipayHK's check (fakeAlipay.check)
// verifies each one with our public key.
func TestAttemptsSignedAfreshSameBytes(t *testing.T) {
	t.Parallel()
	// Half the backoff ceiling every time: attempts are at least 10ms
	// apart, so each has its own Request-Time.
	e := newEnv(t, func(e *env) { e.jitter = func() float64 { return 0.5 } })
	e.alipay.answer(func(a Attempt, nth int) action {
		if nth < 3 {
			return replyU
		}
		return replyS
	})
	o := newOrder()
	expectAlipay(t, e.post(o.bytes()), envelopeOf(Attempt{RequestID: o.id()}, orderflow.Success), o.id())
	atts := e.alipay.attempts(o.id())
	if len(atts) != 3 {
		t.Fatalf("%d attempts, want 3", len(atts))
	}
	e.alipay.problems(t)
	for i, a := range atts {
		if a.Number != i+1 || !bytes.Equal(a.Body, atts[0].Body) {
			t.Errorf("attempt %d: number %d, body %s (first %s)", i+1, a.Number, a.Body, atts[0].Body)
		}
		if i == 0 {
			continue
		}
		prev, cur := atts[i-1].Header, a.Header
		t1, _ := strconv.ParseInt(prev.Get("Request-Time"), 10, 64)
		t2, _ := strconv.ParseInt(cur.Get("Request-Time"), 10, 64)
		if t2 <= t1 || cur.Get("Signature") == prev.Get("Signature") {
			t.Errorf("attempt %d reuses Request-Time or Signature: %s %s", i+1, cur.Get("Request-Time"), prev.Get("Request-Time"))
		}
	}
	if x := e.entry(o.id()); x.Attempts != 3 || x.State != store.EntrySucceeded {
		t.Errorf("entry: %d attempts, %s", x.Attempts, x.State)
	}
}

// A reply is final only when it is HTTP 200, verifies with AlipayHK's key
// over what AlipayHK sent, comes from our Client-Id, and says S or F.
// Everything else is an attempt that is retried; the next one answers S.
func TestRepliesThatAreNotFinal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.AttemptTimeout = 300 * time.Millisecond }))
	for _, tt := range []struct {
		name    string
		first   action
		outcome Outcome
		error   string
	}{
		{"U", replyU, OutcomeUnknown, "UNKNOWN_EXCEPTION"},
		{"traffic limit", replyCode(orderflow.RequestTrafficExceedLimit), OutcomeUnknown, "REQUEST_TRAFFIC_EXCEED_LIMIT"},
		{"HTTP 503", reply503, OutcomeHTTPStatus, "HTTP 503"},
		{"HTTP 429", reply429, OutcomeHTTPStatus, "HTTP 429"},
		{"timeout", replyHang, OutcomeTimeout, "attempt_timeout"},
		{"unsigned", replyUnsigned, OutcomeUnsigned, "no Signature"},
		{"wrong key", replyWrongKey, OutcomeBadSignature, "does not verify"},
		{"tampered", replyTampered, OutcomeBadSignature, "does not verify"},
		{"another Client-Id", replyOtherClient, OutcomeBadSignature, "Client-Id"},
		{"cut short", replyCutShort, OutcomeTransport, "unexpected EOF"},
		{"connection refused", replyRefused, OutcomeTransport, "connection refused"},
		{"signed garbage", replyGarbage, OutcomeBadReply, "not a JSON envelope"},
		{"unknown letter", replyBadLetter, OutcomeBadReply, "resultStatus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOrder()
			// One script for all subtests (set below, before they run):
			// the first attempt of each order gets its subtest's action.
			scripts.Store(o.id(), tt.first)
			r := e.post(o.bytes())
			expectAlipay(t, r, envelopeOf(Attempt{RequestID: o.id()}, orderflow.Success), o.id())
			evs := e.obs.attemptsOf(o.id())
			if len(evs) != 2 {
				t.Fatalf("%d attempt events, want 2: %+v", len(evs), evs)
			}
			if evs[0].Outcome != tt.outcome || !strings.Contains(evs[0].Error, tt.error) || evs[0].NextAttemptAt.IsZero() {
				t.Errorf("first attempt: %+v; want outcome %s, error with %q", evs[0], tt.outcome, tt.error)
			}
			if evs[1].Outcome != OutcomeSucceeded || evs[1].Error != "" || evs[1].ResultCode != "SUCCESS" || evs[1].HTTPStatus != 200 {
				t.Errorf("second attempt: %+v", evs[1])
			}
			if x := e.entry(o.id()); x.Attempts != 2 || x.State != store.EntrySucceeded {
				t.Errorf("entry: %+v", x)
			}
		})
	}
	t.Cleanup(func() { e.alipay.problems(t) })
	e.alipay.answer(func(a Attempt, nth int) action {
		if act, ok := scripts.Load(a.RequestID); ok && nth == 1 {
			return act.(action)
		}
		return replyS
	})
}

// scripts maps a requestId to its first attempt's action, for
// TestRepliesThatAreNotFinal's subtests.
var scripts sync.Map

// The backoff is full jitter under an exponential ceiling:
// jitter·min(retry_max, retry_initial·2^(n-1)).
func TestBackoff(t *testing.T) {
	t.Parallel()
	const initial, maxWait = time.Second, 5 * time.Minute
	for n := 1; n <= 20; n++ {
		ceiling := min(maxWait, initial*time.Duration(math.Pow(2, float64(n-1))))
		if got := backoff(n, initial, maxWait, 0); got != 0 {
			t.Errorf("backoff(%d, jitter 0) = %v", n, got)
		}
		if got, want := backoff(n, initial, maxWait, 0.5), ceiling/2; got != want {
			t.Errorf("backoff(%d, jitter 0.5) = %v, want %v", n, got, want)
		}
		if got := backoff(n, initial, maxWait, math.Nextafter(1, 0)); got >= ceiling || got < ceiling-time.Microsecond {
			t.Errorf("backoff(%d, jitter→1) = %v, want just under %v", n, got, ceiling)
		}
	}
	// No overflow on the way to a huge retry_max.
	if got := backoff(200, time.Second, math.MaxInt64, 0.5); got <= 0 || (got-math.MaxInt64/2).Abs() > time.Microsecond {
		t.Errorf("backoff with retry_max MaxInt64 = %v", got)
	}
	// retry_initial = retry_max: a constant ceiling.
	if got := backoff(7, time.Second, time.Second, 0.5); got != 500*time.Millisecond {
		t.Errorf("flat backoff = %v", got)
	}
}

// The jitter covers the whole range below the ceiling, uniformly: the
// runner's random source, sampled.
func TestBackoffJitterSpread(t *testing.T) {
	t.Parallel()
	const ceiling = 4 * time.Second // attempt 3, retry_initial 1s
	var sum time.Duration
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	const n = 20000
	for range n {
		d := backoff(3, time.Second, time.Minute, rand.Float64())
		if d < 0 || d >= ceiling {
			t.Fatalf("backoff %v outside [0, %v)", d, ceiling)
		}
		sum += d
		lo, hi = min(lo, d), max(hi, d)
	}
	mean := sum / n
	if mean < ceiling*45/100 || mean > ceiling*55/100 || lo > ceiling/100 || hi < ceiling*99/100 {
		t.Errorf("jitter not uniform over [0, %v): mean %v, min %v, max %v", ceiling, mean, lo, hi)
	}
}

// The runner schedules each retry within the backoff ceiling of its
// attempt number, never later.
func TestRetriesScheduledWithinBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.alipay.answer(func(a Attempt, nth int) action {
		if nth <= 5 {
			return reply503
		}
		return replyS
	})
	o := newOrder()
	e.postAsync(o.bytes())
	e.await(o.id(), store.EntrySucceeded)
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	n := 0
	for i, ev := range e.obs.attempts {
		if ev.RequestID != o.id() || ev.Outcome.Final() {
			continue
		}
		n++
		ceiling := min(e.cfg.RetryMax, e.cfg.RetryInitial<<(ev.Number-1))
		// NextAttemptAt = (end of attempt) + backoff, and the event is
		// heard after that end.
		if gap := ev.NextAttemptAt.Sub(e.obs.heardAt[i]); gap > ceiling {
			t.Errorf("attempt %d: next attempt %v after it, ceiling %v", ev.Number, gap, ceiling)
		}
	}
	if n != 5 {
		t.Errorf("%d retryable attempts seen, want 5", n)
	}
}

// An entry that gets no final answer before max_age is expired: lastError
// keeps the last attempt's error, no attempt follows, the callback-free
// final state is reported, and the lane goes on with the next entry.
func TestExpiryUnblocksLane(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MaxAge = 2 * time.Second }))
	biz := "expiring"
	first := queueUp(biz, "CALL_NUM")
	e.alipay.answer(func(a Attempt, _ int) action {
		if a.RequestID == first.id() {
			return replyU
		}
		return replyS
	})
	e.postAsync(first.bytes())
	time.Sleep(time.Second) // the second entry expires a second after the first
	second := queueUp(biz, "NUMBER_ARRIVED")
	e.postAsync(second.bytes())

	x := e.await(first.id(), store.EntryExpired)
	if x.Attempts < 1 || !strings.Contains(x.LastError, "UNKNOWN_EXCEPTION") || x.Reply != nil {
		t.Errorf("expired entry: %+v", x)
	}
	if age := x.UpdatedAt.Sub(x.QueuedAt); age < e.cfg.MaxAge {
		t.Errorf("expired %v after it was queued, max_age %v", age, e.cfg.MaxAge)
	}
	for _, a := range e.alipay.attempts(first.id()) {
		if a.At.After(x.UpdatedAt) {
			t.Errorf("an attempt at %v after the expiry at %v", a.At, x.UpdatedAt)
		}
	}
	// The Observer hears of a final state after it is written.
	eventually(t, "the final event", func() bool { return len(e.obs.finalOf(first.id())) > 0 })
	if f := e.obs.finalOf(first.id()); len(f) != 1 || f[0].By != EndedByExpiry || f[0].State != store.EntryExpired {
		t.Errorf("final events: %+v", f)
	}
	e.await(second.id(), store.EntrySucceeded)
	if a := e.alipay.attempts(second.id()); len(a) == 0 || a[0].At.Before(x.UpdatedAt) {
		t.Errorf("the next entry was sent before the head expired")
	}
	// The same POST of the expired entry: 202 with the entry, expired
	// (there is no AlipayHK envelope to give).
	r := e.post(first.bytes())
	if m := expectQueued(t, r, first.id()); m["state"] != "expired" || r.Reason != ReasonEnded {
		t.Errorf("re-post of an expired entry: %s", r)
	}
}

// An entry that ends failed (AlipayHK's F) unblocks its lane.
func TestFailedUnblocksLane(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	biz := "failing"
	first, second := queueUp(biz, "CALL_NUM"), queueUp(biz, "NUMBER_ARRIVED")
	e.alipay.answer(func(a Attempt, _ int) action {
		if a.RequestID == first.id() {
			return replyF
		}
		return replyS
	})
	e.postAsync(first.bytes())
	e.postAsync(second.bytes())
	f := e.await(first.id(), store.EntryFailed)
	e.await(second.id(), store.EntrySucceeded)
	if !strings.Contains(f.LastError, "ORDER_STATUS_INVALID") {
		t.Errorf("failed entry lastError %q", f.LastError)
	}
	if l := e.lane(biz); l.Accepted == nil || l.Accepted.Status != "NUMBER_ARRIVED" || l.Accepted.RequestID != second.id() {
		t.Errorf("accepted state: %+v", l.Accepted)
	}
}

// Order within a lane under concurrency: many lanes posted at once, each
// lane's entries delivered strictly in acceptance order, one attempt at a
// time per lane, while lanes run concurrently.
func TestOrderWithinLaneUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withRunner(func(ro *RunnerOptions) { ro.Workers = 6 }))
	e.alipay.answer(func(a Attempt, nth int) action {
		return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
			time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond)
			// Every third entry is retried once, and some twice.
			n, _ := strconv.Atoi(a.RequestID[strings.LastIndexByte(a.RequestID, '-')+1:])
			if nth <= n%3 {
				return replyU(ctx, f, a)
			}
			return replyS(ctx, f, a)
		}
	})
	const lanes, perLane = 10, 6
	ids := make([][]string, lanes)
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			biz := fmt.Sprintf("conc-%d", l)
			for i := range perLane {
				o := queueUp(biz, "CALL_NUM").with("requestId", fmt.Sprintf("c%d-%d", l, i))
				ids[l] = append(ids[l], o.id())
				e.postAsync(o.bytes())
			}
		}()
	}
	wg.Wait()
	for _, lane := range ids {
		for _, id := range lane {
			e.await(id, store.EntrySucceeded)
		}
	}
	e.alipay.mu.Lock()
	overlapped, maxTotal := slices.Clone(e.alipay.overlappedInLane), e.alipay.maxTotal
	e.alipay.mu.Unlock()
	if len(overlapped) > 0 {
		t.Errorf("two attempts at once in lanes %v", overlapped)
	}
	if maxTotal < 2 {
		t.Errorf("lanes were never delivered concurrently (at most %d attempt at once)", maxTotal)
	}
	if maxTotal > 6 {
		t.Errorf("%d attempts at once with 6 workers", maxTotal)
	}
	for l, lane := range ids {
		atts := e.alipay.attempts("")
		var seen []string
		for _, a := range atts {
			if a.MerchantBizNo == fmt.Sprintf("conc-%d", l) {
				if len(seen) == 0 || seen[len(seen)-1] != a.RequestID {
					seen = append(seen, a.RequestID)
				}
			}
		}
		if !slices.Equal(seen, lane) {
			t.Errorf("lane %d delivered in the order %v, accepted %v", l, seen, lane)
		}
		if acc := e.lane(fmt.Sprintf("conc-%d", l)).Accepted; acc == nil || acc.RequestID != lane[len(lane)-1] {
			t.Errorf("lane %d accepted %+v", l, acc)
		}
	}
	e.alipay.problems(t)
}

// flakyLeases makes every renewal fail as lost while lose is set, and
// every new lease fail as held by someone else, as if the lease had
// expired and another instance had taken the lane.
type flakyLeases struct {
	store.OutboxBackend
	lose atomic.Bool
	// unreachable makes renewals fail as a store that cannot be reached
	// does: not "lost", just no answer.
	unreachable atomic.Bool
}

func (f *flakyLeases) LeaseLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if f.lose.Load() {
		return store.ErrLaneLeased
	}
	if f.unreachable.Load() {
		return errors.New("dial tcp: connection refused")
	}
	return f.OutboxBackend.LeaseLane(ctx, key, token, ttl)
}

func (f *flakyLeases) RenewLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if f.lose.Load() {
		return store.ErrLeaseLost
	}
	if f.unreachable.Load() {
		return errors.New("dial tcp: connection refused")
	}
	return f.OutboxBackend.RenewLane(ctx, key, token, ttl)
}

// A lease lost while an attempt runs cuts the attempt off and nothing is
// recorded; the lane is delivered again once a lease can be had.
func TestLeaseLostStopsTheLane(t *testing.T) {
	t.Parallel()
	var flaky *flakyLeases
	e := newEnv(t,
		func(e *env) {
			e.wrap = func(b store.OutboxBackend) store.OutboxBackend { flaky = &flakyLeases{OutboxBackend: b}; return flaky }
		},
		withRunner(func(ro *RunnerOptions) { ro.LeaseTTL = 300 * time.Millisecond }),
		withConfig(func(c *Config) { c.AttemptTimeout = time.Minute }))
	inFlight := make(chan struct{}, 1)
	e.alipay.answer(func(a Attempt, nth int) action {
		if nth == 1 {
			return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
				inFlight <- struct{}{}
				return replyHang(ctx, f, a)
			}
		}
		return replyS
	})
	o := newOrder()
	e.postAsync(o.bytes())
	select {
	case <-inFlight:
	case <-time.After(patience):
		t.Fatal("no attempt")
	}
	flaky.lose.Store(true)
	eventually(t, "the attempt cut off", func() bool { return len(e.obs.attemptsOf(o.id())) == 1 })
	if ev := e.obs.attemptsOf(o.id())[0]; ev.Outcome != OutcomeAborted {
		t.Errorf("attempt under a lost lease: %+v", ev)
	}
	eventually(t, "lease_lost reported", func() bool {
		return slices.ContainsFunc(e.obs.troubleList(), func(s string) bool { return strings.HasPrefix(s, "lease_lost") })
	})
	if x := e.entry(o.id()); x.State != store.EntryQueued || x.Attempts != 0 || x.LastError != "" {
		t.Errorf("something was recorded under a lost lease: %+v", x)
	}
	flaky.lose.Store(false)
	x := e.await(o.id(), store.EntrySucceeded)
	if x.Attempts != 1 || len(e.alipay.attempts(o.id())) != 2 {
		t.Errorf("after the lease came back: %d attempts recorded, %d sent", x.Attempts, len(e.alipay.attempts(o.id())))
	}
}

// Renewals that keep failing (the store unreachable) cut the attempt off
// before the lease could expire under it: another instance may take the
// lane then, and two attempts of one lane must never be in flight at once.
func TestLeaseUnrenewableStopsTheLane(t *testing.T) {
	t.Parallel()
	var flaky *flakyLeases
	e := newEnv(t,
		func(e *env) {
			e.wrap = func(b store.OutboxBackend) store.OutboxBackend { flaky = &flakyLeases{OutboxBackend: b}; return flaky }
		},
		withRunner(func(ro *RunnerOptions) { ro.LeaseTTL = 600 * time.Millisecond }),
		withConfig(func(c *Config) { c.AttemptTimeout = time.Minute }))
	inFlight := make(chan struct{}, 1)
	e.alipay.answer(func(a Attempt, nth int) action {
		if nth == 1 {
			return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
				inFlight <- struct{}{}
				return replyHang(ctx, f, a)
			}
		}
		return replyS
	})
	o := newOrder()
	e.postAsync(o.bytes())
	<-inFlight
	flaky.unreachable.Store(true)
	eventually(t, "the attempt cut off", func() bool { return len(e.obs.attemptsOf(o.id())) == 1 })
	if ev := e.obs.attemptsOf(o.id())[0]; ev.Outcome != OutcomeAborted || !strings.Contains(ev.Error, "could not be renewed") {
		t.Errorf("attempt with the lease unrenewable: %+v", ev)
	}
	flaky.unreachable.Store(false)
	if x := e.await(o.id(), store.EntrySucceeded); x.Attempts != 1 {
		t.Errorf("attempts recorded %d, want 1", x.Attempts)
	}
}

// A config reload during delivery: the attempt in flight ends with the
// generation it started with, the next one uses the new generation, and
// nothing is sent twice or restarted.
func TestUpdateDuringDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	inFlight := make(chan struct{}, 1)
	e.alipay.always(func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		inFlight <- struct{}{}
		<-release
		return replyU(ctx, f, a)
	})
	o := newOrder()
	e.postAsync(o.bytes())
	<-inFlight

	cfg2 := e.cfg
	cfg2.KeyVersion = "3"
	second := newFakeAlipay(t, &cfg2)
	if err := e.runner.Update(cfg2, second); err != nil {
		t.Fatal(err)
	}
	close(release)
	x := e.await(o.id(), store.EntrySucceeded)
	first := e.alipay.attempts(o.id())
	then := second.attempts(o.id())
	if len(first) != 1 || len(then) != 1 || x.Attempts != 2 {
		t.Fatalf("attempts: %d to the old sender, %d to the new, %d recorded", len(first), len(then), x.Attempts)
	}
	if first[0].Header.Get("Key-Version") != "2" || then[0].Header.Get("Key-Version") != "3" {
		t.Errorf("Key-Version %s then %s", first[0].Header.Get("Key-Version"), then[0].Header.Get("Key-Version"))
	}
	second.problems(t)

	other := cfg2
	other.ClientID = "SOMEONE-ELSE"
	if err := e.runner.Update(other, second); err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Errorf("Update to another client_id: %v", err)
	}
	if err := e.runner.Update(cfg2, nil); err == nil {
		t.Error("Update without a sender succeeded")
	}
	bad := cfg2
	bad.RetryInitial = time.Hour
	if err := e.runner.Update(bad, second); err == nil || !strings.Contains(err.Error(), "retry_initial") {
		t.Errorf("Update with retry_initial > retry_max: %v", err)
	}
}

// A crash and a restart: entries queued (one of them in flight when the
// process stopped) are delivered by the new runner over the reopened
// file, in order, and none is lost.
func TestRestartResumesQueuedEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.AttemptTimeout = time.Minute }))
	inFlight := make(chan string, 16)
	e.alipay.always(func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		inFlight <- a.RequestID
		return replyHang(ctx, f, a)
	})
	var ids [][]string
	for l := range 3 {
		var lane []string
		for _, st := range []string{"CALL_NUM", "NUMBER_ARRIVED", "FINISHED"} {
			o := queueUp(fmt.Sprintf("restart-%d", l), st)
			e.postAsync(o.bytes())
			lane = append(lane, o.id())
		}
		ids = append(ids, lane)
	}
	<-inFlight // at least one attempt in flight
	stopped := make(chan struct{})
	go func() { e.restartStopOnly(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(patience):
		t.Fatal("Stop waited for an attempt in flight (attempt_timeout 1m)")
	}
	e.open()
	for _, x := range e.list("") {
		if x.State != store.EntryQueued || x.Attempts != 0 {
			t.Errorf("after the crash: %s is %s with %d attempts", x.RequestID, x.State, x.Attempts)
		}
	}
	e.alipay.always(replyS)
	e.start()
	for _, lane := range ids {
		for _, id := range lane {
			e.await(id, store.EntrySucceeded)
		}
	}
	for l, lane := range ids {
		if acc := e.lane(fmt.Sprintf("restart-%d", l)).Accepted; acc == nil || acc.Status != "FINISHED" || acc.RequestID != lane[2] {
			t.Errorf("lane %d accepted %+v", l, acc)
		}
	}
}

// restartStopOnly is the first half of restart: the runner stops and the
// file closes.
func (e *env) restartStopOnly() {
	e.runner.Stop()
	if err := e.db.Close(); err != nil {
		e.t.Error(err)
	}
}

// Submit waits for the runner's word, not the store's: a waiting POST is
// answered as soon as the runner ends its entry, long before wait.
func TestSubmitWokenByTheRunner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Wait = time.Minute }))
	release := make(chan struct{})
	e.alipay.always(func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		<-release
		return replyS(ctx, f, a)
	})
	o := newOrder()
	done := make(chan Response, 1)
	go func() { done <- e.post(o.bytes()) }()
	eventually(t, "the attempt", func() bool { return len(e.alipay.attempts(o.id())) == 1 })
	close(release)
	select {
	case r := <-done:
		expectAlipay(t, r, envelopeOf(Attempt{RequestID: o.id()}, orderflow.Success), o.id())
	case <-time.After(patience):
		t.Fatal("Submit still waiting after the entry ended")
	}
}

// Stats and queue depth reach the Observer while the runner runs.
func TestObserverQueueStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.alipay.always(replyU)
	for range 3 {
		e.postAsync(newOrder().bytes())
	}
	eventually(t, "queue stats with 3 queued", func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		for _, s := range e.obs.queue {
			if s.Queued == 3 && !s.OldestQueuedAt.IsZero() {
				return true
			}
		}
		return false
	})
}

// A runner that is not started delivers nothing, and Wake does not block;
// Start twice is one start; Stop twice is fine.
func TestRunnerLifecycle(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	db := openDB(t, t.TempDir()+"/o.db")
	fake := newFakeAlipay(t, &cfg)
	r, err := NewRunner(store.NewOutbox(db), cfg, fake, RunnerOptions{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	o := newOrder()
	resp := svc.Submit(context.Background(), SubmitRequest{Method: "POST", Header: http.Header{"Content-Type": {"application/json"}, "Prefer": {"respond-async, wait=1"}}, Body: o.bytes()})
	expectQueued(t, resp, o.id())
	for range 10 {
		r.Wake(store.LaneKey{})
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(fake.attempts("")); n != 0 {
		t.Fatalf("a runner that was not started sent %d attempts", n)
	}
	r.Start()
	r.Start()
	eventually(t, "delivery after Start", func() bool { return len(fake.attempts("")) == 1 })
	r.Stop()
	r.Stop()
	r.Start() // a stopped runner stays stopped
	if _, err := NewService(Config{ClientID: "other", Signer: cfg.Signer, AlipayKey: cfg.AlipayKey, Scenarios: cfg.Scenarios}, r); err == nil {
		t.Error("a Service over another client_id's runner")
	}
}

// A retry is never scheduled past the entry's expiry: with a backoff far
// longer than max_age, the entry still expires at max_age.
func TestExpiryNotDelayedByBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.RetryInitial, c.RetryMax, c.MaxAge = time.Hour, time.Hour, 500*time.Millisecond
	}), func(e *env) { e.jitter = func() float64 { return 0.99 } })
	e.alipay.always(replyU)
	o := newOrder()
	e.postAsync(o.bytes())
	eventually(t, "the first attempt recorded", func() bool { return e.entry(o.id()).Attempts == 1 })
	x := e.entry(o.id())
	if want := x.QueuedAt.Add(500 * time.Millisecond); !x.NextAttemptAt.Equal(want) {
		t.Errorf("next attempt at %v, want the expiry %v", x.NextAttemptAt, want)
	}
	e.await(o.id(), store.EntryExpired)
}
