package signature

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"strconv"
	"testing"
)

// rawSign is the bare RSA private operation s = em^d mod n, without any
// padding: it lets a test put an arbitrary encoded message under a
// signature and see what each verifier makes of it.
func rawSign(tb testing.TB, priv *rsa.PrivateKey, em []byte) []byte {
	tb.Helper()
	m := new(big.Int).SetBytes(em)
	if m.Cmp(priv.N) >= 0 {
		tb.Fatalf("encoded message is not below the modulus")
	}
	// CRT, as a signer would, so the fuzz target below runs a few times
	// faster than with d directly; Precompute has run on the vector keys.
	p, q, pc := priv.Primes[0], priv.Primes[1], priv.Precomputed
	m1 := new(big.Int).Exp(m, pc.Dp, p)
	m2 := new(big.Int).Exp(m, pc.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, pc.Qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, priv.Size()))
}

// encodedMessage builds 0x00 0x01 0xff.. 0x00 || digestInfo || hash,
// k bytes long, with the given digestInfo prefix.
func encodedMessage(k int, digestInfo, hash []byte) []byte {
	em := make([]byte, k)
	em[1] = 0x01
	tLen := len(digestInfo) + len(hash)
	for i := 2; i < k-tLen-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-tLen:], digestInfo)
	copy(em[k-len(hash):], hash)
	return em
}

// verifiers returns (prepared, crypto/rsa) verdicts for sig over hashed.
func verifiers(t testing.TB, pub *rsa.PublicKey, hashed, sig []byte) (prepared, reference bool) {
	t.Helper()
	k, err := NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k.verify(hashed, sig), rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig) == nil
}

// Encoded messages a sloppy, parsing verifier would accept; crypto/rsa and
// PublicKey both compare the whole encoded message and must agree on each.
func TestPublicKeyAgreesWithCryptoRSAOnCraftedMessages(t *testing.T) {
	_, vs := responseVector(t)
	priv := vs.priv["gateway"]
	pub := &priv.PublicKey
	k := priv.Size()
	hashed := sha256.Sum256([]byte("POST /p\ncid.1.{}"))
	other := sha256.Sum256([]byte("something else"))
	sha1Info := []byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}
	// SHA-256 DigestInfo without the NULL parameters: some verifiers
	// accept it, RFC 8017's comparison does not.
	noNullInfo := []byte{0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20}

	valid := encodedMessage(k, sha256DigestInfo, hashed[:])
	mutate := func(f func(em []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := []struct {
		name string
		em   []byte
		want bool
	}{
		{"valid", valid, true},
		{"other hash", encodedMessage(k, sha256DigestInfo, other[:]), false},
		{"block type 2", mutate(func(em []byte) []byte { em[1] = 0x02; return em }), false},
		{"leading byte not zero", mutate(func(em []byte) []byte { em[0] = 0x01; return em }), false},
		{"padding byte not 0xff", mutate(func(em []byte) []byte { em[20] = 0xfe; return em }), false},
		{"separator not zero", mutate(func(em []byte) []byte { em[k-len(sha256DigestInfo)-33] = 0xff; return em }), false},
		{"SHA-1 DigestInfo", encodedMessage(k, sha1Info, hashed[:20]), false},
		{"DigestInfo without NULL", encodedMessage(k, noNullInfo, hashed[:]), false},
		// Bleichenbacher 2006: short padding, the real DigestInfo and hash,
		// then garbage a prefix parser never looks at.
		{"hash followed by garbage", func() []byte {
			em := make([]byte, k)
			em[1] = 0x01
			for i := 2; i < 10; i++ {
				em[i] = 0xff
			}
			p := append(append(append(em[:11:11], sha256DigestInfo...), hashed[:]...), bytes.Repeat([]byte{0x42}, k)...)
			return p[:k]
		}(), false},
		{"padding shorter than 8 bytes", func() []byte {
			em := bytes.Repeat([]byte{0x42}, k-11-len(sha256DigestInfo)-32)
			em = append(append([]byte{0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, em...), 0x00)
			return append(append(em, sha256DigestInfo...), hashed[:]...)
		}(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.em) != k {
				t.Fatalf("test bug: encoded message has %d bytes, want %d", len(tc.em), k)
			}
			got, ref := verifiers(t, pub, hashed[:], rawSign(t, priv, tc.em))
			if got != ref || got != tc.want {
				t.Fatalf("PublicKey says %v, crypto/rsa says %v, want %v", got, ref, tc.want)
			}
		})
	}
}

// Signature values crypto/rsa refuses before looking at the message.
func TestPublicKeyRejectsWhatCryptoRSARejects(t *testing.T) {
	v, vs := responseVector(t)
	priv := vs.priv["gateway"]
	pub := &priv.PublicKey
	k := priv.Size()
	hashed := digest(v.Method, v.Path, v.ClientID, v.Time, []byte(v.Body))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, hashed[:])
	if err != nil {
		t.Fatal(err)
	}
	n := pub.N.FillBytes(make([]byte, k))
	nPlus1 := new(big.Int).Add(pub.N, big.NewInt(1)).FillBytes(make([]byte, k))

	// A valid signature whose first byte is zero, to send without it: the
	// same number, one byte short. Found by trying messages in order, so
	// the search is the same on every run.
	var zeroLed, zeroLedHash []byte
	for i := 0; zeroLed == nil; i++ {
		if i == 5000 {
			t.Fatal("no signature with a leading zero byte in 5000 tries")
		}
		h := sha256.Sum256([]byte("zero-led " + strconv.Itoa(i)))
		s, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		if s[0] == 0 {
			zeroLed, zeroLedHash = s, h[:]
		}
	}

	cases := []struct {
		name   string
		hashed []byte
		sig    []byte
	}{
		{"empty", hashed[:], nil},
		{"one byte short", hashed[:], sig[1:]},
		{"one byte long (leading zero added)", hashed[:], append([]byte{0}, sig...)},
		{"leading zero dropped", zeroLedHash, zeroLed[1:]},
		{"s = n", hashed[:], n},
		{"s = n+1", hashed[:], nPlus1},
		{"s all ones", hashed[:], bytes.Repeat([]byte{0xff}, k)},
		{"s = 0", hashed[:], make([]byte, k)},
		{"s = 1", hashed[:], append(make([]byte, k-1), 1)},
		{"s = n-1", hashed[:], new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, k))},
		{"hash too short", hashed[:31], sig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ref := verifiers(t, pub, tc.hashed, tc.sig)
			if got || ref {
				t.Fatalf("PublicKey says %v, crypto/rsa says %v, want both to reject", got, ref)
			}
		})
	}
	// The untouched inputs verify with both, so the rejections above are
	// about the change each case makes.
	if got, ref := verifiers(t, pub, zeroLedHash, zeroLed); !got || !ref {
		t.Fatalf("zero-led signature: PublicKey %v, crypto/rsa %v, want both to accept", got, ref)
	}
	if got, ref := verifiers(t, pub, hashed[:], sig); !got || !ref {
		t.Fatalf("valid signature: PublicKey %v, crypto/rsa %v, want both to accept", got, ref)
	}
}

