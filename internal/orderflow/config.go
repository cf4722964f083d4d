package orderflow

import (
	"errors"
	"time"

	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
	"github.com/caddy-alipay/ordersync/store"
)

// Config is what a Flow is made of. The glue builds it at provision, with
// everything resolved: keys read and parsed, placeholders replaced, the
// catalog built, the store loaded.
type Config struct {
	// Clients are the callers let in, by Client-Id.
	Clients map[string]*Client
	// InsecureSkipVerify lets any Client-Id in without a signature.
	InsecureSkipVerify bool
	// TimeWindow bounds how far Request-Time may be from now; 0 turns the
	// check off.
	TimeWindow time.Duration
	// Signer signs the replies; nil leaves them unsigned.
	Signer *Signer
	// Scenarios are the enabled scenarios.
	Scenarios *scenario.Catalog
	// Store keeps orders and replay records.
	Store *store.Store
	// StatusMap overrides the mapping of upstream statuses (map_status).
	StatusMap StatusMap
	// MaxBodySize is the largest body accepted, for the message of a body
	// that was larger (the glue reads the body and enforces it).
	MaxBodySize int64
	// UpstreamTimeout bounds everything from the claim to the upstream's
	// answer.
	UpstreamTimeout time.Duration
	// ClaimLease is how long a claim and an order lock hold.
	ClaimLease time.Duration
	// IdempotencyTTL is how long final answers are kept for replay.
	IdempotencyTTL time.Duration
	// Offline answers every request UN_SUPPORT_BUSINESS.
	Offline bool
}

// Client is one configured caller.
type Client struct {
	// Keys are its public keys by key version, prepared for verification.
	Keys map[string]*signature.PublicKey
	// Merchants, when not nil, are the merchantIds it may sync.
	Merchants map[string]struct{}
}

// Flow is the order-sync pipeline of one configured handler. It is
// immutable and safe for concurrent use.
type Flow struct {
	cfg       Config
	validator *Validator
	// tooLarge is the message of a body over MaxBodySize, made once.
	tooLarge string
}

// New returns the Flow of cfg.
func New(cfg Config) (*Flow, error) {
	if cfg.Scenarios == nil || cfg.Store == nil {
		return nil, errors.New("a Flow needs a scenario catalog and a store")
	}
	validator, err := NewValidator(cfg.Scenarios)
	if err != nil {
		return nil, errors.New("compiling the built-in schemas: " + err.Error())
	}
	return &Flow{
		cfg:       cfg,
		validator: validator,
		tooLarge:  BodyTooLargeMessage(cfg.MaxBodySize),
	}, nil
}
