// Package ordersync is a Caddy HTTP handler that serves the AlipayHK
// order-sync API (POST /api/open/alipay/v1/merchant/order/sync) at the
// edge. Before anything reaches the issuing backend it verifies the caller's
// RSA signature, validates the body against the scenario's JSON Schema,
// refuses replays and illegal order-status changes, forwards a normalized
// request to the next handler (normally reverse_proxy), and turns whatever
// comes back into the signed AlipayHK result envelope.
package ordersync

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the options a user may leave out.
const (
	DefaultMaxBodySize       = orderflow.DefaultMaxBodySize
	DefaultRequestTimeWindow = 5 * time.Minute
	DefaultIdempotencyTTL    = 72 * time.Hour
	DefaultUpstreamTimeout   = 10 * time.Second
	DefaultClaimLease        = 30 * time.Second
	defaultStoreBackend      = "bbolt"
)

// storeNamespace is the Caddy namespace of the state store modules, which
// the ingress and the egress handler share.
const storeNamespace = "http.alipay_order_sync.stores"

// claimLeaseMargin is how much longer than upstream_timeout a claim and an
// order lock must last at least: the answer is out by upstream_timeout +
// orderflow.TimeBoundGrace, and the rest covers a store write the time bound cut off
// that lands late, and clock drift between instances.
const claimLeaseMargin = 5 * time.Second

// Handler enforces the AlipayHK order-sync contract in front of an issuing
// backend. Its JSON fields mirror the Caddyfile sub-directives one to one.
type Handler struct {
	// Clients are the callers allowed in, with their public keys.
	Clients []ClientConfig `json:"clients,omitempty"`

	// InsecureSkipVerify turns signature verification off. Development only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`

	// RequestTimeWindow bounds how far Request-Time may be from now, in the
	// past or the future. Unset means 5m; 0 turns the check off.
	RequestTimeWindow *caddy.Duration `json:"request_time_window,omitempty"`

	// SignResponses makes every envelope carry a Signature header.
	SignResponses *SignConfig `json:"sign_responses,omitempty"`

	// Scenarios enables and configures state machines. gift_card is
	// enabled even when not listed.
	Scenarios []ScenarioConfig `json:"scenarios,omitempty"`

	// MaxBodySize is the largest request body accepted, in bytes
	// (default 64KiB).
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// StoreRaw is the state store module (default bbolt in Caddy's data
	// directory).
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.alipay_order_sync.stores inline_key=backend"`

	// IdempotencyTTL is how long final answers are kept for replay
	// (default 72h).
	IdempotencyTTL caddy.Duration `json:"idempotency_ttl,omitempty"`

	// MapStatus overrides the mapping of upstream HTTP statuses to result
	// codes. Keys are a status ("409") or a class ("4xx", "5xx").
	MapStatus map[string]string `json:"map_status,omitempty"`

	// UpstreamTimeout bounds the whole upstream call (default 10s).
	UpstreamTimeout caddy.Duration `json:"upstream_timeout,omitempty"`

	// ClaimLease is how long an in-flight requestId (and an order lock) is
	// held before another attempt may take it over (default 30s).
	ClaimLease caddy.Duration `json:"claim_lease,omitempty"`

	// Offline answers every request with UN_SUPPORT_BUSINESS (maintenance).
	Offline bool `json:"offline,omitempty"`

	// flow answers the requests; flowConfig is what it was made of.
	flow       *orderflow.Flow
	flowConfig orderflow.Config
	// store is flowConfig.Store, for the admin API.
	store      *store.Store
	metrics    *metrics
	logger     *zap.Logger
	registered bool
}

// ClientConfig registers one caller (a Client-Id issued by AlipayHK).
type ClientConfig struct {
	// ID is the Client-Id header value.
	ID string `json:"id"`
	// PublicKeys maps a key version to a public key given inline (PEM or
	// base64 SPKI); {env.*} and {file.*} placeholders are resolved.
	PublicKeys map[string]string `json:"public_keys,omitempty"`
	// PublicKeyFiles maps a key version to a file holding the public key.
	PublicKeyFiles map[string]string `json:"public_key_files,omitempty"`
	// Merchants, when set, is the allow-list of merchantId values.
	Merchants []string `json:"merchants,omitempty"`
}

