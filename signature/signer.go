package signature

import (
	"crypto/rsa"
	"sync/atomic"
)

// Signer signs RSA256 with a private key loaded once, for a long-lived
// caller such as the gateway signing its replies.
//
// The implementation is chosen at compile time: pure Go (crypto/rsa with the
// key's CRT values precomputed, constant-time) by default, or OpenSSL's
// libcrypto when built with -tags openssl (see signer_openssl.go). Backend
// says which one a binary has. Both produce the same bytes: PKCS#1 v1.5 is
// deterministic.
//
// A Signer is safe for concurrent use. Close releases what the backend holds
// outside the Go heap (the OpenSSL key); it waits for signatures in flight,
// and Sign fails with ReasonKey afterwards. A Signer that is dropped without
// Close is released by the garbage collector, so Close is prompt cleanup,
// not a leak fix.
type Signer struct {
	pub    *PublicKey
	b      signerBackend
	closed atomic.Bool
}

// signerBackend is one implementation of RSASSA-PKCS1-v1_5 signing of a
// SHA-256 digest.
type signerBackend interface {
	// sign returns the signature of the 32-byte SHA-256 digest hashed.
	sign(hashed []byte) ([]byte, error)
	close()
	name() string
}

// Backend names the signing implementation compiled into this binary: "go"
// or "openssl".
const Backend = defaultBackendName

// NewSigner prepares priv for signing with the compiled-in backend. priv is
// validated and its CRT values precomputed; the backend's first signature
// is checked against the public key, so a key that provisions signs
// correctly. priv must not be modified afterwards.
func NewSigner(priv *rsa.PrivateKey) (*Signer, error) {
	return newSigner(priv, newDefaultBackend)
}

// LoadSigner is ParsePrivateKey followed by NewSigner.
func LoadSigner(data []byte) (*Signer, error) {
	priv, err := ParsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	return NewSigner(priv)
}

func newSigner(priv *rsa.PrivateKey, newBackend func(*rsa.PrivateKey) (signerBackend, error)) (*Signer, error) {
	const field = "private key: "
	if priv == nil || priv.N == nil {
		return nil, newError(ReasonKey, field+"no key to sign with")
	}
	if err := checkBits(field, priv.N.BitLen()); err != nil {
		return nil, err
	}
	if err := priv.Validate(); err != nil {
		return nil, newError(ReasonKey, field+"inconsistent RSA key")
	}
	priv.Precompute()
	pub, err := NewPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, newError(ReasonKey, field+"its public half is unusable")
	}
	b, err := newBackend(priv)
	if err != nil {
		return nil, err
	}
	s := &Signer{pub: pub, b: b}
	// A backend that links but signs wrongly (a mismatched library, a key
	// imported differently) must fail at load, not on the first reply.
	probe := digest("POST", "/probe", "signer", "0", nil)
	sig, err := b.sign(probe[:])
	if err != nil || !pub.verify(probe[:], sig) {
		b.close()
		return nil, newError(ReasonKey, field+"the "+b.name()+" signer's self-check failed")
	}
	return s, nil
}

// Sign returns the RSA256 signature of ContentToSign(method, path,
// clientID, timeValue, body), byte-identical to the package-level Sign.
func (s *Signer) Sign(method, path, clientID, timeValue string, body []byte) ([]byte, error) {
	if s == nil || s.b == nil {
		return nil, newError(ReasonKey, "private key: no key to sign with")
	}
	if s.closed.Load() {
		return nil, errSignerClosed
	}
	hashed := digest(method, path, clientID, timeValue, body)
	return s.b.sign(hashed[:])
}

// Public returns the prepared public half of the key.
func (s *Signer) Public() *PublicKey { return s.pub }

// Backend names the implementation this Signer uses ("go" or "openssl").
func (s *Signer) Backend() string { return s.b.name() }

// Close releases the key held outside the Go heap (OpenSSL's), once
// signatures in flight finish; the pure Go backend holds nothing to
// release. Later Sign calls fail with ReasonKey with either backend. Close
// is idempotent.
func (s *Signer) Close() error {
	if s != nil && s.b != nil {
		s.closed.Store(true)
		s.b.close()
	}
	return nil
}

var errSignerClosed = newError(ReasonKey, "private key: signer is closed")
