// Package storetest is the conformance suite every store.Backend must pass,
// plus benchmarks shared by the backends so their numbers compare. The
// suite checks the backend's primitives directly, and the claim and lock
// values of store.Store over them.
//
// A backend's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend {
//			s := openForTest(t) // close it with t.Cleanup
//			return s
//		})
//	}
//
// The suite never assumes that a store starts empty: every subtest draws its
// Client-Ids from a random run prefix, so constructors may hand out stores
// that share one backend (one Redis database, say) without wiping it.
// Subtests run one after the other; timing-based checks use leases and TTLs
// of a few hundred milliseconds, so the whole suite takes a few seconds.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/store"
)

// Timing used by the expiry checks. Short enough to keep the suite fast,
// long enough that a loaded machine running -race does not make a live
// claim look expired.
const (
	shortLease = 200 * time.Millisecond
	shortTTL   = 200 * time.Millisecond
	// pastExpiry is how long to sleep for a shortLease or shortTTL to have
	// certainly ended, with room for coarse server clocks.
	pastExpiry = 350 * time.Millisecond
	longLease  = time.Minute
	longTTL    = time.Hour
	// patience bounds any wait that should end promptly, so that a broken
	// backend fails the test instead of hanging it.
	patience = 5 * time.Second
)

// Run runs the conformance suite as subtests of t. newStore is called once
// per subtest; it must return a ready store and arrange for it to be closed
// (t.Cleanup). Stores returned by successive calls may share their backend.
func Run(t *testing.T, newStore func(t *testing.T) store.Backend) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Backend, ids *idSource)
	}{
		{"ClaimNew", testClaimNew},
		{"ClaimInFlight", testClaimInFlight},
		{"ClaimDone", testClaimDone},
		{"ClaimMismatch", testClaimMismatch},
		{"ClaimOtherBodyInFlight", testClaimOtherBodyInFlight},
		{"ClaimCanceledContext", testClaimCanceledContext},
		{"ClaimLeaseTakeover", testClaimLeaseTakeover},
		{"Release", testRelease},
		{"ReleaseAfterTakeover", testReleaseAfterTakeover},
		{"ReleaseKeepsDoneRecord", testReleaseKeepsDoneRecord},
		{"FinishReplyExact", testFinishReplyExact},
		{"FinishStaleToken", testFinishStaleToken},
		{"FinishTwiceKeepsFirstReply", testFinishTwice},
		{"TTLExpiry", testTTLExpiry},
		{"CommitSuccess", testCommitSuccess},
		{"CommitSuccessChain", testCommitSuccessChain},
		{"CommitConflictPrevNil", testCommitConflictPrevNil},
		{"CommitConflictPrevStale", testCommitConflictPrevStale},
		{"CommitComparesOnlyVersionFields", testCommitComparesVersionFields},
		{"CommitStaleToken", testCommitStaleToken},
		{"CommitReleasedToken", testCommitReleasedToken},
		{"GetOrderUnknown", testGetOrderUnknown},
		{"GetRequest", testGetRequest},
		{"LockSerializes", testLockSerializes},
		{"LockTimeout", testLockTimeout},
		{"LockCanceledContext", testLockCanceledContext},
		{"LockLeaseExpiry", testLockLeaseExpiry},
		{"UnlockTwice", testUnlockTwice},
		{"LockIndependentOrders", testLockIndependentOrders},
		{"KeysDoNotCollide", testKeysDoNotCollide},
		{"RaceLocked", testRaceLocked},
		{"RaceOptimistic", testRaceOptimistic},
		{"RaceClaim", testRaceClaim},
		{"EndedContext", testEndedContext},
		{"ShortDeadline", testShortDeadline},
		{"ClaimValueFinish", testClaimValueFinish},
		{"ClaimValueCommit", testClaimValueCommit},
		{"ClaimValueRelease", testClaimValueRelease},
		{"ClaimValueFailedFinish", testClaimValueFailedFinish},
		{"ClaimValueConflict", testClaimValueConflict},
		{"ClaimValueNotClaimed", testClaimValueNotClaimed},
		{"ClaimValueEndedContext", testClaimValueEndedContext},
		{"ClaimValueStalledWrite", testClaimValueStalledWrite},
		{"ClaimValueLockOrder", testClaimValueLockOrder},
		{"ClaimOrderCommit", testClaimOrderCommit},
		{"ClaimOrderReadsOrder", testClaimOrderReadsOrder},
		{"ClaimOrderNotClaimed", testClaimOrderNotClaimed},
		{"ClaimOrderWaitsForLock", testClaimOrderWaitsForLock},
		{"ClaimOrderLockTimeout", testClaimOrderLockTimeout},
		{"ClaimOrderReleaseUnlocks", testClaimOrderReleaseUnlocks},
		{"ClaimOrderSteps", testClaimOrderSteps},
		{"NonPositiveDurations", testNonPositiveDurations},
		{"StoredReply", testStoredReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tc.fn(t, s, newIDSource(t))
		})
	}
}

// idSource hands out ids unique to one subtest run, so that stores sharing a
// backend (and reruns against a backend that kept old data) never see each
// other's keys.
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

// request returns a fresh request key under a fresh client.
func (ids *idSource) request() store.RequestKey {
	return store.RequestKey{ClientID: ids.client(), RequestID: "req-1"}
}

// order returns a fresh order key under a fresh client.
func (ids *idSource) order() store.OrderKey {
	return store.OrderKey{ClientID: ids.client(), MerchantBizNo: "order-1"}
}

var (
	bodyA = store.HashBody([]byte(`{"requestId":"r","orderStatus":"A"}`))
	bodyB = store.HashBody([]byte(`{"requestId":"r","orderStatus":"B"}`))
)

// sampleReply has what makes byte-exact replay hard: several values for one
// header in a meaningful order, bytes that are not UTF-8 (JSON would mangle
// them) and NUL bytes.
func sampleReply(tag string) store.Reply {
	return store.Reply{
		Status: 200,
		Header: map[string][]string{
			"Content-Type":  {"application/json; charset=UTF-8"},
			"Client-Id":     {"client-" + tag},
			"Response-Time": {"2026-01-02T03:04:05.678+08:00"},
			"Signature":     {"algorithm=RSA256,keyVersion=1,signature=ab%2Bcd%3D%3D"},
			"X-Multi":       {"zeta", "alpha", "", "mid\xff\xfe"},
		},
		Body:     []byte(`{"result":{"resultStatus":"S","resultCode":"SUCCESS"},"tag":"` + tag + "\"}\x00\xff\n"),
		Scenario: "scenario-" + tag,
	}
}

// sampleOrder's distributeResult has what a JSON encoder likes to rewrite:
// characters encoding/json HTML-escapes (& < > U+2028 U+2029), insignificant
// whitespace and non-ASCII text. The upstream's bytes must come back
// unchanged (README, "The upstream contract"), so the suite compares them
// byte for byte.
func sampleOrder(status string, modifyTime int64, requestID string) store.Order {
	return store.Order{
		Scenario:   "queue",
		Status:     status,
		ModifyTime: modifyTime,
		OrderID:    "upstream-" + status,
		DistributeResult: json.RawMessage(`[ {"sceneCode":"GIFT", "extInfo":{"benefitId":"b-` + status +
			`","detailLink":"https://example.com/p?a=1&b=<2>","note":"券\u2028` + "  " + `"}}]`),
		RequestID: requestID,
		UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 678_000_001, time.UTC),
	}
}

// endedContext returns a context that has already ended.
func endedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	tb.Cleanup(cancel)
	return ctx
}

// token returns a fresh claim or lock token, as store.Store makes them.
func token() string { return rand.Text() }

// mustClaim claims key under a fresh token and returns the token.
func mustClaim(t *testing.T, s store.Backend, key store.RequestKey, hash store.BodyHash, lease time.Duration) string {
	t.Helper()
	tok := token()
	res, err := s.Claim(ctxFor(t), key, hash, tok, lease)
	if err != nil {
		t.Fatalf("Claim(%v): %v", key, err)
	}
	if res.Status != store.Claimed {
		t.Fatalf("Claim(%v) = %s, want Claimed", key, res.Status)
	}
	return tok
}

func claimStatus(t *testing.T, s store.Backend, key store.RequestKey, hash store.BodyHash, lease time.Duration) store.ClaimResult {
	t.Helper()
	res, err := s.Claim(ctxFor(t), key, hash, token(), lease)
	if err != nil {
		t.Fatalf("Claim(%v): %v", key, err)
	}
	return res
}