// SignConfig holds the key that signs our responses.
type SignConfig struct {
	// PrivateKeyFile is a PEM (PKCS#8 or PKCS#1) or base64 PKCS#8 file.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// PrivateKey is the same inline; {env.*} and {file.*} are resolved.
	PrivateKey string `json:"private_key,omitempty"`
	// KeyVersion is announced in the Signature header (default "1").
	KeyVersion string `json:"key_version,omitempty"`
}

// ScenarioConfig enables a built-in scenario or defines a custom one; see
// scenario.Config for its fields.
type ScenarioConfig = scenario.Config

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.alipay_order_sync",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, loads keys and schemas, compiles the state
// machines, loads the store (which opens when Caddy starts the config, see
// App) and makes the order flow of it all. Every mistake names the option
// at fault; Caddy prefixes the module's name.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()

	if h.MaxBodySize == 0 {
		h.MaxBodySize = DefaultMaxBodySize
	}
	if h.IdempotencyTTL == 0 {
		h.IdempotencyTTL = caddy.Duration(DefaultIdempotencyTTL)
	}
	if h.UpstreamTimeout == 0 {
		h.UpstreamTimeout = caddy.Duration(DefaultUpstreamTimeout)
	}
	if h.ClaimLease == 0 {
		// The lease must outlive the upstream call and the commit after
		// it, or a slow success could lose its claim to a retry.
		h.ClaimLease = caddy.Duration(max(DefaultClaimLease, time.Duration(h.UpstreamTimeout)+claimLeaseMargin+5*time.Second))
	}
	cfg := &h.flowConfig
	*cfg = orderflow.Config{
		InsecureSkipVerify: h.InsecureSkipVerify,
		TimeWindow:         DefaultRequestTimeWindow,
		MaxBodySize:        h.MaxBodySize,
		UpstreamTimeout:    time.Duration(h.UpstreamTimeout),
		ClaimLease:         time.Duration(h.ClaimLease),
		IdempotencyTTL:     time.Duration(h.IdempotencyTTL),
		Offline:            h.Offline,
	}
	if h.RequestTimeWindow != nil {
		cfg.TimeWindow = time.Duration(*h.RequestTimeWindow)
	}

	if err := h.provisionClients(repl); err != nil {
		return err
	}
	if h.InsecureSkipVerify {
		h.logger.Warn("insecure_skip_verify is on: request signatures are NOT verified; never use this in production")
	}
	if err := h.provisionSigner(repl); err != nil {
		return err
	}
	if s := cfg.Signer; s != nil {
		// Which signer a binary has is a build-time choice (-tags openssl);
		// say it once, so operators can check the build they deployed.
		h.logger.Info("signing replies", zap.String("signer", s.Key.Backend()), zap.String("key_version", s.KeyVersion))
	}
	catalog, err := scenario.New(h.Scenarios)
	if err != nil {
		return err
	}
	cfg.Scenarios = catalog
	if cfg.StatusMap, err = orderflow.NewStatusMap(h.MapStatus); err != nil {
		return err
	}

	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	h.metrics = m

	mod, err := loadStore(ctx, h, &h.StoreRaw)
	if err != nil {
		return err
	}
	backend, ok := mod.(store.Backend)
	if !ok {
		return fmt.Errorf("store: module %T is not a state store", mod)
	}
	logger := h.logger
	h.store = store.New(backend, store.Options{CleanupFailed: func(op string, err error) {
		// Nothing is lost: the claim or lock ends with its lease.
		logger.Warn("state store clean-up failed; the lease will end it", zap.String("operation", op), zap.Error(err))
	}})
	cfg.Store = h.store
	if h.flow, err = orderflow.New(*cfg); err != nil {
		return err
	}
	registerHandler(h)
	h.registered = true
	return nil
}

