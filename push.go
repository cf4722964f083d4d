package ordersync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/outbox"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(PushHandler{})
}

// PushHandler is the egress handler alipay_order_push: a merchant's own
// (legacy) system POSTs a plain, unsigned order sync to it; it validates
// the order as the ingress handler does, queues it durably in the store's
// outbox, signs it with the merchant's key and sends it to AlipayHK
// through the reverse_proxy that follows it in its route, verifies
// AlipayHK's signed reply, retries what is retryable in order per order,
// and tells the legacy system the outcome (README, "Egress: sending your
// order syncs to AlipayHK"). The delivery itself is package
// internal/outbox; this is its Caddy glue.
//
// Its JSON fields mirror the Caddyfile sub-directives one to one.
type PushHandler struct {
	// ClientID is ours, as registered with AlipayHK.
	ClientID string `json:"client_id,omitempty"`
	// PrivateKeyFile is the merchant's private key that signs every
	// attempt: PEM (PKCS#8 or PKCS#1) or base64 PKCS#8.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// PrivateKey is the same inline; {env.*} and {file.*} are resolved.
	PrivateKey string `json:"private_key,omitempty"`
	// KeyVersion is announced in every Signature (default "1").
	KeyVersion string `json:"key_version,omitempty"`
	// AlipayPublicKeyFile is AlipayHK's public key: every reply must
	// verify with it. PEM (SPKI or PKCS#1) or base64 SPKI.
	AlipayPublicKeyFile string `json:"alipay_public_key_file,omitempty"`
	// AlipayPublicKey is the same inline; {env.*} and {file.*} are
	// resolved.
	AlipayPublicKey string `json:"alipay_public_key,omitempty"`
	// Path is the request path of every attempt, and part of what is
	// signed (default /api/open/alipay/v1/merchant/order/sync).
	Path string `json:"path,omitempty"`

	// Scenarios enables and configures state machines, exactly as for
	// alipay_order_sync. gift_card is enabled even when not listed.
	Scenarios []ScenarioConfig `json:"scenarios,omitempty"`

	// StoreRaw is the store module that holds the outbox and the lanes'
	// accepted states (default bbolt in Caddy's data directory).
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.alipay_order_sync.stores inline_key=backend"`

	// Wait is how long the legacy caller waits for AlipayHK's final answer
	// before it gets 202 with the entry (default 10s when absent). 0 answers
	// 202 as soon as the order is queued, as request_time_window 0 turns
	// its check off; hence a pointer, to tell 0 from absent.
	Wait *caddy.Duration `json:"wait,omitempty"`
	// AttemptTimeout bounds one HTTP attempt to AlipayHK (default 10s).
	AttemptTimeout caddy.Duration `json:"attempt_timeout,omitempty"`
	// RetryInitial and RetryMax bound the exponential backoff with full
	// jitter between attempts (defaults 1s and 5m).
	RetryInitial caddy.Duration `json:"retry_initial,omitempty"`
	RetryMax     caddy.Duration `json:"retry_max,omitempty"`
	// MaxAge is how long an entry is retried before it is expired, and how
	// long a final entry is kept for lookups (default 24h).
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Callback, when set, receives every final state, signed per Standard
	// Webhooks.
	Callback *PushCallback `json:"callback,omitempty"`

	// MaxBodySize is the largest body accepted from the legacy system, in
	// bytes (default 64KiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	ctx     caddy.Context
	cfg     outbox.Config
	backend store.OutboxBackend
	// poolKey names the shared runner: the store and the client_id.
	poolKey string
	logger  *zap.Logger
	metrics *pushMetrics

	// live is this generation's running state; nil before Provision.
	live *pushLive
}

// pushLive is the running state of one provisioned handler.
type pushLive struct {
	// mu guards the start of this generation: by the app's Start, or by
	// the first request if it comes first (apps start in no set order).
	mu      sync.Mutex
	started bool
	cleaned bool
	shared  *sharedRunner
	gen     *pushGeneration
	// svc answers requests once started.
	svc atomic.Pointer[outbox.Service]
}