func wantClaim(t *testing.T, s store.Backend, key store.RequestKey, hash store.BodyHash, want store.ClaimStatus) store.ClaimResult {
	t.Helper()
	res := claimStatus(t, s, key, hash, longLease)
	if res.Status != want {
		t.Fatalf("Claim(%v) = %s, want %s", key, res.Status, want)
	}
	if want != store.Done && res.Reply != nil {
		t.Errorf("Claim(%v) = %s with a reply; only Done carries one", key, res.Status)
	}
	return res
}

func mustGetOrder(t *testing.T, s store.Backend, key store.OrderKey) *store.Order {
	t.Helper()
	o, err := s.GetOrder(ctxFor(t), key)
	if err != nil {
		t.Fatalf("GetOrder(%v): %v", key, err)
	}
	return o
}

func mustGetRequest(t *testing.T, s store.Backend, key store.RequestKey) *store.RequestRecord {
	t.Helper()
	rec, err := s.GetRequest(ctxFor(t), key)
	if err != nil {
		t.Fatalf("GetRequest(%v): %v", key, err)
	}
	return rec
}

// replyDiff describes how got differs from want on the wire, or returns "".
// A nil and an empty header list (or body) write the same bytes, so they
// count as equal.
func replyDiff(got *store.Reply, want store.Reply) string {
	if got == nil {
		return "reply is nil"
	}
	if got.Status != want.Status {
		return fmt.Sprintf("status %d, want %d", got.Status, want.Status)
	}
	if got.Scenario != want.Scenario {
		return fmt.Sprintf("scenario %q, want %q", got.Scenario, want.Scenario)
	}
	if !bytes.Equal(got.Body, want.Body) {
		return fmt.Sprintf("body %q, want %q", got.Body, want.Body)
	}
	if len(got.Header) != len(want.Header) {
		return fmt.Sprintf("header %q, want %q", got.Header, want.Header)
	}
	for k, wv := range want.Header {
		gv, ok := got.Header[k]
		if !ok || !slices.Equal(gv, wv) {
			return fmt.Sprintf("header %q = %q, want %q", k, gv, wv)
		}
	}
	return ""
}

// orderDiff describes how got differs from want, or returns "". The
// distribute result is compared byte for byte (it is replayed to callers as
// the upstream sent it) and times by instant (a backend may store them in
// UTC).
func orderDiff(got *store.Order, want store.Order) string {
	if got == nil {
		return "order is nil"
	}
	if got.Scenario != want.Scenario || got.Status != want.Status || got.ModifyTime != want.ModifyTime ||
		got.OrderID != want.OrderID || got.RequestID != want.RequestID {
		return fmt.Sprintf("got %+v, want %+v", *got, want)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		return fmt.Sprintf("updatedAt %v, want %v", got.UpdatedAt, want.UpdatedAt)
	}
	if !bytes.Equal(got.DistributeResult, want.DistributeResult) {
		return fmt.Sprintf("distributeResult %q, want %q", got.DistributeResult, want.DistributeResult)
	}
	return ""
}

// --- Claim ---

func testClaimNew(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	before := time.Now()
	tok := mustClaim(t, s, key, bodyA, longLease)
	rec := mustGetRequest(t, s, key)
	if rec == nil {
		t.Fatal("GetRequest after Claim = nil, want an in-flight record")
	}
	if rec.Done || rec.Reply != nil {
		t.Errorf("in-flight record: Done=%v Reply=%v, want false, nil", rec.Done, rec.Reply)
	}
	if rec.BodyHash != bodyA {
		t.Errorf("in-flight record has body hash %x, want %x", rec.BodyHash, bodyA)
	}
	// The lease end is approximate for a remote backend; a second of slack
	// covers a round trip and millisecond rounding.
	if rec.ExpiresAt.Before(before.Add(longLease-time.Second)) || rec.ExpiresAt.After(time.Now().Add(longLease+time.Second)) {
		t.Errorf("in-flight record expires at %v, want about %v", rec.ExpiresAt, before.Add(longLease))
	}

	// Claiming again with the token that holds the claim (a retried
	// command) is still Claimed, not InFlight.
	res, err := s.Claim(ctxFor(t), key, bodyA, tok, longLease)
	if err != nil || res.Status != store.Claimed {
		t.Errorf("Claim by the holder's token = %v, %v; want Claimed", res.Status, err)
	}
}

func testClaimInFlight(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	mustClaim(t, s, key, bodyA, longLease)
	wantClaim(t, s, key, bodyA, store.InFlight)
	wantClaim(t, s, key, bodyA, store.InFlight)
}

