package ordersync

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-alipay/ordersync/internal/outbox"
	"github.com/caddy-alipay/ordersync/store"
)

// Delivery runners are shared across configuration generations. A reload
// provisions and starts the new configuration before it stops and cleans
// up the old one, and both name the same outbox: two runners would
// deliver the same lanes (with bbolt, whose leases live in the process,
// they would even take turns on the same entry's attempts). So there is
// one runner per (store, client_id) in the process, in a caddy.UsagePool:
// the first generation that starts makes and starts it, every later one
// hands it its configuration and sender (Runner.Update), and the last one
// cleaned up stops it.
//
// A generation that is cleaned up while another is current leaves the
// runner as it is; the current one being cleaned up (a reload whose new
// configuration failed to start, after this handler had started) hands
// the runner back to the newest generation still alive. So the runner
// always delivers with the configuration of a live generation, never with
// one Caddy has thrown away.
var pushRunners = caddy.NewUsagePool()

// errDuplicateDelivery refuses a second handler for one runner in one
// configuration.
var errDuplicateDelivery = errors.New("another alipay_order_push handler of this configuration delivers for the same client_id from the same store; give each client_id one handler (one site may listen on several addresses)")

// pushGeneration is what one configuration generation of one handler
// hands the shared runner.
type pushGeneration struct {
	// config is the configuration the generation belongs to (its http
	// app): one configuration may not have two handlers for one runner.
	config  any
	cfg     outbox.Config
	sender  outbox.Sender
	backend store.OutboxBackend
}

// sharedRunner is the pool's value: the runner of one (store, client_id)
// and the generations that use it, oldest first.
type sharedRunner struct {
	runner  *outbox.Runner
	backend *switchBackend
	// stop is called once, when the last generation lets go.
	stop func()

	mu   sync.Mutex
	gens []*pushGeneration
}

// Destruct stops the runner: the last generation using it is gone.
func (s *sharedRunner) Destruct() error {
	removeActiveRunner(s)
	s.runner.Stop()
	if s.stop != nil {
		s.stop()
	}
	return nil
}

// join makes g the runner's current generation.
func (s *sharedRunner) join(g *pushGeneration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.gens {
		if x.config == g.config {
			// addDelivery refuses this at load; a configuration built
			// without the app (in-process) gets here.
			return errDuplicateDelivery
		}
	}
	s.gens = append(s.gens, g)
	return s.use(g)
}

// leave forgets g; if it was current, the newest generation left takes
// over.
func (s *sharedRunner) leave(g *pushGeneration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.gens {
		if x != g {
			continue
		}
		current := i == len(s.gens)-1
		s.gens = append(s.gens[:i], s.gens[i+1:]...)
		if current && len(s.gens) > 0 {
			_ = s.use(s.gens[len(s.gens)-1])
		}
		return
	}
}

func (s *sharedRunner) use(g *pushGeneration) error {
	s.backend.set(g.backend)
	return s.runner.Update(g.cfg, g.sender)
}

// switchBackend is the runner's outbox: it forwards to the store module
// of the runner's current generation. The runner outlives the
// configuration whose store module it started with, and a module's
// Cleanup may close what it opened; the modules of every generation that
// share a runner name the same store (the pool key), so switching loses
// nothing: leases and lanes are in the store (or, for bbolt, in its
// process-wide handle of the file).
type switchBackend struct {
	mu sync.RWMutex
	b  store.OutboxBackend
}

func (s *switchBackend) set(b store.OutboxBackend) {
	s.mu.Lock()
	s.b = b
	s.mu.Unlock()
}

func (s *switchBackend) get() store.OutboxBackend {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.b
}

func (s *switchBackend) Enqueue(ctx context.Context, e store.Entry, laneVersion uint64) (*store.Entry, error) {
	return s.get().Enqueue(ctx, e, laneVersion)
}

func (s *switchBackend) GetEntry(ctx context.Context, key store.RequestKey) (*store.Entry, error) {
	return s.get().GetEntry(ctx, key)
}

func (s *switchBackend) GetLane(ctx context.Context, key store.LaneKey) (*store.Lane, error) {
	return s.get().GetLane(ctx, key)
}

func (s *switchBackend) DueLanes(ctx context.Context, clientID string, now time.Time, limit int) (store.DueLanes, error) {
	return s.get().DueLanes(ctx, clientID, now, limit)
}

func (s *switchBackend) LeaseLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	return s.get().LeaseLane(ctx, key, token, ttl)
}

func (s *switchBackend) RenewLane(ctx context.Context, key store.LaneKey, token string, ttl time.Duration) error {
	return s.get().RenewLane(ctx, key, token, ttl)
}

func (s *switchBackend) ReleaseLane(ctx context.Context, key store.LaneKey, token string) error {
	return s.get().ReleaseLane(ctx, key, token)
}

func (s *switchBackend) RecordAttempt(ctx context.Context, key store.LaneKey, token, requestID string, a store.Attempt) error {
	return s.get().RecordAttempt(ctx, key, token, requestID, a)
}

func (s *switchBackend) Complete(ctx context.Context, key store.LaneKey, token, requestID string, c store.Completion) error {
	return s.get().Complete(ctx, key, token, requestID, c)
}

func (s *switchBackend) ClaimCallbacks(ctx context.Context, clientID string, now time.Time, limit int, lease time.Duration) ([]*store.Entry, error) {
	return s.get().ClaimCallbacks(ctx, clientID, now, limit, lease)
}

func (s *switchBackend) CallbackDone(ctx context.Context, key store.RequestKey, webhookID string) error {
	return s.get().CallbackDone(ctx, key, webhookID)
}

func (s *switchBackend) CallbackRetry(ctx context.Context, key store.RequestKey, webhookID string, next time.Time, lastError string) error {
	return s.get().CallbackRetry(ctx, key, webhookID, next, lastError)
}

func (s *switchBackend) ListEntries(ctx context.Context, clientID string, state store.EntryState, limit int) ([]*store.Entry, error) {
	return s.get().ListEntries(ctx, clientID, state, limit)
}

func (s *switchBackend) RetryEntry(ctx context.Context, key store.RequestKey, now time.Time) (*store.Entry, error) {
	return s.get().RetryEntry(ctx, key, now)
}

func (s *switchBackend) RequeueEntry(ctx context.Context, key store.RequestKey, laneVersion uint64, now time.Time) (*store.Entry, error) {
	return s.get().RequeueEntry(ctx, key, laneVersion, now)
}

func (s *switchBackend) DropEntry(ctx context.Context, key store.RequestKey, d store.Drop) (*store.Entry, error) {
	return s.get().DropEntry(ctx, key, d)
}

func (s *switchBackend) OutboxStats(ctx context.Context, clientID string) (store.OutboxStats, error) {
	return s.get().OutboxStats(ctx, clientID)
}

var _ store.OutboxBackend = (*switchBackend)(nil)
