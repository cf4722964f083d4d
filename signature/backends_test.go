package signature

import (
	"crypto/rsa"
	"testing"
)

// signerBackend constructors compiled into this test binary: always the pure
// Go one; the OpenSSL one too with -tags openssl (backends_openssl_test.go).
type testBackend struct {
	name string
	new  func(*rsa.PrivateKey) (signerBackend, error)
}

var signerBackends = []testBackend{{"go", newGoSigner}}

func newTestSigner(tb testing.TB, be testBackend, priv *rsa.PrivateKey) *Signer {
	tb.Helper()
	s, err := newSigner(priv, be.new)
	if err != nil {
		tb.Fatalf("%s signer: %v", be.name, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