func testClaimDone(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	want := sampleReply("done")
	if err := s.Finish(ctxFor(t), key, tok, want, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for i := range 2 {
		res := wantClaim(t, s, key, bodyA, store.Done)
		if d := replyDiff(res.Reply, want); d != "" {
			t.Errorf("replay %d: %s", i, d)
		}
	}
}

// testClaimMismatch: Mismatch is only ever said against a stored final
// reply. It is final for the caller (PARAM_ILLEGAL, F), so it must not be
// said while the first request is in flight: that one may still end U,
// and then the other body is processed afresh (see testClaimOtherBodyInFlight).
func testClaimMismatch(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	if err := s.Finish(ctxFor(t), key, tok, sampleReply("m"), longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	res := wantClaim(t, s, key, bodyB, store.Mismatch)
	if res.Reply != nil {
		t.Errorf("Mismatch carries a reply; the stored reply belongs to another body")
	}
	wantClaim(t, s, key, bodyA, store.Done)

	// The same against a commit's replay record.
	okey, ckey := ids.order(), ids.request()
	ctok := mustClaim(t, s, ckey, bodyA, longLease)
	if err := s.CommitSuccess(ctxFor(t), okey, nil, sampleOrder("A", 1, ckey.RequestID), ckey, ctok, sampleReply("c"), longTTL); err != nil {
		t.Fatalf("CommitSuccess: %v", err)
	}
	wantClaim(t, s, ckey, bodyB, store.Mismatch)
}

// testClaimOtherBodyInFlight: while a claim is live, a request with another
// body is InFlight (retry later), not Mismatch: the first request may still
// end without a stored answer, and then the other body is new.
func testClaimOtherBodyInFlight(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	wantClaim(t, s, key, bodyB, store.InFlight)
	wantClaim(t, s, key, bodyA, store.InFlight)
	if err := s.Release(ctxFor(t), key, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	tokB := mustClaim(t, s, key, bodyB, longLease)
	wantClaim(t, s, key, bodyA, store.InFlight)
	if err := s.Finish(ctxFor(t), key, tokB, sampleReply("b"), longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	wantClaim(t, s, key, bodyA, store.Mismatch)
	wantClaim(t, s, key, bodyB, store.Done)
}

func testClaimCanceledContext(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	if res, err := s.Claim(endedContext(), key, bodyA, token(), longLease); err == nil {
		t.Fatalf("Claim with a canceled context = %s, want an error", res.Status)
	}
	// Nothing may have been claimed by the failed call.
	mustClaim(t, s, key, bodyA, longLease)
}

func testClaimLeaseTakeover(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	old := mustClaim(t, s, key, bodyA, shortLease)
	wantClaim(t, s, key, bodyA, store.InFlight)
	time.Sleep(pastExpiry)
	tok := mustClaim(t, s, key, bodyA, longLease)
	if tok == old {
		t.Fatalf("takeover reused the expired claim's token")
	}
	wantClaim(t, s, key, bodyA, store.InFlight)

	// An expired claim with another body is gone, not a mismatch.
	key2 := ids.request()
	mustClaim(t, s, key2, bodyA, shortLease)
	time.Sleep(pastExpiry)
	mustClaim(t, s, key2, bodyB, longLease)
}

// --- Release ---

func testRelease(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)

	if err := s.Release(ctx, key, "not-the-token"); err != nil {
		t.Fatalf("Release with a wrong token: %v, want nil", err)
	}
	wantClaim(t, s, key, bodyA, store.InFlight)

	if err := s.Release(ctx, key, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if rec := mustGetRequest(t, s, key); rec != nil {
		t.Errorf("GetRequest after Release = %+v, want nil", rec)
	}
	// A released requestId is processed afresh, even with another body.
	tok2 := mustClaim(t, s, key, bodyB, longLease)

	// Releasing again, or releasing what never existed, is not an error.
	if err := s.Release(ctx, key, tok); err != nil {
		t.Errorf("second Release: %v, want nil", err)
	}
	if err := s.Release(ctx, ids.request(), tok2); err != nil {
		t.Errorf("Release of an unknown key: %v, want nil", err)
	}
	wantClaim(t, s, key, bodyB, store.InFlight)
}

func testReleaseAfterTakeover(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	old := mustClaim(t, s, key, bodyA, shortLease)
	time.Sleep(pastExpiry)
	tok := mustClaim(t, s, key, bodyA, longLease)

	if err := s.Release(ctxFor(t), key, old); err != nil {
		t.Fatalf("Release of a taken-over claim: %v, want nil", err)
	}
	wantClaim(t, s, key, bodyA, store.InFlight)
	if err := s.Finish(ctxFor(t), key, tok, sampleReply("new"), longTTL); err != nil {
		t.Fatalf("the new owner's Finish after the old owner's Release: %v", err)
	}
}

func testReleaseKeepsDoneRecord(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	want := sampleReply("kept")
	if err := s.Finish(ctxFor(t), key, tok, want, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if err := s.Release(ctxFor(t), key, tok); err != nil {
		t.Fatalf("Release after Finish: %v, want nil", err)
	}
	res := wantClaim(t, s, key, bodyA, store.Done)
	if d := replyDiff(res.Reply, want); d != "" {
		t.Error(d)
	}
}

// --- Finish ---

func testFinishReplyExact(t *testing.T, s store.Backend, ids *idSource) {
	cases := map[string]store.Reply{
		"rich":  sampleReply("exact"),
		"empty": {Status: 200},
		"error": {Status: 599, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte("x")},
		"big":   {Status: 200, Header: map[string][]string{"K": {"v"}}, Body: bytes.Repeat([]byte("0123456789abcdef\x00"), 8192)},
	}
	for name, want := range cases {
		key := ids.request()
		tok := mustClaim(t, s, key, bodyA, longLease)
		before := time.Now()
		if err := s.Finish(ctxFor(t), key, tok, want, longTTL); err != nil {
			t.Fatalf("%s: Finish: %v", name, err)
		}
		res := wantClaim(t, s, key, bodyA, store.Done)
		if d := replyDiff(res.Reply, want); d != "" {
			t.Errorf("%s: Claim replay: %s", name, d)
		}
		rec := mustGetRequest(t, s, key)
		if rec == nil || !rec.Done {
			t.Fatalf("%s: GetRequest = %+v, want a done record", name, rec)
		}
		if d := replyDiff(rec.Reply, want); d != "" {
			t.Errorf("%s: GetRequest: %s", name, d)
		}
		if rec.BodyHash != bodyA {
			t.Errorf("%s: done record has body hash %x, want %x", name, rec.BodyHash, bodyA)
		}
		if rec.ExpiresAt.Before(before.Add(longTTL-time.Second)) || rec.ExpiresAt.After(time.Now().Add(longTTL+time.Second)) {
			t.Errorf("%s: done record expires at %v, want about %v", name, rec.ExpiresAt, before.Add(longTTL))
		}
	}

	// What comes back must not alias what went in: the handler may reuse
	// its buffers after Finish returns.
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	in := sampleReply("alias")
	want := sampleReply("alias")
	if err := s.Finish(ctxFor(t), key, tok, in, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	in.Body[0] = '!'
	in.Header["X-Multi"][0] = "changed"
	res := wantClaim(t, s, key, bodyA, store.Done)
	if d := replyDiff(res.Reply, want); d != "" {
		t.Errorf("stored reply changed with the caller's buffers: %s", d)
	}
}

func testFinishStaleToken(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	old := mustClaim(t, s, key, bodyA, shortLease)
	time.Sleep(pastExpiry)
	tok := mustClaim(t, s, key, bodyA, longLease)

	if err := s.Finish(ctxFor(t), key, old, sampleReply("old"), longTTL); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("Finish with a taken-over token: %v, want ErrNotOwner", err)
	}
	wantClaim(t, s, key, bodyA, store.InFlight)
	want := sampleReply("new")
	if err := s.Finish(ctxFor(t), key, tok, want, longTTL); err != nil {
		t.Fatalf("Finish by the new owner: %v", err)
	}
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}

	// A token from nowhere, on a key nobody claimed.
	if err := s.Finish(ctxFor(t), ids.request(), tok, want, longTTL); !errors.Is(err, store.ErrNotOwner) {
		t.Errorf("Finish of an unclaimed key: %v, want ErrNotOwner", err)
	}
}

// testFinishTwice pins only what every backend guarantees: a second Finish
// by the same token may succeed (a retried write) or say ErrNotOwner, but
// the first reply is the one kept.
func testFinishTwice(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	first := sampleReply("first")
	if err := s.Finish(ctxFor(t), key, tok, first, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if err := s.Finish(ctxFor(t), key, tok, sampleReply("second"), longTTL); err != nil && !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("second Finish: %v, want nil or ErrNotOwner", err)
	}
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, first); d != "" {
		t.Error(d)
	}
}

func testTTLExpiry(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	key := ids.request()
	tok := mustClaim(t, s, key, bodyA, longLease)
	if err := s.Finish(ctx, key, tok, sampleReply("ttl"), shortTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	// A commit's replay record expires the same way; the order does not.
	okey, ckey := ids.order(), ids.request()
	ctok := mustClaim(t, s, ckey, bodyA, longLease)
	next := sampleOrder("A", 1, ckey.RequestID)
	if err := s.CommitSuccess(ctx, okey, nil, next, ckey, ctok, sampleReply("c"), shortTTL); err != nil {
		t.Fatalf("CommitSuccess: %v", err)
	}
	wantClaim(t, s, key, bodyA, store.Done)

	time.Sleep(pastExpiry)
	for _, k := range []store.RequestKey{key, ckey} {
		if rec := mustGetRequest(t, s, k); rec != nil {
			t.Errorf("GetRequest(%v) after the TTL = %+v, want nil", k, rec)
		}
		// An expired record is gone: a retry, even with another body, is new.
		mustClaim(t, s, k, bodyB, longLease)
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Errorf("order after its request's TTL: %s", d)
	}
}

// --- CommitSuccess ---

func testCommitSuccess(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey, rkey := ids.order(), ids.request()
	tok := mustClaim(t, s, rkey, bodyA, longLease)
	next := sampleOrder("A", 1_700_000_000_000, rkey.RequestID)
	rep := sampleReply("commit")
	if err := s.CommitSuccess(ctx, okey, nil, next, rkey, tok, rep, longTTL); err != nil {
		t.Fatalf("CommitSuccess: %v", err)
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Errorf("GetOrder: %s", d)
	}
	rec := mustGetRequest(t, s, rkey)
	if rec == nil || !rec.Done {
		t.Fatalf("GetRequest after CommitSuccess = %+v, want a done record", rec)
	}
	if d := replyDiff(rec.Reply, rep); d != "" {
		t.Errorf("GetRequest: %s", d)
	}
	if d := replyDiff(wantClaim(t, s, rkey, bodyA, store.Done).Reply, rep); d != "" {
		t.Errorf("Claim replay: %s", d)
	}
	// The claim is spent: finishing it again must not replace the reply.
	if err := s.Finish(ctx, rkey, tok, sampleReply("late"), longTTL); err != nil && !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("Finish after CommitSuccess: %v, want nil or ErrNotOwner", err)
	}
	if d := replyDiff(wantClaim(t, s, rkey, bodyA, store.Done).Reply, rep); d != "" {
		t.Errorf("after a late Finish: %s", d)
	}
}

// testCommitSuccessChain moves one order through several states, each read
// back as prev, as the handler does.
func testCommitSuccessChain(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey := ids.order()
	var prev *store.Order
	for i, status := range []string{"A", "B", "C"} {
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: "chain-" + status}
		tok := mustClaim(t, s, rkey, bodyA, longLease)
		next := sampleOrder(status, int64(1000+i), rkey.RequestID)
		if err := s.CommitSuccess(ctx, okey, prev, next, rkey, tok, sampleReply(status), longTTL); err != nil {
			t.Fatalf("CommitSuccess %s: %v", status, err)
		}
		prev = mustGetOrder(t, s, okey)
		if d := orderDiff(prev, next); d != "" {
			t.Fatalf("after %s: %s", status, d)
		}
	}
}

// commitRejected checks that a CommitSuccess that returned an error wrote
// nothing: the order is as before and the claim is still in flight and
// still owned by tok.
func commitRejected(t *testing.T, s store.Backend, okey store.OrderKey, before *store.Order, rkey store.RequestKey, tok string) {
	t.Helper()
	got := mustGetOrder(t, s, okey)
	switch {
	case before == nil && got != nil:
		t.Errorf("a rejected commit created the order: %+v", *got)
	case before != nil:
		if d := orderDiff(got, *before); d != "" {
			t.Errorf("a rejected commit changed the order: %s", d)
		}
	}
	rec := mustGetRequest(t, s, rkey)
	if rec == nil || rec.Done {
		t.Fatalf("after a rejected commit the request record is %+v, want still in flight", rec)
	}
	if tok != "" {
		if err := s.Finish(ctxFor(t), rkey, tok, sampleReply("f"), longTTL); err != nil {
			t.Errorf("after a rejected commit the claim is no longer owned: Finish: %v", err)
		}
	}
}

func testCommitConflictPrevNil(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey := ids.order()
	r1 := store.RequestKey{ClientID: okey.ClientID, RequestID: "first"}
	r2 := store.RequestKey{ClientID: okey.ClientID, RequestID: "second"}
	t1 := mustClaim(t, s, r1, bodyA, longLease)
	t2 := mustClaim(t, s, r2, bodyB, longLease)
	stored := sampleOrder("A", 1, r1.RequestID)
	if err := s.CommitSuccess(ctx, okey, nil, stored, r1, t1, sampleReply("1"), longTTL); err != nil {
		t.Fatalf("first CommitSuccess: %v", err)
	}
	err := s.CommitSuccess(ctx, okey, nil, sampleOrder("B", 2, r2.RequestID), r2, t2, sampleReply("2"), longTTL)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CommitSuccess with prev nil over a stored order: %v, want ErrConflict", err)
	}
	commitRejected(t, s, okey, &stored, r2, t2)
}

func testCommitConflictPrevStale(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey := ids.order()
	r0 := store.RequestKey{ClientID: okey.ClientID, RequestID: "r0"}
	t0 := mustClaim(t, s, r0, bodyA, longLease)
	stored := sampleOrder("B", 2000, r0.RequestID)
	if err := s.CommitSuccess(ctx, okey, nil, stored, r0, t0, sampleReply("0"), longTTL); err != nil {
		t.Fatalf("CommitSuccess: %v", err)
	}
	stale := map[string]store.Order{
		"status":     sampleOrder("A", 2000, r0.RequestID),
		"modifyTime": sampleOrder("B", 1999, r0.RequestID),
		"requestId":  sampleOrder("B", 2000, "someone-else"),
	}
	for name, prev := range stale {
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: "stale-" + name}
		tok := mustClaim(t, s, rkey, bodyA, longLease)
		err := s.CommitSuccess(ctx, okey, &prev, sampleOrder("C", 3000, rkey.RequestID), rkey, tok, sampleReply(name), longTTL)
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("prev with another %s: %v, want ErrConflict", name, err)
			continue
		}
		commitRejected(t, s, okey, &stored, rkey, tok)
	}

	// prev given, but no order stored.
	empty := ids.order()
	rkey := store.RequestKey{ClientID: empty.ClientID, RequestID: "ghost"}
	tok := mustClaim(t, s, rkey, bodyA, longLease)
	prev := sampleOrder("A", 1, "ghost-prev")
	err := s.CommitSuccess(ctx, empty, &prev, sampleOrder("B", 2, rkey.RequestID), rkey, tok, sampleReply("g"), longTTL)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CommitSuccess with prev over no stored order: %v, want ErrConflict", err)
	}
	commitRejected(t, s, empty, nil, rkey, tok)
}

