package signature

import (
	"crypto/rsa"
	"crypto/sha256"

	"filippo.io/bigmod"
)

// sha256DigestInfo is the DER prefix of a DigestInfo holding a SHA-256 hash
// (RFC 8017 section 9.2, note 1), the same bytes crypto/rsa uses.
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// PublicKey is an RSA public key prepared once for RSA256 verification.
//
// crypto/rsa rebuilds the modulus' Montgomery constants (R² mod n and
// -n⁻¹ mod 2^64) on every VerifyPKCS1v15 call, about a third of a 2048-bit
// verification. A PublicKey computes them once, in NewPublicKey, together
// with the constant part of the expected encoded message, so Verify does
// only the exponentiation, one hash and one comparison. It is immutable and
// safe for concurrent use.
type PublicKey struct {
	key *rsa.PublicKey
	n   *bigmod.Modulus
	e   uint
	// size is k, the modulus length in bytes: a valid signature and the
	// encoded message both have exactly this length.
	size int
	// emPrefix is EM minus the hash: 0x00 0x01 0xff…0xff 0x00 DigestInfo,
	// k-32 bytes (RFC 8017 section 9.2 steps 2-5).
	emPrefix []byte
}

// NewPublicKey prepares pub for Verify. It refuses what crypto/rsa would
// refuse at verification time (missing or even modulus, public exponent
// even, below 3 or above 2³¹-1) and keys under MinKeyBits, so a key that
// provisions is one that can verify.
func NewPublicKey(pub *rsa.PublicKey) (*PublicKey, error) {
	const field = "public key: "
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 {
		return nil, newError(ReasonKey, field+"no RSA modulus")
	}
	if err := checkBits(field, pub.N.BitLen()); err != nil {
		return nil, err
	}
	if pub.N.Bit(0) == 0 {
		return nil, newError(ReasonKey, field+"RSA modulus is even")
	}
	// The bounds and oddness crypto/rsa enforces on e (checkPublicKey).
	if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return nil, newError(ReasonKey, field+"RSA public exponent must be odd and between 3 and 2^31-1")
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, newError(ReasonKey, field+"unusable RSA modulus")
	}
	k := n.Size()
	tLen := len(sha256DigestInfo) + 32
	// RFC 8017 section 9.2 step 3: at least 8 bytes of 0xff padding. Unreachable
	// for keys of MinKeyBits, kept so the invariant sits next to the code.
	if k < tLen+11 {
		return nil, newError(ReasonKey, field+"RSA key too short for SHA-256")
	}
	prefix := make([]byte, k-32)
	prefix[1] = 0x01
	for i := 2; i < k-tLen-1; i++ {
		prefix[i] = 0xff
	}
	copy(prefix[k-tLen:], sha256DigestInfo)
	cp := &rsa.PublicKey{N: pub.N, E: pub.E}
	return &PublicKey{key: cp, n: n, e: uint(pub.E), size: k, emPrefix: prefix}, nil
}

// LoadPublicKey is ParsePublicKey followed by NewPublicKey.
func LoadPublicKey(data []byte) (*PublicKey, error) {
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, err
	}
	return NewPublicKey(pub)
}

// RSA returns the key as a crypto/rsa public key, for encoding or for
// callers that verify elsewhere. It must not be modified.
func (k *PublicKey) RSA() *rsa.PublicKey { return k.key }

// Verify checks sig, the decoded RSA256 signature (Header.Signature), over
// ContentToSign(method, path, clientID, timeValue, body), exactly as
// RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017 section 8.2.2): it accepts
// and rejects the same signatures as the package-level Verify, which uses
// crypto/rsa. It returns nil only when the signature verifies; a failure is
// an *Error with ReasonMismatch (ReasonKey when k is nil).
func (k *PublicKey) Verify(method, path, clientID, timeValue string, body []byte, sig []byte) error {
	if k == nil || k.n == nil {
		return newError(ReasonKey, "Signature: no public key to verify with")
	}
	hashed := digest(method, path, clientID, timeValue, body)
	if !k.verify(hashed[:], sig) {
		return newError(ReasonMismatch, "Signature: does not verify")
	}
	return nil
}

// verify is RFC 8017 section 8.2.2 for SHA-256; hashed is the 32-byte digest.
func (k *PublicKey) verify(hashed, sig []byte) bool {
	// Step 1: the signature has exactly k bytes; no leading-zero leniency.
	if len(sig) != k.size || len(hashed) != sha256.Size {
		return false
	}
	// Step 2a (OS2IP and the range check): SetBytes refuses s >= n.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return false
	}
	// Step 2b: m = s^e mod n. The exponent is public, so the variable-time
	// exponentiation leaks nothing secret.
	m := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n)
	// Steps 3-4: build the whole expected encoded message EM' and compare
	// it with m, never parse m (parsing is how Bleichenbacher-style
	// forgeries get through). Comparing OS2IP(EM') with m is comparing EM'
	// with I2OSP(m, k): both are k bytes and OS2IP is a bijection there.
	// EM' < n because it starts 0x00 0x01 and n has no leading zero byte.
	var stack [512]byte // EM' for keys up to 4096 bits without a heap buffer
	em := stack[:0]
	if k.size > len(stack) {
		em = make([]byte, 0, k.size)
	}
	em = append(append(em, k.emPrefix...), hashed...)
	want, err := bigmod.NewNat().SetBytes(em, k.n)
	if err != nil {
		return false
	}
	// Everything compared is public; Equal happens to be constant-time.
	return m.Equal(want) == 1
}
