package signature

import (
	"crypto"
	"crypto/rsa"
)

// goSigner signs with crypto/rsa. It is compiled into every build, so the
// OpenSSL build can still compare against it (tests and benchmarks).
type goSigner struct{ priv *rsa.PrivateKey }

// newGoSigner wants a key on which Precompute has run: crypto/rsa then
// reuses the prepared CRT moduli instead of rebuilding them per signature.
func newGoSigner(priv *rsa.PrivateKey) (signerBackend, error) {
	return goSigner{priv: priv}, nil
}

// sign is constant-time in the key: crypto/rsa uses constant-time modular
// arithmetic for the private operation and checks the result against the
// public key before returning it.
func (g goSigner) sign(hashed []byte) ([]byte, error) {
	sig, err := rsa.SignPKCS1v15(nil, g.priv, crypto.SHA256, hashed)
	if err != nil {
		return nil, newError(ReasonKey, "private key: cannot sign with this key")
	}
	return sig, nil
}

func (goSigner) close()       {}
func (goSigner) name() string { return "go" }
