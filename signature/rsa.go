package signature

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"hash"
	"sync"
)

// ContentToSign returns the bytes that are signed:
// "<METHOD> <PATH>\n<Client-Id>.<time>.<body>", with body used as is.
// Verify and Sign hash the same bytes without copying the body; it is
// exported for diagnostics and for callers that sign elsewhere.
func ContentToSign(method, path, clientID, timeValue string, body []byte) []byte {
	b := make([]byte, 0, len(method)+len(path)+len(clientID)+len(timeValue)+len(body)+4)
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, '\n')
	b = append(b, clientID...)
	b = append(b, '.')
	b = append(b, timeValue...)
	b = append(b, '.')
	return append(b, body...)
}

// digest is SHA-256 of ContentToSign. The short head is copied into a
// pooled buffer and the body hashed in place, so a large body is never
// copied and the hot path allocates nothing once the pool is warm.
func digest(method, path, clientID, timeValue string, body []byte) [sha256.Size]byte {
	d := digesters.Get().(*digester)
	d.buf = append(d.buf[:0], method...)
	d.buf = append(d.buf, ' ')
	d.buf = append(d.buf, path...)
	d.buf = append(d.buf, '\n')
	d.buf = append(d.buf, clientID...)
	d.buf = append(d.buf, '.')
	d.buf = append(d.buf, timeValue...)
	d.buf = append(d.buf, '.')
	d.h.Reset()
	d.h.Write(d.buf)
	d.h.Write(body)
	var sum [sha256.Size]byte
	copy(sum[:], d.h.Sum(d.buf[:0]))
	if cap(d.buf) <= maxPooledHead {
		digesters.Put(d)
	}
	return sum
}

// digester is a reusable SHA-256 state plus a buffer for the head of the
// signed content; hash.Hash's interface methods make both escape otherwise.
type digester struct {
	h   hash.Hash
	buf []byte
}

// maxPooledHead keeps an abusive head (a huge path or Client-Id) from
// pinning a large buffer in the pool.
const maxPooledHead = 4096

var digesters = sync.Pool{New: func() any {
	return &digester{h: sha256.New(), buf: make([]byte, 0, 256)}
}}

// Verify checks sig, the decoded RSA256 signature (Header.Signature), over
// ContentToSign(method, path, clientID, timeValue, body). body must be the raw
// bytes as received. It returns nil only when the signature verifies; a
// failure is an *Error with ReasonMismatch (ReasonKey when pub is nil).
//
// Verify is crypto/rsa as is, for one-off checks (the CLI) and as the
// reference the tests hold PublicKey.Verify to; a long-lived verifier
// prepares its keys once with NewPublicKey instead.
func Verify(pub *rsa.PublicKey, method, path, clientID, timeValue string, body []byte, sig []byte) error {
	if pub == nil || pub.N == nil {
		return newError(ReasonKey, "Signature: no public key to verify with")
	}
	// crypto/rsa compares the whole encoded message.
	hashed := digest(method, path, clientID, timeValue, body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed[:], sig); err != nil {
		return newError(ReasonMismatch, "Signature: does not verify")
	}
	return nil
}

// Sign returns the RSA256 signature of ContentToSign(method, path, clientID,
// timeValue, body). PKCS#1 v1.5 is deterministic: the same inputs and key
// always give the same bytes, which makes a replayed response byte-identical.
//
// Sign always uses crypto/rsa, whatever the build tags; it suits one-off
// signing (the CLI, load generators). A long-lived signer uses NewSigner,
// which loads the key once into the compiled-in backend.
func Sign(priv *rsa.PrivateKey, method, path, clientID, timeValue string, body []byte) ([]byte, error) {
	if priv == nil || priv.N == nil {
		return nil, newError(ReasonKey, "private key: no key to sign with")
	}
	hashed := digest(method, path, clientID, timeValue, body)
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, hashed[:])
	if err != nil {
		return nil, newError(ReasonKey, "private key: cannot sign with this key")
	}
	return sig, nil
}
