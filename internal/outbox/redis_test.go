package outbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/redistest"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/redisstore"
)

// instance is one Caddy instance's egress over a shared Redis: its own
// client, runner and service, and the AlipayHK all instances send to.
type instance struct {
	runner *Runner
	svc    *Service
	obs    *recorder
	dead   *deadBackend
}

// deadBackend is a backend whose instance can be frozen as a killed
// process is: from then on it neither renews nor releases its leases, and
// none of its writes land.
type deadBackend struct {
	store.OutboxBackend
	dead atomic.Bool
}

var errDead = errors.New("instance is dead")

func (d *deadBackend) RenewLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if d.dead.Load() {
		return errDead
	}
	return d.OutboxBackend.RenewLane(ctx, key, token, ttl)
}

func (d *deadBackend) ReleaseLane(ctx context.Context, key store.LaneKey, token string) error {
	if d.dead.Load() {
		return errDead
	}
	return d.OutboxBackend.ReleaseLane(ctx, key, token)
}

func (d *deadBackend) LeaseLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	if d.dead.Load() {
		return errDead
	}
	return d.OutboxBackend.LeaseLane(ctx, key, token, ttl)
}

func (d *deadBackend) RecordAttempt(ctx context.Context, key store.LaneKey, token, requestID string, a store.Attempt) error {
	if d.dead.Load() {
		return errDead
	}
	return d.OutboxBackend.RecordAttempt(ctx, key, token, requestID, a)
}

func (d *deadBackend) Complete(ctx context.Context, key store.LaneKey, token, requestID string, c store.Completion) error {
	if d.dead.Load() {
		return errDead
	}
	return d.OutboxBackend.Complete(ctx, key, token, requestID, c)
}

// redisInstances starts n instances over one Redis key prefix.
func redisInstances(t *testing.T, n int, cfg Config, fake *fakeAlipay, ro RunnerOptions) []*instance {
	t.Helper()
	addr := redistest.Start(t)
	prefix := fmt.Sprintf("outbox-test-%d:", time.Now().UnixNano())
	var out []*instance
	for range n {
		b, err := redisstore.Open(redisstore.Options{Addr: addr, KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		in := &instance{obs: newRecorder(), dead: &deadBackend{OutboxBackend: b}}
		opts := ro
		opts.Observer = in.obs
		if in.runner, err = NewRunner(store.NewOutbox(in.dead), cfg, fake, opts); err != nil {
			t.Fatal(err)
		}
		if in.svc, err = NewService(cfg, in.runner); err != nil {
			t.Fatal(err)
		}
		in.runner.Start()
		t.Cleanup(in.runner.Stop)
		out = append(out, in)
	}
	return out
}

func (in *instance) postAsync(t *testing.T, o order) {
	t.Helper()
	r := in.svc.Submit(context.Background(), SubmitRequest{Method: http.MethodPost,
		Header: http.Header{"Content-Type": {"application/json"}, "Prefer": {"respond-async"}}, Body: o.bytes()})
	if r.Status != http.StatusAccepted {
		t.Fatalf("post %s: %s", o.id(), r)
	}
}

func (in *instance) await(t *testing.T, requestID string, state store.EntryState) *store.Entry {
	t.Helper()
	var x *store.Entry
	eventually(t, requestID+" "+string(state), func() bool {
		var err error
		x, err = in.runner.Entry(context.Background(), requestID)
		return err == nil && x != nil && x.State == state
	})
	return x
}

// Two instances on one Redis share the outbox: orders posted to either are
// delivered once each, in order per lane, never two attempts of a lane at
// once.
func TestTwoInstancesShareTheOutbox(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	fake := newFakeAlipay(t, &cfg)
	fake.always(func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
		time.Sleep(5 * time.Millisecond)
		return replyS(ctx, f, a)
	})
	ins := redisInstances(t, 2, cfg, fake, RunnerOptions{PollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
	const lanes = 8
	statuses := []string{"CALL_NUM", "NUMBER_ARRIVED", "NUMBER_PASSED", "FINISHED"}
	ids := make([][]string, lanes)
	var wg sync.WaitGroup
	for l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, st := range statuses {
				o := queueUp(fmt.Sprintf("shared-%d", l), st)
				ins[(l+i)%2].postAsync(t, o) // lanes alternate between the instances
				ids[l] = append(ids[l], o.id())
			}
		}()
	}
	wg.Wait()
	for _, lane := range ids {
		for _, id := range lane {
			ins[0].await(t, id, store.EntrySucceeded)
		}
	}
	fake.mu.Lock()
	overlapped := slices.Clone(fake.overlappedInLane)
	fake.mu.Unlock()
	if len(overlapped) > 0 {
		t.Errorf("two attempts at once in lanes %v", overlapped)
	}
	for l, lane := range ids {
		var seen []string
		for _, a := range fake.attempts("") {
			if a.MerchantBizNo == fmt.Sprintf("shared-%d", l) {
				seen = append(seen, a.RequestID)
			}
		}
		if !slices.Equal(seen, lane) {
			t.Errorf("lane %d: AlipayHK got %v, accepted order %v (each once)", l, seen, lane)
		}
	}
	// Each entry ended once, by one instance or the other (which one is
	// a race, and either may win them all).
	ended := map[string]int{}
	for _, in := range ins {
		in.obs.mu.Lock()
		for _, f := range in.obs.finals {
			ended[f.RequestID]++
		}
		in.obs.mu.Unlock()
	}
	for _, lane := range ids {
		for _, id := range lane {
			if ended[id] != 1 {
				t.Errorf("%s ended %d times", id, ended[id])
			}
		}
	}
	fake.problems(t)
}

// An instance that dies mid-delivery (its lease neither renewed nor
// released, its writes lost) leaves its lane to the other instance after
// the lease: the entry is delivered, and the dead instance's attempt is
// never recorded.
func TestInstanceDiesMidDelivery(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.AttemptTimeout = time.Minute
	fake := newFakeAlipay(t, &cfg)
	inFlight := make(chan struct{}, 1)
	fake.answer(func(a Attempt, nth int) action {
		if nth == 1 {
			return func(ctx context.Context, f *fakeAlipay, a Attempt) (Reply, error) {
				inFlight <- struct{}{}
				return replyHang(ctx, f, a) // the dying instance's attempt never gets an answer
			}
		}
		return replyS
	})
	const ttl = time.Second
	ins := redisInstances(t, 2, cfg, fake, RunnerOptions{PollInterval: 50 * time.Millisecond, LeaseTTL: ttl})
	a, b := ins[0], ins[1]
	// b stays out of the way until a holds the lane.
	b.dead.dead.Store(true)
	o := newOrder()
	a.postAsync(t, o)
	<-inFlight
	a.dead.dead.Store(true)
	died := time.Now()
	b.dead.dead.Store(false)

	x := b.await(t, o.id(), store.EntrySucceeded)
	atts := fake.attempts(o.id())
	if len(atts) != 2 {
		t.Fatalf("%d attempts, want the dead one and the resumed one", len(atts))
	}
	if atts[1].At.Before(died) {
		t.Errorf("the lane was resumed before the instance died")
	}
	if x.Attempts != 1 {
		t.Errorf("attempts recorded %d: the dead instance's attempt must not count", x.Attempts)
	}
	fake.mu.Lock()
	overlapped := slices.Clone(fake.overlappedInLane)
	fake.mu.Unlock()
	if len(overlapped) > 0 {
		// The dead instance cut its own attempt off when it could not
		// renew, before its lease could expire and b could take over.
		t.Errorf("two attempts at once in lanes %v", overlapped)
	}
}