// testCommitComparesVersionFields pins the comparison rule: Status,
// ModifyTime and RequestID identify a version; the other fields (a time
// that went through a round trip, say) must not cause conflicts.
func testCommitComparesVersionFields(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey := ids.order()
	r0 := store.RequestKey{ClientID: okey.ClientID, RequestID: "r0"}
	t0 := mustClaim(t, s, r0, bodyA, longLease)
	stored := sampleOrder("A", 10, r0.RequestID)
	if err := s.CommitSuccess(ctx, okey, nil, stored, r0, t0, sampleReply("0"), longTTL); err != nil {
		t.Fatalf("CommitSuccess: %v", err)
	}
	prev := stored
	prev.UpdatedAt = prev.UpdatedAt.In(time.FixedZone("HKT", 8*3600)).Add(time.Second)
	prev.OrderID = "other"
	prev.DistributeResult = nil
	r1 := store.RequestKey{ClientID: okey.ClientID, RequestID: "r1"}
	t1 := mustClaim(t, s, r1, bodyA, longLease)
	next := sampleOrder("B", 20, r1.RequestID)
	if err := s.CommitSuccess(ctx, okey, &prev, next, r1, t1, sampleReply("1"), longTTL); err != nil {
		t.Fatalf("CommitSuccess with prev equal in status, modifyTime and requestId: %v", err)
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Error(d)
	}
}

func testCommitStaleToken(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey, rkey := ids.order(), ids.request()
	old := mustClaim(t, s, rkey, bodyA, shortLease)
	time.Sleep(pastExpiry)
	tok := mustClaim(t, s, rkey, bodyA, longLease)

	err := s.CommitSuccess(ctx, okey, nil, sampleOrder("A", 1, rkey.RequestID), rkey, old, sampleReply("old"), longTTL)
	if !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("CommitSuccess with a taken-over token: %v, want ErrNotOwner", err)
	}
	commitRejected(t, s, okey, nil, rkey, "")

	// The new owner is unaffected.
	next := sampleOrder("A", 2, rkey.RequestID)
	want := sampleReply("new")
	if err := s.CommitSuccess(ctx, okey, nil, next, rkey, tok, want, longTTL); err != nil {
		t.Fatalf("CommitSuccess by the new owner: %v", err)
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Error(d)
	}
	if d := replyDiff(wantClaim(t, s, rkey, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}

	// A stale token must be refused even when the order check would pass
	// and the request is already done.
	if err := s.CommitSuccess(ctx, okey, &next, sampleOrder("B", 3, rkey.RequestID), rkey, old, sampleReply("x"), longTTL); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("CommitSuccess with a stale token on a done request: %v, want ErrNotOwner", err)
	}
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Errorf("a refused commit changed the order: %s", d)
	}
}

func testCommitReleasedToken(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	okey, rkey := ids.order(), ids.request()
	tok := mustClaim(t, s, rkey, bodyA, longLease)
	if err := s.Release(ctx, rkey, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	err := s.CommitSuccess(ctx, okey, nil, sampleOrder("A", 1, rkey.RequestID), rkey, tok, sampleReply("r"), longTTL)
	if !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("CommitSuccess after Release: %v, want ErrNotOwner", err)
	}
	if o := mustGetOrder(t, s, okey); o != nil {
		t.Errorf("a refused commit created the order: %+v", *o)
	}
	if rec := mustGetRequest(t, s, rkey); rec != nil {
		t.Errorf("a refused commit wrote a request record: %+v", rec)
	}
}

// --- Reads ---

func testGetOrderUnknown(t *testing.T, s store.Backend, ids *idSource) {
	if o := mustGetOrder(t, s, ids.order()); o != nil {
		t.Fatalf("GetOrder of an unknown order = %+v, want nil", *o)
	}
	if o := mustGetOrder(t, s, store.OrderKey{ClientID: ids.client()}); o != nil {
		t.Fatalf("GetOrder with an empty merchantBizNo = %+v, want nil", *o)
	}
}