// PushCallback is where final states are POSTed.
type PushCallback struct {
	// URL is an absolute http or https URL of the legacy system.
	URL string `json:"url,omitempty"`
	// Secret is the Standard Webhooks signing secret: base64 after an
	// optional whsec_ prefix. {env.*} and {file.*} are resolved.
	Secret string `json:"secret,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (PushHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_order_push",
		New: func() caddy.Module { return new(PushHandler) },
	}
}

// loadSecret reads a key (or secret) given inline, with {env.*} and
// {file.*} resolved, or from a file. The errors name the option, and the
// file for a file, never the value.
func loadSecret(repl *caddy.Replacer, inlineOpt, inline, fileOpt, file string) ([]byte, string, error) {
	switch {
	case inline != "" && file != "":
		return nil, "", fmt.Errorf("give %s or %s, not both", inlineOpt, fileOpt)
	case inline != "":
		v, err := repl.ReplaceOrErr(inline, true, true)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v", inlineOpt, err)
		}
		return []byte(v), inlineOpt, nil
	case file != "":
		path := repl.ReplaceKnown(file, "")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v", fileOpt, err)
		}
		return b, fileOpt + " " + path, nil
	}
	return nil, "", fmt.Errorf("%s is required", fileOpt)
}

// Provision loads the keys, the scenarios and the store module, and checks
// the configuration as a whole. It starts nothing: delivery starts with
// the alipay_order_sync app (never during caddy validate), or with the
// first request if that comes first.
func (p *PushHandler) Provision(ctx caddy.Context) error {
	p.ctx = ctx
	p.logger = ctx.Logger()
	p.live = &pushLive{}
	repl := caddy.NewReplacer()

	signer, alipayKey, err := p.provisionKeys(repl)
	if err != nil {
		return err
	}
	catalog, err := scenario.New(p.Scenarios)
	if err != nil {
		return err
	}
	p.cfg = outbox.Config{
		ClientID:       p.ClientID,
		KeyVersion:     p.KeyVersion,
		Signer:         signer,
		AlipayKey:      alipayKey,
		Path:           p.Path,
		Wait:           time.Duration(p.wait()),
		AttemptTimeout: time.Duration(p.AttemptTimeout),
		RetryInitial:   time.Duration(p.RetryInitial),
		RetryMax:       time.Duration(p.RetryMax),
		MaxAge:         time.Duration(p.MaxAge),
		MaxBodySize:    p.MaxBodySize,
		Scenarios:      catalog,
	}
	if p.Callback != nil {
		if p.Callback.Secret == "" {
			return fmt.Errorf("callback: secret is required (Standard Webhooks signing)")
		}
		secret, err := repl.ReplaceOrErr(p.Callback.Secret, true, true)
		if err != nil {
			return fmt.Errorf("callback secret: %v", err)
		}
		key, err := outbox.ParseWebhookSecret(secret)
		if err != nil {
			return err
		}
		p.cfg.Callback = &outbox.Callback{URL: p.Callback.URL, Secret: key}
	}
	if err := p.cfg.Check(); err != nil {
		return err
	}
	if p.cfg.MaxBodySize == 0 {
		p.cfg.MaxBodySize = outbox.DefaultMaxBodySize
	}

	m, err := registerPushMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	p.metrics = m
	if err := p.provisionStore(ctx); err != nil {
		return err
	}
	if err := addDelivery(ctx, p.poolKey, p.start); err != nil {
		return fmt.Errorf("client_id %s: %v", p.cfg.ClientID, err)
	}
	return nil
}

// provisionKeys loads the merchant's signing key and AlipayHK's public key.
func (p *PushHandler) provisionKeys(repl *caddy.Replacer) (*signature.Signer, *signature.PublicKey, error) {
	data, what, err := loadSecret(repl, "private_key", p.PrivateKey, "private_key_file", p.PrivateKeyFile)
	if err != nil {
		return nil, nil, err
	}
	// Loaded once, here (into OpenSSL's memory with -tags openssl). Like
	// the ingress signer it is not closed in Cleanup: the shared runner may
	// still sign an attempt with it until the next generation takes over.
	signer, err := signature.LoadSigner(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", what, err)
	}
	data, what, err = loadSecret(repl, "alipay_public_key", p.AlipayPublicKey, "alipay_public_key_file", p.AlipayPublicKeyFile)
	if err != nil {
		return nil, nil, err
	}
	key, err := signature.LoadPublicKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", what, err)
	}
	return signer, key, nil
}

// provisionStore loads the store module, which must hold an outbox.
func (p *PushHandler) provisionStore(ctx caddy.Context) error {
	// Delivery starts after the store opens, when Caddy starts the config.
	mod, err := loadStore(ctx, p, &p.StoreRaw)
	if err != nil {
		return err
	}
	backend, ok := mod.(store.OutboxBackend)
	if !ok {
		return fmt.Errorf("store: module %T has no outbox", mod)
	}
	p.backend = backend
	// The store's identity: the same file or Redis keyspace gives the same
	// key whatever the spelling of the config.
	id := string(p.StoreRaw)
	if s, ok := mod.(interface{ Identity() string }); ok {
		id = s.Identity()
	}
	p.poolKey = id + "\x00" + p.cfg.ClientID
	return nil
}

// start makes this generation live, once: it finds the handlers after
// this one in the http app's routes (the sender), joins the runner of its
// store and client_id (making and starting it if this is the first
// generation to use it), and builds the Service that answers requests.
// The alipay_order_sync app calls it on Start; a request that arrives
// before calls it too.
func (p *PushHandler) start() error {
	l := p.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return nil
	}
	if l.cleaned {
		return fmt.Errorf("this configuration was unloaded")
	}
	appVal, err := p.ctx.App("http")
	if err != nil {
		return err
	}
	httpApp := appVal.(*caddyhttp.App)
	chain, srv, err := routeAfter(httpApp, p)
	if err != nil {
		return err
	}
	gen := &pushGeneration{
		config:  httpApp,
		cfg:     p.cfg,
		sender:  newRouteSender(chain, srv),
		backend: p.backend,
	}
	var fresh *sharedRunner
	val, _, err := pushRunners.LoadOrNew(p.poolKey, func() (caddy.Destructor, error) {
		sb := &switchBackend{b: p.backend}
		r, err := outbox.NewRunner(store.NewOutbox(sb), p.cfg, gen.sender, outbox.RunnerOptions{
			Observer: newPushObserver(p.metrics),
		})
		if err != nil {
			return nil, err
		}
		clientID := p.cfg.ClientID
		fresh = &sharedRunner{runner: r, backend: sb, stop: func() { p.metrics.forget(clientID) }}
		return fresh, nil
	})
	if err != nil {
		return err
	}
	shared := val.(*sharedRunner)
	if err := shared.join(gen); err != nil {
		_, _ = pushRunners.Delete(p.poolKey)
		return err
	}
	svc, err := outbox.NewService(p.cfg, shared.runner)
	if err != nil {
		shared.leave(gen)
		_, _ = pushRunners.Delete(p.poolKey)
		return err
	}
	if fresh != nil {
		addActiveRunner(fresh)
		fresh.runner.Start()
		path := p.cfg.Path
		if path == "" {
			path = outbox.DefaultPath
		}
		p.logger.Info("egress delivery started", zap.String("client_id", p.cfg.ClientID), zap.String("path", path))
	}
	l.shared, l.gen, l.started = shared, gen, true
	l.svc.Store(svc)
	return nil
}

// ServeHTTP answers the legacy system: GET looks an entry up by
// ?requestId=, every other method is a submission (Submit refuses what is
// not a POST of JSON). The answer is always written here; the next handler
// is never called for a request (it is the sender's, for attempts).
func (p *PushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	began := time.Now()
	svc := p.live.svc.Load()
	if svc == nil {
		if err := p.start(); err != nil {
			p.logger.Error("egress cannot start", zap.Error(err))
		}
		svc = p.live.svc.Load()
	}
	var resp outbox.Response
	switch {
	case svc == nil:
		// This generation could not start (its log says why).
		resp = outbox.Unavailable("service: egress delivery is not running; retry later")
	case r.Method == http.MethodGet:
		resp = svc.Lookup(r.Context(), r.URL.Query().Get("requestId"))
	default:
		// One byte over the limit is enough for Submit to refuse it; the
		// rest is never read.
		body, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxBodySize+1))
		resp = svc.Submit(r.Context(), outbox.SubmitRequest{Method: r.Method, Header: r.Header, Body: body, BodyErr: err})
	}
	h := w.Header()
	for name, values := range resp.Header {
		h[name] = values
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
	p.observe(r, resp, time.Since(began))
	return nil
}

// Cleanup lets go of the shared runner: the last generation to do so stops
// it. It is safe on a handler whose Provision failed or that never
// started.
func (p *PushHandler) Cleanup() error {
	l := p.live
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleaned = true
	if !l.started {
		return nil
	}
	l.started = false
	l.shared.leave(l.gen)
	_, err := pushRunners.Delete(p.poolKey)
	return err
}

// wait is Wait as outbox.Config takes it: 0 when absent (its default),
// outbox.NoWait for 0.
func (p *PushHandler) wait() caddy.Duration {
	switch {
	case p.Wait == nil:
		return 0
	case *p.Wait == 0:
		return caddy.Duration(outbox.NoWait)
	}
	return *p.Wait
}

// Validate reports what Provision could not default.
func (p *PushHandler) Validate() error {
	if p.MaxBodySize < 0 {
		return errors.New("max_body_size must be positive")
	}
	// The raw wait, not p.wait(): wait 0 is outbox.NoWait, a negative
	// value standing for "no wait", which only a negative wait given in
	// JSON must fail.
	var wait caddy.Duration
	if p.Wait != nil {
		wait = *p.Wait
	}
	for _, d := range []struct {
		name string
		v    caddy.Duration
	}{{"wait", wait}, {"attempt_timeout", p.AttemptTimeout}, {"retry_initial", p.RetryInitial}, {"retry_max", p.RetryMax}, {"max_age", p.MaxAge}} {
		if d.v < 0 {
			return fmt.Errorf("%s: must not be negative", d.name)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PushHandler)(nil)
	_ caddy.Validator             = (*PushHandler)(nil)
	_ caddy.CleanerUpper          = (*PushHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*PushHandler)(nil)
)
