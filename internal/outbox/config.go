package outbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddy-alipay/ordersync/internal/orderflow"
	"github.com/caddy-alipay/ordersync/scenario"
	"github.com/caddy-alipay/ordersync/signature"
)

// Defaults of the alipay_order_push options. A zero Config field means its
// default; the glue documents these numbers.
const (
	DefaultPath = orderflow.SyncPath
	DefaultWait = 10 * time.Second
	// NoWait as Config.Wait answers as soon as the order is queued (the
	// Caddyfile's wait 0; a zero Config.Wait is the default).
	NoWait                time.Duration = -1
	DefaultAttemptTimeout               = 10 * time.Second
	DefaultRetryInitial                 = time.Second
	DefaultRetryMax                     = 5 * time.Minute
	DefaultMaxAge                       = 24 * time.Hour
	DefaultMaxBodySize                  = orderflow.DefaultMaxBodySize
)

// MinWebhookSecretLen is the shortest callback secret accepted, in bytes
// after decoding: the lower bound Standard Webhooks recommends (24 to 64
// bytes).
const MinWebhookSecretLen = 24

// Config is one configuration generation of an egress handler: what
// Service (submit, lookup) and Runner (delivery, callbacks, operator
// actions) need. Errors about it name the Caddyfile option.
type Config struct {
	// ClientID is ours, as registered with AlipayHK (client_id).
	ClientID string
	// KeyVersion is the keyVersion of our key (key_version); "" is "1".
	KeyVersion string
	// Signer signs every attempt with the merchant's private key
	// (private_key_file). Required.
	Signer *signature.Signer
	// AlipayKey verifies every reply (alipay_public_key_file). Required.
	AlipayKey *signature.PublicKey
	// Path is the request path of every attempt and part of what is signed
	// (path); "" is DefaultPath.
	Path string

	// Wait bounds how long Submit waits for a final state (wait): 0 is
	// DefaultWait, NoWait answers as soon as the order is queued.
	Wait time.Duration
	// AttemptTimeout bounds one HTTP attempt (attempt_timeout).
	AttemptTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts
	// (retry_initial, retry_max).
	RetryInitial time.Duration
	RetryMax     time.Duration
	// MaxAge is how long an entry is retried after it was queued before it
	// is expired, and how long a final entry is kept for lookups and
	// dedupe (max_age).
	MaxAge time.Duration
	// MaxBodySize bounds the legacy system's body (max_body_size). The glue
	// reads at most MaxBodySize+1 bytes; Submit refuses a longer body.
	MaxBodySize int64

	// Scenarios is the catalog of enabled scenarios (scenario blocks;
	// gift_card is always in it). Required.
	Scenarios *scenario.Catalog

	// Callback, when set, receives every final state (callback).
	Callback *Callback
}

// Callback is where final states are POSTed (the callback option).
type Callback struct {
	// URL is an absolute http or https URL.
	URL string
	// Secret is the HMAC key: the decoded secret (ParseWebhookSecret).
	Secret []byte
	// Client sends the callbacks. It should have a timeout and not follow
	// redirects (a 3xx is not a 2xx). Nil is a client with a 10 s timeout
	// that does not follow redirects.
	Client *http.Client
}

// ParseWebhookSecret reads a callback secret as Standard Webhooks gives
// it: base64 (standard alphabet, padded or not) after an optional "whsec_"
// prefix, at least MinWebhookSecretLen bytes once decoded. The error names
// the option and the rule, never the value.
func ParseWebhookSecret(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "whsec_")
	if s == "" {
		return nil, errors.New("callback secret: empty")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("callback secret: not base64 (Standard Webhooks: base64 after an optional whsec_ prefix)")
		}
	}
	if len(b) < MinWebhookSecretLen {
		return nil, fmt.Errorf("callback secret: %d bytes once decoded; at least %d are needed (e.g. openssl rand -base64 32)", len(b), MinWebhookSecretLen)
	}
	return b, nil
}

// withDefaults returns c with every zero field at its default, or the
// first mistake, naming the option.
func (c Config) withDefaults() (Config, error) {
	if c.ClientID == "" {
		return c, errors.New("client_id: required")
	}
	for _, r := range c.ClientID {
		if r < 0x20 || r == 0x7f {
			return c, errors.New("client_id: contains a control character")
		}
	}
	if c.KeyVersion == "" {
		c.KeyVersion = signature.DefaultKeyVersion
	}
	if err := signature.CheckKeyVersion(c.KeyVersion); err != nil {
		return c, fmt.Errorf("key_version: %v", err)
	}
	if c.Signer == nil {
		return c, errors.New("private_key_file: required")
	}
	if c.AlipayKey == nil {
		return c, errors.New("alipay_public_key_file: required")
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if !strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, "?# \t\r\n") {
		return c, errors.New("path: must start with / and have no query, fragment or whitespace")
	}
	switch {
	case c.Wait == NoWait:
		c.Wait = 0
	case c.Wait < 0:
		return c, errors.New("wait: must not be negative")
	case c.Wait == 0:
		c.Wait = DefaultWait
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"attempt_timeout", &c.AttemptTimeout, DefaultAttemptTimeout},
		{"retry_initial", &c.RetryInitial, DefaultRetryInitial},
		{"retry_max", &c.RetryMax, DefaultRetryMax},
		{"max_age", &c.MaxAge, DefaultMaxAge},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%s: must not be negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.RetryInitial > c.RetryMax {
		return c, fmt.Errorf("retry_initial: %v is more than retry_max %v", c.RetryInitial, c.RetryMax)
	}
	if c.MaxBodySize < 0 {
		return c, errors.New("max_body_size: must not be negative")
	}
	if c.MaxBodySize == 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.Scenarios == nil {
		return c, errors.New("scenario: no scenario catalog")
	}
	if c.Callback != nil {
		cb := *c.Callback
		u, err := url.Parse(cb.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, errors.New("callback: the URL must be an absolute http or https URL")
		}
		if len(cb.Secret) < MinWebhookSecretLen {
			return c, fmt.Errorf("callback secret: at least %d bytes are needed", MinWebhookSecretLen)
		}
		if cb.Client == nil {
			cb.Client = &http.Client{
				Timeout:       10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
		c.Callback = &cb
	}
	return c, nil
}

// Check reports the first mistake in c, naming the option, as NewService
// and NewRunner would: for the glue's Validate.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}