func testGetRequest(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.request()
	if rec := mustGetRequest(t, s, key); rec != nil {
		t.Fatalf("GetRequest of an unknown key = %+v, want nil", rec)
	}
	tok := mustClaim(t, s, key, bodyB, longLease)
	if rec := mustGetRequest(t, s, key); rec == nil || rec.Done || rec.BodyHash != bodyB {
		t.Fatalf("GetRequest in flight = %+v, want not done with the claimed body hash", rec)
	}
	want := sampleReply("get")
	if err := s.Finish(ctxFor(t), key, tok, want, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	rec := mustGetRequest(t, s, key)
	if rec == nil || !rec.Done || rec.BodyHash != bodyB {
		t.Fatalf("GetRequest done = %+v, want done with the claimed body hash", rec)
	}
	if d := replyDiff(rec.Reply, want); d != "" {
		t.Error(d)
	}

	// An expired claim is not a live record.
	k2 := ids.request()
	mustClaim(t, s, k2, bodyA, shortLease)
	time.Sleep(pastExpiry)
	if rec := mustGetRequest(t, s, k2); rec != nil {
		t.Errorf("GetRequest of an expired claim = %+v, want nil", rec)
	}
}

// --- LockOrder ---

// unlocker returns a func that unlocks key held by tok; it may be called
// from any goroutine.
func unlocker(t *testing.T, s store.Backend, key store.OrderKey, tok string) func() {
	return func() {
		if err := s.UnlockOrder(ctxFor(t), key, tok); err != nil {
			t.Errorf("UnlockOrder(%v): %v", key, err)
		}
	}
}

// mustLock locks key under a fresh token and returns its unlock.
func mustLock(t *testing.T, s store.Backend, key store.OrderKey, lease time.Duration) func() {
	t.Helper()
	tok := token()
	if err := s.LockOrder(ctxFor(t), key, tok, lease); err != nil {
		t.Fatalf("LockOrder(%v): %v", key, err)
	}
	return unlocker(t, s, key, tok)
}

// lockHeld reports whether key is held by someone else: a lock attempt
// that gives up after wait fails.
func lockHeld(t *testing.T, s store.Backend, key store.OrderKey, wait time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tok := token()
	err := s.LockOrder(ctx, key, tok, longLease)
	if err == nil {
		unlocker(t, s, key, tok)()
		return false
	}
	if !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("LockOrder(%v): %v, want nil or ErrLockTimeout", key, err)
	}
	return true
}

func testLockSerializes(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	unlock1 := mustLock(t, s, key, longLease)

	acquired := make(chan func(), 1)
	errc := make(chan error, 1)
	go func() {
		tok := token()
		if err := s.LockOrder(ctxFor(t), key, tok, longLease); err != nil {
			errc <- err
			return
		}
		acquired <- unlocker(t, s, key, tok)
	}()
	select {
	case <-acquired:
		t.Fatal("a second LockOrder got the lock while the first holder had it")
	case err := <-errc:
		t.Fatalf("second LockOrder: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	unlock1()
	select {
	case unlock2 := <-acquired:
		unlock2()
	case err := <-errc:
		t.Fatalf("second LockOrder: %v", err)
	case <-time.After(patience):
		t.Fatal("the waiting LockOrder did not get the lock after unlock")
	}
	// Free again.
	mustLock(t, s, key, longLease)()
}

func testLockTimeout(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	unlock := mustLock(t, s, key, longLease)
	defer unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	tok := token()
	err := s.LockOrder(ctx, key, tok, longLease)
	if err == nil {
		unlocker(t, s, key, tok)()
		t.Fatal("LockOrder on a held lock succeeded, want ErrLockTimeout")
	}
	if !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("LockOrder on a held lock: %v, want ErrLockTimeout", err)
	}
	if waited := time.Since(began); waited > patience/2 {
		t.Errorf("LockOrder returned %v after its context ended", waited)
	}
}

func testLockCanceledContext(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	tok := token()
	if err := s.LockOrder(endedContext(), key, tok, longLease); !errors.Is(err, store.ErrLockTimeout) {
		if err == nil {
			unlocker(t, s, key, tok)()
		}
		t.Fatalf("LockOrder with a canceled context: %v, want ErrLockTimeout", err)
	}
	// The failed attempt holds nothing.
	mustLock(t, s, key, longLease)()
}

func testLockLeaseExpiry(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	stale := mustLock(t, s, key, shortLease) // never unlocked in time: a "crashed" holder
	began := time.Now()
	unlock := mustLock(t, s, key, longLease) // waits for the lease to end
	if waited := time.Since(began); waited < shortLease/2 {
		t.Errorf("the lock was taken %v into a %v lease", waited, shortLease)
	}
	// The stranded holder wakes up and unlocks: that must not free the
	// lock its successor holds.
	stale()
	if !lockHeld(t, s, key, 100*time.Millisecond) {
		t.Fatal("a stale unlock released the new holder's lock")
	}
	unlock()
	if lockHeld(t, s, key, patience) {
		t.Fatal("the lock stayed held after its holder unlocked")
	}
}

func testUnlockTwice(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	unlock := mustLock(t, s, key, longLease)
	unlock()
	unlock()
	next := mustLock(t, s, key, longLease)
	unlock() // a third, late call must not free next's lock
	if !lockHeld(t, s, key, 100*time.Millisecond) {
		t.Fatal("an extra unlock released another holder's lock")
	}
	next()
	if lockHeld(t, s, key, patience) {
		t.Fatal("the lock stayed held after unlock")
	}
}

func testLockIndependentOrders(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	defer mustLock(t, s, key, longLease)()
	others := []store.OrderKey{
		{ClientID: key.ClientID, MerchantBizNo: key.MerchantBizNo + "-2"},
		{ClientID: ids.client(), MerchantBizNo: key.MerchantBizNo},
	}
	for _, o := range others {
		if lockHeld(t, s, o, patience) {
			t.Errorf("locking %v blocked on the lock of %v", o, key)
		}
	}
}

// --- Keys ---

func testKeysDoNotCollide(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	base := ids.client()
	// Pairs chosen so that joining client and id with ":" (or nothing)
	// would give the same string.
	orders := []store.OrderKey{
		{ClientID: base + "-1", MerchantBizNo: "M-100"},
		{ClientID: base + "-2", MerchantBizNo: "M-100"},
		{ClientID: base + "-a:b", MerchantBizNo: "c"},
		{ClientID: base + "-a", MerchantBizNo: "b:c"},
		{ClientID: base + "-a", MerchantBizNo: "bc"},
		{ClientID: base + "-ü", MerchantBizNo: "订单:1"},
		{ClientID: base + "-ü", MerchantBizNo: "订单:1 "},
		{ClientID: base + "-{x}", MerchantBizNo: "%3A"},
		{ClientID: base + "-{x}", MerchantBizNo: ":"},
	}
	for i, okey := range orders {
		// Same requestId under every client: also a collision candidate.
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: "r:" + okey.MerchantBizNo}
		tok := token()
		res, err := s.Claim(ctx, rkey, bodyA, tok, longLease)
		if err != nil || res.Status != store.Claimed {
			t.Fatalf("Claim(%q, %q) = %s, %v; want Claimed: it collided with another key", rkey.ClientID, rkey.RequestID, res.Status, err)
		}
		next := sampleOrder(fmt.Sprint("S", i), int64(i), rkey.RequestID)
		if err := s.CommitSuccess(ctx, okey, nil, next, rkey, tok, sampleReply(fmt.Sprint(i)), longTTL); err != nil {
			t.Fatalf("CommitSuccess(%q, %q): %v (collided with another order?)", okey.ClientID, okey.MerchantBizNo, err)
		}
	}
	for i, okey := range orders {
		want := sampleOrder(fmt.Sprint("S", i), int64(i), "r:"+okey.MerchantBizNo)
		if d := orderDiff(mustGetOrder(t, s, okey), want); d != "" {
			t.Errorf("order (%q, %q): %s", okey.ClientID, okey.MerchantBizNo, d)
		}
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: "r:" + okey.MerchantBizNo}
		if d := replyDiff(wantClaim(t, s, rkey, bodyA, store.Done).Reply, sampleReply(fmt.Sprint(i))); d != "" {
			t.Errorf("request (%q, %q): %s", rkey.ClientID, rkey.RequestID, d)
		}
	}
	// One requestId under two clients is two requests.
	c1, c2 := ids.client(), ids.client()
	mustClaim(t, s, store.RequestKey{ClientID: c1, RequestID: "same"}, bodyA, longLease)
	mustClaim(t, s, store.RequestKey{ClientID: c2, RequestID: "same"}, bodyB, longLease)
}

// --- Races ---

// raceStatuses is the tiny state machine of the race tests: a status may
// only be followed by the next one.
var raceStatuses = []string{"A", "B", "C", "D"}

func raceRank(o *store.Order) int {
	if o == nil {
		return -1
	}
	return slices.Index(raceStatuses, o.Status)
}

const raceWorkers = 100

// racePatience bounds a race subtest. A hundred workers taking turns on
// one order under -race on a loaded two-core machine took 8s of ctxFor's
// 10s; the bound is only there so that a broken backend fails instead of
// hanging, so it is far from what a healthy one needs.
const racePatience = time.Minute