// NewPublicKey refuses at provision every key crypto/rsa would refuse at
// verification, plus keys under MinKeyBits.
func TestNewPublicKeyRefuses(t *testing.T) {
	_, vs := responseVector(t)
	good := vs.pub["gateway"]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	withE := func(e int) *rsa.PublicKey { return &rsa.PublicKey{N: good.N, E: e} }
	cases := []struct {
		name     string
		key      *rsa.PublicKey
		cryptoOK bool // crypto/rsa would verify with it; we are stricter
		want     string
	}{
		{"nil", nil, false, "public key: no RSA modulus"},
		{"no modulus", &rsa.PublicKey{E: 65537}, false, "public key: no RSA modulus"},
		{"negative modulus", &rsa.PublicKey{N: new(big.Int).Neg(good.N), E: 65537}, true, "public key: no RSA modulus"},
		{"even modulus", &rsa.PublicKey{N: new(big.Int).Add(good.N, big.NewInt(1)), E: 65537}, false, "public key: RSA modulus is even"},
		{"e = 1", withE(1), false, "public key: RSA public exponent must be odd and between 3 and 2^31-1"},
		{"e = 0", withE(0), false, "public key: RSA public exponent must be odd and between 3 and 2^31-1"},
		{"e negative", withE(-65537), false, "public key: RSA public exponent must be odd and between 3 and 2^31-1"},
		{"e even", withE(65536), false, "public key: RSA public exponent must be odd and between 3 and 2^31-1"},
		{"e = 2^31+1", withE(1<<31 + 1), false, "public key: RSA public exponent must be odd and between 3 and 2^31-1"},
		{"1024-bit key", &small.PublicKey, true, "public key: RSA key is 1024 bits; at least 2048 required"},
	}
	hashed := sha256.Sum256([]byte("x"))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewPublicKey(tc.key)
			if k != nil || !errors.Is(err, ErrKey) || err.Error() != tc.want {
				t.Fatalf("NewPublicKey = %v, %v; want ErrKey %q", k, err, tc.want)
			}
			if tc.key == nil || tc.cryptoOK {
				return
			}
			// crypto/rsa refuses the key itself, before the signature: the
			// error is not its verification error.
			sig := make([]byte, 256)
			sig[255] = 2
			if err := rsa.VerifyPKCS1v15(tc.key, crypto.SHA256, hashed[:], sig); err == nil || errors.Is(err, rsa.ErrVerification) {
				t.Fatalf("crypto/rsa with this key = %v; the case should be one it refuses as a key", err)
			}
		})
	}
}

