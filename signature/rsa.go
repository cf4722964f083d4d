package signature

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"hash"
	"io"
)

// ContentToSign returns the bytes that are signed:
// "<METHOD> <PATH>\n<Client-Id>.<time>.<body>", with body used as is.
// Verify and Sign hash the same pieces without building this buffer; it is
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

// digest is SHA-256 of ContentToSign, written piecewise so a large body is
// not copied.
func digest(method, path, clientID, timeValue string, body []byte) []byte {
	h := sha256.New()
	writeString(h, method)
	h.Write([]byte{' '})
	writeString(h, path)
	h.Write([]byte{'\n'})
	writeString(h, clientID)
	h.Write([]byte{'.'})
	writeString(h, timeValue)
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// writeString avoids a []byte(s) copy when the hash takes strings directly.
func writeString(h hash.Hash, s string) { io.WriteString(h, s) }

// Verify checks sig, the decoded RSA256 signature (Header.Signature), over
// ContentToSign(method, path, clientID, timeValue, body). body must be the raw
// bytes as received. It returns nil only when the signature verifies; a
// failure is an *Error with ReasonMismatch (ReasonKey when pub is nil).
func Verify(pub *rsa.PublicKey, method, path, clientID, timeValue string, body []byte, sig []byte) error {
	if pub == nil || pub.N == nil {
		return newError(ReasonKey, "Signature: no public key to verify with")
	}
	// crypto/rsa compares the encoded message in constant time.
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest(method, path, clientID, timeValue, body), sig); err != nil {
		return newError(ReasonMismatch, "Signature: does not verify")
	}
	return nil
}

// Sign returns the RSA256 signature of ContentToSign(method, path, clientID,
// timeValue, body). PKCS#1 v1.5 is deterministic: the same inputs and key
// always give the same bytes, which makes a replayed response byte-identical.
func Sign(priv *rsa.PrivateKey, method, path, clientID, timeValue string, body []byte) ([]byte, error) {
	if priv == nil || priv.N == nil {
		return nil, newError(ReasonKey, "private key: no key to sign with")
	}
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest(method, path, clientID, timeValue, body))
	if err != nil {
		return nil, newError(ReasonKey, "private key: cannot sign with this key")
	}
	return sig, nil
}