// raceCtx is ctxFor with racePatience.
func raceCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), racePatience)
	tb.Cleanup(cancel)
	return ctx
}

// raceCheck verifies that the race ended with each status reached by
// exactly one worker and the order and replay records agreeing with them.
func raceCheck(t *testing.T, s store.Backend, okey store.OrderKey, wins []atomic.Int32, winner []atomic.Value) {
	t.Helper()
	for i, status := range raceStatuses {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("status %s was committed %d times, want exactly once", status, n)
		}
	}
	o := mustGetOrder(t, s, okey)
	if o == nil || o.Status != raceStatuses[len(raceStatuses)-1] {
		t.Fatalf("final order = %+v, want status %s", o, raceStatuses[len(raceStatuses)-1])
	}
	last, _ := winner[len(raceStatuses)-1].Load().(string)
	if o.RequestID != last {
		t.Errorf("final order was written by %q, but %q won the last step", o.RequestID, last)
	}
	for i := range raceStatuses {
		id, _ := winner[i].Load().(string)
		if id == "" {
			continue
		}
		rec := mustGetRequest(t, s, store.RequestKey{ClientID: okey.ClientID, RequestID: id})
		if rec == nil || !rec.Done {
			t.Errorf("winner %s of step %s has no done record: %+v", id, raceStatuses[i], rec)
		} else if d := replyDiff(rec.Reply, sampleReply(id)); d != "" {
			t.Errorf("winner %s: %s", id, d)
		}
	}
}

// testRaceLocked is the handler's pattern, through store.Store: many
// workers push one order through A<B<C<D under LockOrder, each deciding
// from what it reads.
func testRaceLocked(t *testing.T, s store.Backend, ids *idSource) {
	st := store.New(s, store.Options{})
	okey := ids.order()
	wins := make([]atomic.Int32, len(raceStatuses))
	winner := make([]atomic.Value, len(raceStatuses))
	ctx := raceCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, raceWorkers)
	for w := range raceWorkers {
		target := w % len(raceStatuses)
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: fmt.Sprintf("locked-%d", w)}
		wg.Go(func() {
			for {
				done, err := lockedStep(ctx, st, okey, rkey, target)
				if err != nil {
					errs <- fmt.Errorf("worker %s: %w", rkey.RequestID, err)
					return
				}
				switch done {
				case stepWon:
					wins[target].Add(1)
					winner[target].Store(rkey.RequestID)
					return
				case stepPassed:
					return
				}
				time.Sleep(time.Millisecond) // not our turn yet
			}
		})
	}
	wg.Wait()
	st.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	raceCheck(t, s, okey, wins, winner)
}

type stepOutcome int

const (
	stepWait   stepOutcome = iota // the order is not yet at the previous status
	stepWon                       // this worker made the transition
	stepPassed                    // someone else already made it
)

func lockedStep(ctx context.Context, s *store.Store, okey store.OrderKey, rkey store.RequestKey, target int) (stepOutcome, error) {
	// Claimed, then locked, as the handler does (Claim.LockOrder); a step
	// that does not change the order gives both up (Release) and is tried
	// again with the same requestId.
	claim, err := s.Claim(ctx, rkey, store.HashBody([]byte(rkey.RequestID)), longLease)
	if err != nil {
		return 0, fmt.Errorf("Claim: %w", err)
	}
	defer claim.Release()
	if claim.Status != store.Claimed {
		return 0, fmt.Errorf("Claim of a fresh requestId = %s", claim.Status)
	}
	if err := claim.LockOrder(ctx, okey, longLease); err != nil {
		return 0, fmt.Errorf("LockOrder: %w", err)
	}
	prev, err := s.GetOrder(ctx, okey)
	if err != nil {
		return 0, fmt.Errorf("GetOrder: %w", err)
	}
	switch rank := raceRank(prev); {
	case rank >= target:
		return stepPassed, nil
	case rank != target-1:
		return stepWait, nil
	}
	next := sampleOrder(raceStatuses[target], int64(target), rkey.RequestID)
	change := store.OrderChange{Key: okey, Prev: prev, Next: next}
	if err := claim.Commit(ctx, change, sampleReply(rkey.RequestID), longTTL); err != nil {
		return 0, fmt.Errorf("Commit under the lock: %w", err)
	}
	return stepWon, nil
}

// testRaceOptimistic drops the lock: only CommitSuccess's compare step
// keeps the workers from overwriting each other.
func testRaceOptimistic(t *testing.T, s store.Backend, ids *idSource) {
	st := store.New(s, store.Options{})
	okey := ids.order()
	wins := make([]atomic.Int32, len(raceStatuses))
	winner := make([]atomic.Value, len(raceStatuses))
	var conflicts atomic.Int32
	ctx := raceCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, raceWorkers)
	start := make(chan struct{})
	for w := range raceWorkers {
		target := w % len(raceStatuses)
		rkey := store.RequestKey{ClientID: okey.ClientID, RequestID: fmt.Sprintf("optimistic-%d", w)}
		wg.Go(func() {
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %s: "+format, append([]any{rkey.RequestID}, args...)...)
			}
			claim, err := st.Claim(ctx, rkey, store.HashBody([]byte(rkey.RequestID)), longLease)
			if err != nil || claim.Status != store.Claimed {
				fail("Claim = %v, %v", claim, err)
				return
			}
			defer claim.Release()
			<-start
			for {
				prev, err := s.GetOrder(ctx, okey)
				if err != nil {
					fail("GetOrder: %v", err)
					return
				}
				switch rank := raceRank(prev); {
				case rank >= target:
					return // the deferred Release gives the claim up
				case rank != target-1:
					time.Sleep(time.Millisecond)
					continue
				}
				next := sampleOrder(raceStatuses[target], int64(target), rkey.RequestID)
				err = claim.Commit(ctx, store.OrderChange{Key: okey, Prev: prev, Next: next}, sampleReply(rkey.RequestID), longTTL)
				switch {
				case err == nil:
					wins[target].Add(1)
					winner[target].Store(rkey.RequestID)
					return
				case errors.Is(err, store.ErrConflict):
					conflicts.Add(1)
				default:
					fail("CommitSuccess: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	st.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	raceCheck(t, s, okey, wins, winner)
	t.Logf("%d commits lost the race with ErrConflict", conflicts.Load())
}

func testRaceClaim(t *testing.T, s store.Backend, ids *idSource) {
	const workers = 50
	key := ids.request()
	ctx := raceCtx(t)
	var counts [maxClaimStatus + 1]atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			<-start
			res, err := s.Claim(ctx, key, bodyA, token(), longLease)
			if err != nil {
				errs <- err
				return
			}
			if res.Status < store.Claimed || res.Status > store.Mismatch {
				errs <- fmt.Errorf("Claim returned %s", res.Status)
				return
			}
			counts[res.Status].Add(1)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := counts[store.Claimed].Load(); n != 1 {
		t.Errorf("%d of %d concurrent claims won, want exactly 1", n, workers)
	}
	if n := counts[store.InFlight].Load(); n != workers-1 {
		t.Errorf("%d of %d concurrent claims saw InFlight, want %d", n, workers, workers-1)
	}
}

// maxClaimStatus is the largest ClaimStatus, for tables indexed by status.
const maxClaimStatus = store.Mismatch

// --- Context ---

// testEndedContext: an operation called with a context that has already
// ended fails at once and does nothing. (Claim and LockOrder have their
// own subtests.)
func testEndedContext(t *testing.T, s store.Backend, ids *idSource) {
	okey, rkey := ids.order(), ids.request()
	tok := mustClaim(t, s, rkey, bodyA, longLease)
	unlock := mustLock(t, s, okey, longLease)
	for name, op := range map[string]func(ctx context.Context) error{
		"Release": func(ctx context.Context) error { return s.Release(ctx, rkey, tok) },
		"Finish":  func(ctx context.Context) error { return s.Finish(ctx, rkey, tok, sampleReply("late"), longTTL) },
		"CommitSuccess": func(ctx context.Context) error {
			return s.CommitSuccess(ctx, okey, nil, sampleOrder("A", 1, rkey.RequestID), rkey, tok, sampleReply("late"), longTTL)
		},
		"UnlockOrder": func(ctx context.Context) error { return s.UnlockOrder(ctx, okey, tok) },
		"GetOrder": func(ctx context.Context) error {
			_, err := s.GetOrder(ctx, okey)
			return err
		},
		"GetRequest": func(ctx context.Context) error {
			_, err := s.GetRequest(ctx, rkey)
			return err
		},
	} {
		began := time.Now()
		if err := op(endedContext()); err == nil {
			t.Errorf("%s with an ended context succeeded, want an error", name)
		}
		if took := time.Since(began); took > patience/2 {
			t.Errorf("%s with an ended context took %v", name, took)
		}
	}
	// Nothing happened: the claim and the lock are still held, and no
	// order was written.
	commitRejected(t, s, okey, nil, rkey, "")
	if !lockHeld(t, s, okey, 100*time.Millisecond) {
		t.Error("UnlockOrder with an ended context released the lock")
	}
	unlock()
	if err := s.Finish(ctxFor(t), rkey, tok, sampleReply("f"), longTTL); err != nil {
		t.Errorf("the claim is no longer its owner's: Finish: %v", err)
	}
}

// testShortDeadline: waits end with the context's deadline, not later. The
// only wait a healthy backend has is for a held order lock.
func testShortDeadline(t *testing.T, s store.Backend, ids *idSource) {
	key := ids.order()
	defer mustLock(t, s, key, longLease)()
	const deadline = 150 * time.Millisecond
	// began is taken before the deadline is set: the other way round, a
	// pause between the two (a loaded machine) made the wait look shorter
	// than the deadline.
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	err := s.LockOrder(ctx, key, token(), longLease)
	if !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("LockOrder on a held lock: %v, want ErrLockTimeout", err)
	}
	if took := time.Since(began); took < deadline || took > deadline+time.Second {
		t.Errorf("LockOrder returned after %v with a %v deadline", took, deadline)
	}
}

// --- store.Store: the claim and the lock as values ---

// newStore wraps s as the handler uses it; its background work is waited
// for when the subtest ends.
func newStore(t *testing.T, s store.Backend) *store.Store {
	st := store.New(s, store.Options{CleanupFailed: func(op string, err error) {
		t.Errorf("background %s failed: %v", op, err)
	}})
	t.Cleanup(st.Wait)
	return st
}

func mustClaimValue(t *testing.T, st *store.Store, key store.RequestKey, hash store.BodyHash) *store.Claim {
	t.Helper()
	c, err := st.Claim(ctxFor(t), key, hash, longLease)
	if err != nil {
		t.Fatalf("Claim(%v): %v", key, err)
	}
	if c.Status != store.Claimed {
		t.Fatalf("Claim(%v) = %s, want Claimed", key, c.Status)
	}
	return c
}

func testClaimValueFinish(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	key := ids.request()
	c := mustClaimValue(t, st, key, bodyA)
	want := sampleReply("finish")
	if err := c.Finish(ctxFor(t), want, longTTL); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	c.Release() // what a deferred Release does after Finish: nothing
	st.Wait()
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}
	// Spent: it cannot be finished or committed again.
	if err := c.Finish(ctxFor(t), sampleReply("again"), longTTL); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("second Finish: %v, want ErrNotHeld", err)
	}
	if err := c.Commit(ctxFor(t), store.OrderChange{Key: ids.order(), Next: sampleOrder("A", 1, key.RequestID)}, want, longTTL); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("Commit after Finish: %v, want ErrNotHeld", err)
	}
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Errorf("after the refused calls: %s", d)
	}
}