// A public exponent other than 65537 is legal and crypto/rsa supports it;
// the prepared key must agree on it too (e = 3 here).
func TestPublicKeySmallExponent(t *testing.T) {
	priv := keyWithExponent(t, 3)
	hashed := sha256.Sum256([]byte("e=3"))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, hashed[:])
	if err != nil {
		t.Fatal(err)
	}
	if got, ref := verifiers(t, &priv.PublicKey, hashed[:], sig); !got || !ref {
		t.Fatalf("PublicKey %v, crypto/rsa %v, want both to accept", got, ref)
	}
	sig[len(sig)-1] ^= 1
	if got, ref := verifiers(t, &priv.PublicKey, hashed[:], sig); got || ref {
		t.Fatalf("tampered: PublicKey %v, crypto/rsa %v, want both to reject", got, ref)
	}
}

// keyWithExponent builds a 2048-bit RSA key with public exponent e, which
// rsa.GenerateKey (always 65537) cannot.
func keyWithExponent(t *testing.T, e int64) *rsa.PrivateKey {
	t.Helper()
	bigE := big.NewInt(e)
	one := big.NewInt(1)
	prime := func() *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if new(big.Int).GCD(nil, nil, bigE, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	for p.Cmp(q) == 0 {
		q = prime()
	}
	n := new(big.Int).Mul(p, q)
	if n.BitLen() != 2048 {
		return keyWithExponent(t, e)
	}
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(bigE, phi)
	priv := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: int(e)}, D: d, Primes: []*big.Int{p, q}}
	if err := priv.Validate(); err != nil {
		t.Fatal(err)
	}
	priv.Precompute()
	return priv
}

// FuzzVerifyPrepared holds PublicKey to crypto/rsa on arbitrary inputs. The
// em argument is put under a real private-key operation, so the fuzzer
// explores encoded messages (padding, DigestInfo, hash position), not just
// random signatures that every verifier rejects; sig is tried as is, to
// cover lengths and values out of range.
func FuzzVerifyPrepared(f *testing.F) {
	_, vs := responseVector(f)
	priv := vs.priv["gateway"]
	pub := &priv.PublicKey
	k := priv.Size()
	prepared, err := NewPublicKey(pub)
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("POST /p\ncid.1.{}")
	h := sha256.Sum256(msg)
	valid := encodedMessage(k, sha256DigestInfo, h[:])
	validSig := rawSign(f, priv, valid)
	f.Add(msg, valid, validSig)
	f.Add(msg, valid[1:], validSig[1:])
	f.Add(msg, append(bytes.Clone(valid[:k-1]), valid[k-1]^1), append([]byte{0}, validSig...))
	f.Add([]byte("other"), valid, pub.N.Bytes())
	f.Add(msg, valid[:k-32], []byte(nil))
	f.Fuzz(func(t *testing.T, msg, em, sig []byte) {
		hashed := sha256.Sum256(msg)
		check := func(what string, sig []byte) {
			got := prepared.verify(hashed[:], sig)
			ref := rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed[:], sig) == nil
			if got != ref {
				t.Fatalf("%s: PublicKey says %v, crypto/rsa says %v", what, got, ref)
			}
		}
		check("sig", sig)
		if len(em) > k {
			return
		}
		// I2OSP-style: a short em is the same number left-padded with zeros.
		full := make([]byte, k)
		copy(full[k-len(em):], em)
		if new(big.Int).SetBytes(full).Cmp(pub.N) >= 0 {
			return
		}
		check("em", rawSign(t, priv, full))
	})
}
