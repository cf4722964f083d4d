package signature

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strconv"
)

// MinKeyBits is the smallest RSA modulus accepted. AlipayHK requires 2048-bit
// keys; anything shorter is refused rather than silently trusted.
const MinKeyBits = 2048

// ParsePublicKey reads an RSA public key from a PEM block "PUBLIC KEY"
// (X.509 SubjectPublicKeyInfo) or "RSA PUBLIC KEY" (PKCS#1), or from bare
// base64 of SPKI DER, the SDK form (PKCS#1 DER is accepted too). Whitespace
// and line breaks inside base64 are ignored. Non-RSA keys and keys under
// MinKeyBits are rejected.
func ParsePublicKey(data []byte) (*rsa.PublicKey, error) {
	const field = "public key: "
	der, pemType, err := keyDER(field, data)
	if err != nil {
		return nil, err
	}
	var key any
	switch pemType {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(der)
	case "":
		if key, err = x509.ParsePKIXPublicKey(der); err != nil {
			key, err = x509.ParsePKCS1PublicKey(der)
		}
		if err != nil && isPrivateDER(der) {
			return nil, newError(ReasonKey, field+"this is a private key; give the public key")
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, newError(ReasonKey, field+"PEM block is a private key; give the public key")
	default:
		return nil, newError(ReasonKey, field+"PEM type "+safePEMType(pemType)+"is not supported (want PUBLIC KEY or RSA PUBLIC KEY)")
	}
	if err != nil {
		return nil, newError(ReasonKey, field+"not a valid SPKI or PKCS#1 public key")
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, newError(ReasonKey, field+"not an RSA key ("+keyKind(key)+"); only RSA256 is supported")
	}
	if err := checkBits(field, pub.N.BitLen()); err != nil {
		return nil, err
	}
	return pub, nil
}

// ParsePrivateKey reads an RSA private key from a PEM block "PRIVATE KEY"
// (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1), or from bare base64 of PKCS#8 DER,
// the SDK form (PKCS#1 DER is accepted too). Encrypted keys, non-RSA keys
// and keys under MinKeyBits are rejected.
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	const field = "private key: "
	der, pemType, err := keyDER(field, data)
	if err != nil {
		return nil, err
	}
	var key any
	switch pemType {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "":
		if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			key, err = x509.ParsePKCS1PrivateKey(der)
		}
		if err != nil && isPublicDER(der) {
			return nil, newError(ReasonKey, field+"this is a public key; give the private key")
		}
	case "ENCRYPTED PRIVATE KEY":
		return nil, newError(ReasonKey, field+"encrypted keys are not supported; decrypt it first")
	case "PUBLIC KEY", "RSA PUBLIC KEY":
		return nil, newError(ReasonKey, field+"PEM block is a public key; give the private key")
	default:
		return nil, newError(ReasonKey, field+"PEM type "+safePEMType(pemType)+"is not supported (want PRIVATE KEY or RSA PRIVATE KEY)")
	}
	if err != nil {
		return nil, newError(ReasonKey, field+"not a valid PKCS#8 or PKCS#1 private key")
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, newError(ReasonKey, field+"not an RSA key ("+keyKind(key)+"); only RSA256 is supported")
	}
	if err := checkBits(field, priv.N.BitLen()); err != nil {
		return nil, err
	}
	return priv, nil
}

// keyDER returns the DER bytes in data and the PEM type ("" when data was
// bare base64 or raw DER).
func keyDER(field string, data []byte) ([]byte, string, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, "", newError(ReasonKey, field+"empty")
	}
	if bytes.HasPrefix(data, []byte("-----BEGIN")) {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, "", newError(ReasonKey, field+"malformed PEM block")
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			return nil, "", newError(ReasonKey, field+"encrypted PEM is not supported; decrypt it first")
		}
		return block.Bytes, block.Type, nil
	}
	// A binary .der file starts with an ASN.1 SEQUENCE tag (0x30, '0');
	// base64 of an RSA key never does (it starts "MI").
	if data[0] == 0x30 {
		return data, "", nil
	}
	// Key files and inline config values are often wrapped at 64 or 76
	// columns, or pasted with stray spaces.
	clean := bytes.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, data)
	der := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(der, clean)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(der, clean)
	}
	if err != nil || n == 0 {
		return nil, "", newError(ReasonKey, field+"neither PEM nor base64 DER")
	}
	return der[:n], "", nil
}

func isPrivateDER(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(der)
	return err == nil
}

func isPublicDER(der []byte) bool {
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PublicKey(der)
	return err == nil
}

func checkBits(field string, bits int) error {
	if bits < MinKeyBits {
		return newError(ReasonKey, field+"RSA key is "+strconv.Itoa(bits)+" bits; at least "+strconv.Itoa(MinKeyBits)+" required")
	}
	return nil
}

func keyKind(key any) string {
	switch key.(type) {
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return "ECDSA"
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case *ecdh.PublicKey, *ecdh.PrivateKey:
		return "X25519"
	}
	return "unknown type"
}

// safePEMType echoes a PEM type only when it looks like one, since the label
// comes from user input.
func safePEMType(t string) string {
	if len(t) > 32 {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !('A' <= c && c <= 'Z' || c == ' ') {
			return ""
		}
	}
	return t + " "
}

// GenerateKey returns a new RSA-2048 key, the size AlipayHK requires.
func GenerateKey() (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, MinKeyBits)
	if err != nil {
		return nil, newError(ReasonKey, "private key: cannot generate: "+err.Error())
	}
	return k, nil
}

// EncodePrivateKeyPEM returns k as a PKCS#8 "PRIVATE KEY" PEM block, or nil
// if k cannot be marshalled (an invalid key).
func EncodePrivateKeyPEM(k *rsa.PrivateKey) []byte {
	der := marshalPrivate(k)
	if der == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// EncodePublicKeyPEM returns k as an X.509 SubjectPublicKeyInfo "PUBLIC KEY"
// PEM block, or nil if k cannot be marshalled.
func EncodePublicKeyPEM(k *rsa.PublicKey) []byte {
	der := marshalPublic(k)
	if der == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// EncodePrivateKeyBase64 returns k as std base64 of PKCS#8 DER without PEM
// armour, the form the Alipay SDKs take as merchantPrivateKey; "" if k cannot
// be marshalled.
func EncodePrivateKeyBase64(k *rsa.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(marshalPrivate(k))
}

// EncodePublicKeyBase64 returns k as std base64 of SubjectPublicKeyInfo DER,
// the form the Alipay SDKs take as alipayPublicKey; "" if k cannot be
// marshalled.
func EncodePublicKeyBase64(k *rsa.PublicKey) string {
	return base64.StdEncoding.EncodeToString(marshalPublic(k))
}

func marshalPrivate(k *rsa.PrivateKey) []byte {
	if k == nil || k.N == nil {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil
	}
	return der
}

func marshalPublic(k *rsa.PublicKey) []byte {
	if k == nil || k.N == nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil
	}
	return der
}
