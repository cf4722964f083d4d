package ordersync

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/internal/outbox"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
	"github.com/caddy-alipay/ordersync/store/bboltstore"
)

// fakeAlipayHK is a Sender that answers every attempt with a verified S,
// signed with the repository's demo "gateway" key, and records which
// generation's sender was used.
type fakeAlipayHK struct {
	name   string
	signer *signature.Signer
	mu     *sync.Mutex
	got    *[]string // "<sender name> <requestId>"
}

func (f fakeAlipayHK) Send(_ context.Context, a outbox.Attempt) (outbox.Reply, error) {
	f.mu.Lock()
	*f.got = append(*f.got, f.name+" "+a.RequestID)
	f.mu.Unlock()
	body := []byte(`{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"success"},"orderId":"o-` + a.RequestID + `"}`)
	rt := signature.FormatTime(time.Now())
	sig, err := f.signer.Sign(http.MethodPost, a.Path, a.ClientID, rt, body)
	if err != nil {
		return outbox.Reply{}, err
	}
	return outbox.Reply{Status: http.StatusOK, Body: body, Header: http.Header{
		"Response-Time": {rt},
		"Client-Id":     {a.ClientID},
		"Signature":     {signature.FormatHeader("1", sig)},
	}}, nil
}

func demoKey(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", "demo-keys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSharedRunnerFollowsTheLiveGeneration: the runner of one store and
// client_id delivers with the newest generation that joined it; a reload
// (old leaves) keeps the new one, and a generation that leaves while it is
// current (a reload whose new configuration failed to start) hands the
// runner back to the newest one still alive, never to one Caddy has thrown
// away.
func TestSharedRunnerFollowsTheLiveGeneration(t *testing.T) {
	db, err := bboltstore.Open(bboltstore.Options{Path: filepath.Join(t.TempDir(), "push.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	merchant, err := signature.LoadSigner(demoKey(t, "merchant-private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	gatewaySigner, err := signature.LoadSigner(demoKey(t, "gateway-private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := scenario.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := outbox.Config{
		ClientID: "C1", Signer: merchant, AlipayKey: gatewaySigner.Public(), Scenarios: catalog,
		Wait: 5 * time.Second, RetryInitial: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
	var mu sync.Mutex
	var got []string
	sender := func(name string) outbox.Sender {
		return fakeAlipayHK{name: name, signer: gatewaySigner, mu: &mu, got: &got}
	}

	sb := &switchBackend{b: db}
	old := &pushGeneration{config: "old", cfg: cfg, sender: sender("old"), backend: db}
	r, err := outbox.NewRunner(store.NewOutbox(sb), cfg, old.sender, outbox.RunnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shared := &sharedRunner{runner: r, backend: sb}
	if err := shared.join(old); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() { _ = shared.Destruct() })
	svc, err := outbox.NewService(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	post := func(id string) {
		t.Helper()
		body := `{"requestId":"` + id + `","merchantBizNo":"` + id + `","orderStatus":"TICKETED","userId":"2160220041431868",` +
			`"merchantBizType":"ALIPAY_COUPON","orderCreateTime":1740385506708,"orderModifyTime":1742977506708,` +
			`"tradeNo":"t","extInfo":{"benefit_issue_mode":"SALE","product_id":"p"}}`
		resp := svc.Submit(context.Background(), outbox.SubmitRequest{Method: http.MethodPost,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)})
		if resp.Status != http.StatusOK || resp.Header.Get(outbox.HeaderDecidedBy) != outbox.DecidedByAlipayHK {
			t.Fatalf("%s: HTTP %d %s", id, resp.Status, resp.Body)
		}
	}

	// A second handler of the same configuration is refused.
	if err := shared.join(&pushGeneration{config: "old", cfg: cfg, sender: sender("dup"), backend: db}); err != errDuplicateDelivery {
		t.Fatalf("a second handler of one configuration: %v", err)
	}
	post("r1")

	// A reload that fails to start: the new generation joins, then leaves.
	failed := &pushGeneration{config: "failed", cfg: cfg, sender: sender("failed"), backend: db}
	if err := shared.join(failed); err != nil {
		t.Fatal(err)
	}
	shared.leave(failed)
	post("r2")

	// A reload that succeeds: the new one joins, the old one leaves.
	next := &pushGeneration{config: "next", cfg: cfg, sender: sender("next"), backend: db}
	if err := shared.join(next); err != nil {
		t.Fatal(err)
	}
	shared.leave(old)
	post("r3")

	mu.Lock()
	defer mu.Unlock()
	want := []string{"old r1", "old r2", "next r3"}
	if len(got) != len(want) {
		t.Fatalf("attempts %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("attempts %q, want %q", got, want)
		}
	}
}