func testClaimValueCommit(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.order(), ids.request()
	c := mustClaimValue(t, st, key, bodyA)
	next := sampleOrder("A", 1, key.RequestID)
	want := sampleReply("commit")
	if err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Next: next}, want, longTTL); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	c.Release()
	st.Wait()
	if d := orderDiff(mustGetOrder(t, s, okey), next); d != "" {
		t.Error(d)
	}
	if d := replyDiff(wantClaim(t, s, key, bodyA, store.Done).Reply, want); d != "" {
		t.Error(d)
	}
	if err := c.Finish(ctxFor(t), sampleReply("late"), longTTL); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("Finish after Commit: %v, want ErrNotHeld", err)
	}
}

func testClaimValueRelease(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	key := ids.request()
	c := mustClaimValue(t, st, key, bodyA)
	c.Release()
	c.Release()
	st.Wait()
	if rec := mustGetRequest(t, s, key); rec != nil {
		t.Fatalf("after Release the request has a record: %+v", rec)
	}
	if err := c.Finish(ctxFor(t), sampleReply("late"), longTTL); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("Finish after Release: %v, want ErrNotHeld", err)
	}
	// Processed afresh, with any body.
	other := mustClaimValue(t, st, key, bodyB)
	var nilClaim *store.Claim
	nilClaim.Release() // a nil claim (Claim failed) is safe to release
	if err := other.Finish(ctxFor(t), sampleReply("b"), longTTL); err != nil {
		t.Fatalf("Finish by the new claim: %v", err)
	}
}

// testClaimValueFailedFinish: "storing an F fails, so the caller gets U":
// the claim is still held after the failed Finish, and the deferred
// Release gives it up, so that a retry is processed afresh.
func testClaimValueFailedFinish(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	key := ids.request()
	c := mustClaimValue(t, st, key, bodyA)
	if err := c.Finish(endedContext(), sampleReply("f"), longTTL); err == nil {
		t.Fatal("Finish with an ended context succeeded")
	}
	wantClaim(t, s, key, bodyA, store.InFlight)
	c.Release()
	st.Wait()
	mustClaimValue(t, st, key, bodyA).Release()
}

// testClaimValueConflict: a commit that lost the race leaves the claim held
// until it is released.
func testClaimValueConflict(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.order(), ids.request()
	stale := sampleOrder("X", 1, "nobody")
	c := mustClaimValue(t, st, key, bodyA)
	err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Prev: &stale, Next: sampleOrder("A", 2, key.RequestID)}, sampleReply("c"), longTTL)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Commit over a stale prev: %v, want ErrConflict", err)
	}
	wantClaim(t, s, key, bodyA, store.InFlight)
	c.Release()
	st.Wait()
	if rec := mustGetRequest(t, s, key); rec != nil {
		t.Errorf("after Release the request has a record: %+v", rec)
	}
}

// testClaimValueNotClaimed: a claim that found another's claim or a stored
// reply holds nothing; releasing it must not free what it found.
func testClaimValueNotClaimed(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	key := ids.request()
	owner := mustClaimValue(t, st, key, bodyA)
	for _, hash := range []store.BodyHash{bodyA, bodyB} {
		c, err := st.Claim(ctxFor(t), key, hash, longLease)
		if err != nil || c.Status != store.InFlight {
			t.Fatalf("Claim of a claimed key = %v, %v; want InFlight", c, err)
		}
		if err := c.Finish(ctxFor(t), sampleReply("x"), longTTL); !errors.Is(err, store.ErrNotHeld) {
			t.Errorf("Finish of an InFlight claim: %v, want ErrNotHeld", err)
		}
		c.Release()
	}
	st.Wait()
	wantClaim(t, s, key, bodyA, store.InFlight)
	want := sampleReply("owner")
	if err := owner.Finish(ctxFor(t), want, longTTL); err != nil {
		t.Fatalf("the owner's Finish: %v", err)
	}
	c, err := st.Claim(ctxFor(t), key, bodyA, longLease)
	if err != nil || c.Status != store.Done {
		t.Fatalf("Claim of a finished key = %v, %v; want Done", c, err)
	}
	if d := replyDiff(c.Reply, want); d != "" {
		t.Error(d)
	}
	c.Release()
	c, err = st.Claim(ctxFor(t), key, bodyB, longLease)
	if err != nil || c.Status != store.Mismatch {
		t.Fatalf("Claim with another body of a finished key = %v, %v; want Mismatch", c, err)
	}
}

// testClaimValueEndedContext: a Claim that fails leaves nothing behind.
func testClaimValueEndedContext(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	key := ids.request()
	if c, err := st.Claim(endedContext(), key, bodyA, longLease); err == nil {
		t.Fatalf("Claim with an ended context = %v, want an error", c.Status)
	}
	st.Wait()
	mustClaim(t, s, key, bodyA, longLease)
}

// stallingBackend is the backend under test whose final writes
// (CommitSuccess, Finish, and their unlocking forms where the backend has
// them) first wait for gate, ignoring their context: a disk hung under an
// fsync. The write then goes on, or fails with fail.
type stallingBackend struct {
	store.Backend
	gate chan struct{}
	fail error
}

