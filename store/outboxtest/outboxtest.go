// Package outboxtest is the conformance suite every store.OutboxBackend
// must pass, plus benchmarks shared by the backends so their numbers
// compare. It checks the backend's primitives directly, and the lane lease
// as a value (store.Outbox) over them.
//
// A backend's test calls Run with a Harness:
//
//	func TestOutboxConformance(t *testing.T) {
//		outboxtest.Run(t, outboxtest.Harness{
//			Open:    func(t *testing.T) store.OutboxBackend { ... }, // closed by t.Cleanup
//			Peer:    ...,
//			Restart: ...,
//		})
//	}
//
// Like storetest, the suite never assumes that a backend starts empty:
// every subtest draws its Client-Ids from a random run prefix, so Open may
// hand out backends that share storage (one Redis database).
package outboxtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Harness is how the suite opens, shares and restarts a backend.
type Harness struct {
	// Open returns a ready backend, closed with t.Cleanup.
	Open func(t *testing.T) store.OutboxBackend
	// Peer returns another instance over the same storage as b, as a
	// second Caddy instance would hold it (Redis: a second client). A
	// backend whose storage only one process may hold (bbolt) returns b.
	Peer func(t *testing.T, b store.OutboxBackend) store.OutboxBackend
	// Restart leaves b as a killed process leaves its storage — what it
	// kept in memory (leases, callback claims) is lost, nothing it wrote
	// is — and returns a new instance over the same storage. b is not
	// used again.
	Restart func(t *testing.T, b store.OutboxBackend) store.OutboxBackend
}

// Timing used by the expiry checks: short enough to keep the suite fast,
// long enough that a loaded machine running -race does not make a live
// lease look expired.
const (
	shortTTL   = 300 * time.Millisecond
	pastExpiry = 450 * time.Millisecond
	longTTL    = time.Minute
	retention  = time.Hour
	// retentionShort is the retention of the entries that are checked
	// both before and after it ends: long enough for the check before on
	// a loaded machine.
	retentionShort = time.Second
	pastRetention  = 1200 * time.Millisecond
	// patience bounds any wait that should end promptly.
	patience = 5 * time.Second
)

type testCase struct {
	name string
	fn   func(t *testing.T, h Harness, b store.OutboxBackend, ids *idSource)
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil || h.Peer == nil || h.Restart == nil {
		t.Fatal("outboxtest: the Harness needs Open, Peer and Restart")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := h.Open(t)
			if b == nil {
				t.Fatal("Open returned nil")
			}
			tc.fn(t, h, b, newIDSource(t))
		})
	}
}

// tests is the suite, in the order it runs.
var tests = []testCase{
	{"EnqueueAndGet", testEnqueueAndGet},
	{"EnqueueDedupe", testEnqueueDedupe},
	{"EnqueueLaneConflict", testEnqueueLaneConflict},
	{"EnqueueInvalid", testEnqueueInvalid},
	{"LeaseExclusive", testLeaseExclusive},
	{"LeaseRace", testLeaseRace},
	{"LeaseExpiryTakeover", testLeaseExpiryTakeover},
	{"LeaseRenew", testLeaseRenew},
	{"LeaseNeeded", testLeaseNeeded},
	{"LeaseValue", testLeaseValue},
	{"DueLanes", testDueLanes},
	{"RecordAttempt", testRecordAttempt},
	{"CompleteSucceeded", testCompleteSucceeded},
	{"CompleteDurable", testCompleteDurable},
	{"CompleteFailedAndExpired", testCompleteFailedAndExpired},
	{"CompleteInvalid", testCompleteInvalid},
	{"NotHead", testNotHead},
	{"KilledProcessResumes", testKilledProcessResumes},
	{"Callbacks", testCallbacks},
	{"CallbackClaimExpires", testCallbackClaimExpires},
	{"CallbacksSurviveRestart", testCallbacksSurviveRestart},
	{"CallbackNeverBlocksLane", testCallbackNeverBlocksLane},
	{"Retention", testRetention},
	{"Retry", testRetry},
	{"Requeue", testRequeue},
	{"Drop", testDrop},
	{"ListAndStats", testListAndStats},
	{"KeysDoNotCollide", testKeysDoNotCollide},
	{"RaceEnqueueOrder", testRaceEnqueueOrder},
	{"RaceDedupe", testRaceDedupe},
	{"RaceDelivery", testRaceDelivery},
	{"EndedContext", testEndedContext},
	{"NonPositiveDurations", testNonPositiveDurations},
}

// idSource hands out ids unique to one subtest run.
type idSource struct {
	prefix string
	n      atomic.Int64
}

func newIDSource(tb testing.TB) *idSource {
	return &idSource{prefix: tb.Name() + "/" + rand.Text()[:10]}
}

// client returns a fresh Client-Id.
func (ids *idSource) client() string {
	return fmt.Sprintf("%s/client-%d", ids.prefix, ids.n.Add(1))
}

// lane returns a fresh lane under a fresh client.
func (ids *idSource) lane() store.LaneKey {
	return store.LaneKey{ClientID: ids.client(), MerchantBizNo: "order-1"}
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	tb.Cleanup(cancel)
	return ctx
}

// base is the suite's clock origin: times are built from it so that they
// compare exactly after a round trip (whole milliseconds and a few
// nanoseconds, in UTC).
func now() time.Time { return time.Now().UTC().Round(time.Microsecond).Add(3) }

// newEntry returns a queued entry of lane, due at once, whose body carries
// what a JSON encoder would rewrite, a NUL and bytes that are not UTF-8.
func newEntry(lane store.LaneKey, requestID, status string, at time.Time) store.Entry {
	return store.Entry{
		ClientID:        lane.ClientID,
		RequestID:       requestID,
		MerchantBizNo:   lane.MerchantBizNo,
		Scenario:        "gift_card",
		OrderStatus:     status,
		OrderModifyTime: at.UnixMilli(),
		Body: []byte(`{"requestId":"` + requestID + `","orderStatus":"` + status +
			`","extInfo":{"n":123456789012345678901234567890,"s":"<&>\u2028"}}` + "\x00\xff"),
		State:         store.EntryQueued,
		CreatedAt:     at,
		NextAttemptAt: at,
	}
}

func rkey(lane store.LaneKey, requestID string) store.RequestKey {
	return store.RequestKey{ClientID: lane.ClientID, RequestID: requestID}
}

func mustEnqueue(t *testing.T, b store.OutboxBackend, e store.Entry, laneVersion uint64) {
	t.Helper()
	existing, err := b.Enqueue(ctxFor(t), e, laneVersion)
	if err != nil || existing != nil {
		t.Fatalf("Enqueue(%s) = %+v, %v; want it queued", e.RequestID, existing, err)
	}
}

func mustLane(t *testing.T, b store.OutboxBackend, key store.LaneKey) *store.Lane {
	t.Helper()
	l, err := b.GetLane(ctxFor(t), key)
	if err != nil || l == nil {
		t.Fatalf("GetLane(%v) = %+v, %v", key, l, err)
	}
	return l
}

func mustEntry(t *testing.T, b store.OutboxBackend, key store.RequestKey) *store.Entry {
	t.Helper()
	e, err := b.GetEntry(ctxFor(t), key)
	if err != nil || e == nil {
		t.Fatalf("GetEntry(%v) = %+v, %v; want the entry", key, e, err)
	}
	return e
}

// queueOf returns the requestIds of the lane's queued entries, head first.
func queueOf(l *store.Lane) []string {
	ids := make([]string, len(l.Queued))
	for i, e := range l.Queued {
		ids[i] = e.RequestID
	}
	return ids
}