// provisionClients reads the clients' keys into the flow's config.
func (h *Handler) provisionClients(repl *caddy.Replacer) error {
	clients := make(map[string]*orderflow.Client, len(h.Clients))
	for i, cc := range h.Clients {
		if cc.ID == "" {
			return fmt.Errorf("client #%d: id is empty", i+1)
		}
		if _, dup := clients[cc.ID]; dup {
			return fmt.Errorf("client %s: listed twice", cc.ID)
		}
		c := &orderflow.Client{Keys: map[string]*signature.PublicKey{}}
		for version, value := range cc.PublicKeys {
			resolved, err := repl.ReplaceOrErr(value, true, true)
			if err != nil {
				return fmt.Errorf("client %s: public_key %s: %v", cc.ID, version, err)
			}
			key, err := signature.LoadPublicKey([]byte(resolved))
			if err != nil {
				return fmt.Errorf("client %s: public_key %s: %v", cc.ID, version, err)
			}
			if err := addKey(cc.ID, c, "public_key", version, key); err != nil {
				return err
			}
		}
		for version, path := range cc.PublicKeyFiles {
			path = repl.ReplaceKnown(path, "")
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("client %s: public_key_file %s: %v", cc.ID, version, err)
			}
			key, err := signature.LoadPublicKey(data)
			if err != nil {
				return fmt.Errorf("client %s: public_key_file %s %s: %v", cc.ID, version, path, err)
			}
			if err := addKey(cc.ID, c, "public_key_file", version, key); err != nil {
				return err
			}
		}
		if len(c.Keys) == 0 && !h.InsecureSkipVerify {
			return fmt.Errorf("client %s: no public_key or public_key_file", cc.ID)
		}
		if len(cc.Merchants) > 0 {
			c.Merchants = make(map[string]struct{}, len(cc.Merchants))
			for _, m := range cc.Merchants {
				c.Merchants[m] = struct{}{}
			}
		}
		clients[cc.ID] = c
	}
	h.flowConfig.Clients = clients
	return nil
}

func addKey(id string, c *orderflow.Client, option, version string, key *signature.PublicKey) error {
	if err := signature.CheckKeyVersion(version); err != nil {
		return fmt.Errorf("client %s: %s %q: %v", id, option, version, err)
	}
	if _, dup := c.Keys[version]; dup {
		return fmt.Errorf("client %s: key version %s given twice", id, version)
	}
	c.Keys[version] = key
	return nil
}

// provisionSigner loads the key that signs the replies into the flow's
// config.
func (h *Handler) provisionSigner(repl *caddy.Replacer) error {
	sc := h.SignResponses
	if sc == nil {
		return nil
	}
	var data []byte
	switch {
	case sc.PrivateKey != "" && sc.PrivateKeyFile != "":
		return errors.New("sign_responses: give private_key or private_key_file, not both")
	case sc.PrivateKey != "":
		resolved, err := repl.ReplaceOrErr(sc.PrivateKey, true, true)
		if err != nil {
			return fmt.Errorf("sign_responses: private_key: %v", err)
		}
		data = []byte(resolved)
	case sc.PrivateKeyFile != "":
		path := repl.ReplaceKnown(sc.PrivateKeyFile, "")
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sign_responses: private_key_file: %v", err)
		}
		data = b
	default:
		return errors.New("sign_responses: private_key_file (or private_key) is required")
	}
	version := sc.KeyVersion
	if version == "" {
		version = signature.DefaultKeyVersion
	}
	if err := signature.CheckKeyVersion(version); err != nil {
		return fmt.Errorf("sign_responses: key_version %q: %v", version, err)
	}
	// The key is loaded into the signing backend once, here (into OpenSSL's
	// memory with -tags openssl).
	key, err := signature.LoadSigner(data)
	if err != nil {
		return fmt.Errorf("sign_responses: %v", err)
	}
	h.flowConfig.Signer = &orderflow.Signer{Key: key, KeyVersion: version}
	return nil
}

// Validate checks what Provision cannot default: a gateway that verifies
// nothing must say so explicitly.
func (h *Handler) Validate() error {
	if len(h.Clients) == 0 && !h.InsecureSkipVerify {
		return errors.New("no client is configured; add a `client <client-id> { public_key_file <key-version> <path> }` block (or `insecure_skip_verify` for local development only)")
	}
	if h.MaxBodySize < 0 {
		return errors.New("max_body_size must be positive")
	}
	if h.flowConfig.TimeWindow < 0 {
		return errors.New("request_time_window must not be negative")
	}
	if h.UpstreamTimeout < 0 || h.ClaimLease < 0 || h.IdempotencyTTL < 0 {
		return errors.New("upstream_timeout, claim_lease and idempotency_ttl must not be negative")
	}
	if floor := time.Duration(h.UpstreamTimeout) + claimLeaseMargin; time.Duration(h.ClaimLease) < floor {
		return fmt.Errorf("claim_lease (%s) must be at least upstream_timeout + %s (%s), or a slow upstream call could lose its claim to a retry", time.Duration(h.ClaimLease), claimLeaseMargin, floor)
	}
	return nil
}

// Cleanup forgets the store; the store module closes itself. It is safe on a
// handler whose Provision failed half-way.
func (h *Handler) Cleanup() error {
	if h.registered {
		unregisterHandler(h)
		h.registered = false
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