func (b *stallingBackend) stall(ctx context.Context) (context.Context, error) {
	<-b.gate
	// The write was under way when it stalled: its deadline no longer
	// stops it.
	return context.WithoutCancel(ctx), b.fail
}

func (b *stallingBackend) CommitSuccess(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	ctx, err := b.stall(ctx)
	if err != nil {
		return err
	}
	return b.Backend.CommitSuccess(ctx, okey, prev, next, rkey, token, reply, ttl)
}

func (b *stallingBackend) Finish(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration) error {
	ctx, err := b.stall(ctx)
	if err != nil {
		return err
	}
	return b.Backend.Finish(ctx, key, token, reply, ttl)
}

func (b *stallingBackend) FinishUnlock(ctx context.Context, key store.RequestKey, token string, reply store.Reply, ttl time.Duration, okey store.OrderKey, lockToken string) error {
	uw, ok := b.Backend.(store.UnlockingWriter)
	if !ok {
		return errors.ErrUnsupported
	}
	ctx, err := b.stall(ctx)
	if err != nil {
		return err
	}
	return uw.FinishUnlock(ctx, key, token, reply, ttl, okey, lockToken)
}

func (b *stallingBackend) CommitSuccessUnlock(ctx context.Context, okey store.OrderKey, prev *store.Order, next store.Order, rkey store.RequestKey, token string, reply store.Reply, ttl time.Duration, lockToken string) error {
	uw, ok := b.Backend.(store.UnlockingWriter)
	if !ok {
		return errors.ErrUnsupported
	}
	ctx, err := b.stall(ctx)
	if err != nil {
		return err
	}
	return uw.CommitSuccessUnlock(ctx, okey, prev, next, rkey, token, reply, ttl, lockToken)
}

// testClaimValueStalledWrite: Commit and Finish return by their deadline
// even when the backend does not. The write goes on in the background:
// meanwhile the claim is spent for its holder (Release does nothing) and
// the order a ClaimOrder locked stays locked; when the write ends the
// order is unlocked, and the claim released if the write failed.
func testClaimValueStalledWrite(t *testing.T, s store.Backend, ids *idSource) {
	const (
		noLock     = "without a lock"
		claimOrder = "ClaimOrder"
		lockOrder  = "Claim.LockOrder"
	)
	for _, tc := range []struct {
		name   string
		commit bool
		lock   string // how the claim holds the order's lock
		fail   error
	}{
		{"commit lands", true, claimOrder, nil},
		{"commit fails", true, claimOrder, errors.New("disk gone")},
		{"finish lands", false, claimOrder, nil},
		{"finish fails", false, claimOrder, errors.New("disk gone")},
		{"commit lands", true, lockOrder, nil},
		{"commit fails", true, lockOrder, errors.New("disk gone")},
		{"finish lands", false, noLock, nil},
		{"finish fails", false, noLock, errors.New("disk gone")},
	} {
		t.Run(tc.name+", "+tc.lock, func(t *testing.T) {
			b := &stallingBackend{Backend: s, gate: make(chan struct{}), fail: tc.fail}
			st := newStore(t, b)
			var once sync.Once
			open := func() { once.Do(func() { close(b.gate) }) }
			t.Cleanup(open) // before st.Wait, which waits for the write
			okey, key := ids.orderRequest()
			var c *store.Claim
			switch tc.lock {
			case claimOrder:
				c = mustClaimOrder(t, st, key, bodyA, okey)
			case lockOrder:
				c = mustClaimValue(t, st, key, bodyA)
				if err := c.LockOrder(ctxFor(t), okey, longLease); err != nil {
					t.Fatalf("Claim.LockOrder: %v", err)
				}
			default:
				c = mustClaimValue(t, st, key, bodyA)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			began := time.Now()
			var err error
			if tc.commit {
				err = c.Commit(ctx, store.OrderChange{Key: okey, Next: sampleOrder("A", 1, key.RequestID)}, sampleReply("c"), longTTL)
			} else {
				err = c.Finish(ctx, sampleReply("f"), longTTL)
			}
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > patience {
				t.Fatalf("stalled write: %v after %s, want DeadlineExceeded by the deadline", err, time.Since(began))
			}
			c.Release() // does nothing: the write owns the claim and the lock
			wantClaim(t, s, key, bodyB, store.InFlight)
			if tc.lock != noLock && !lockHeld(t, s, okey, 100*time.Millisecond) {
				t.Error("the order was unlocked while the write may still land")
			}

			open()
			st.Wait()
			if lockHeld(t, s, okey, patience) {
				t.Error("the order stayed locked after the write ended")
			}
			rec := mustGetRequest(t, s, key)
			switch {
			case tc.fail == nil && (rec == nil || !rec.Done):
				t.Errorf("the write landed, but the request's record is %+v", rec)
			case tc.fail != nil && rec != nil:
				t.Errorf("the write failed, but the request has a record: %+v", rec)
			}
			if tc.fail != nil {
				mustClaimValue(t, st, key, bodyA).Release()
			}
		})
	}
}

// testClaimValueLockOrder: a claim takes its order's lock and gives it up
// with itself, as one made by ClaimOrder: Commit and Release unlock; a
// lock it could not take leaves the claim held and the order free.
func testClaimValueLockOrder(t *testing.T, s store.Backend, ids *idSource) {
	st := newStore(t, s)
	okey, key := ids.orderRequest()
	c := mustClaimValue(t, st, key, bodyA)
	if err := c.LockOrder(ctxFor(t), okey, longLease); err != nil {
		t.Fatalf("Claim.LockOrder: %v", err)
	}
	if err := c.LockOrder(ctxFor(t), okey, longLease); err == nil {
		t.Error("a second Claim.LockOrder succeeded")
	}
	if !lockHeld(t, s, okey, 100*time.Millisecond) {
		t.Fatal("the order is not locked")
	}
	next := sampleOrder("A", 1, key.RequestID)
	if err := c.Commit(ctxFor(t), store.OrderChange{Key: okey, Next: next}, sampleReply("c"), longTTL); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Commit")
	}
	if err := c.LockOrder(ctxFor(t), okey, longLease); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("Claim.LockOrder of a spent claim: %v, want ErrNotHeld", err)
	}

	// Release unlocks.
	key2 := store.RequestKey{ClientID: key.ClientID, RequestID: "req-2"}
	c = mustClaimValue(t, st, key2, bodyA)
	if err := c.LockOrder(ctxFor(t), okey, longLease); err != nil {
		t.Fatalf("Claim.LockOrder: %v", err)
	}
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("the order stayed locked after Release")
	}

	// A lock held by another: ErrLockTimeout, the claim still held, no
	// lock taken.
	unlock := mustLock(t, s, okey, longLease)
	key3 := store.RequestKey{ClientID: key.ClientID, RequestID: "req-3"}
	c = mustClaimValue(t, st, key3, bodyA)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.LockOrder(ctx, okey, longLease); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("Claim.LockOrder of a locked order: %v, want ErrLockTimeout", err)
	}
	unlock()
	c.Release()
	st.Wait()
	if lockHeld(t, s, okey, patience) {
		t.Fatal("a failed Claim.LockOrder left the order locked")
	}
	mustClaimValue(t, st, key3, bodyA).Release()
}

// testNonPositiveDurations: a lease or TTL that is not positive is refused
// (store.CheckDuration), with a store.Error naming the operation, before
// anything is done.
func testNonPositiveDurations(t *testing.T, s store.Backend, ids *idSource) {
	ctx := ctxFor(t)
	rkey, okey := ids.request(), ids.order()
	tok := mustClaim(t, s, rkey, bodyA, longLease)
	for name, err := range map[string]error{
		"Claim": func() error {
			_, err := s.Claim(ctx, ids.request(), bodyA, token(), 0)
			return err
		}(),
		"Finish":        s.Finish(ctx, rkey, tok, sampleReply("f"), 0),
		"LockOrder":     s.LockOrder(ctx, okey, token(), -time.Second),
		"CommitSuccess": s.CommitSuccess(ctx, okey, nil, sampleOrder("A", 1, rkey.RequestID), rkey, tok, sampleReply("c"), -1),
	} {
		var se *store.Error
		if !errors.As(err, &se) || se.Op == "" || se.Backend == "" {
			t.Errorf("%s with a non-positive duration: %v, want a *store.Error naming the operation", name, err)
		}
	}
	commitRejected(t, s, okey, nil, rkey, tok)
	mustLock(t, s, okey, longLease)()
}
