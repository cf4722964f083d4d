package signature

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// wrap64 breaks s into 64-column lines with CRLF, as key files often are.
func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\r\n")
		s = s[64:]
	}
	return b.String() + s + "\n"
}

func TestParseKeys(t *testing.T) {
	vs := loadVectors(t)
	priv := vs.priv["gateway"]
	pub := &priv.PublicKey
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	pkcs1Pub := x509.MarshalPKCS1PublicKey(pub)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	pkcs1Priv := x509.MarshalPKCS1PrivateKey(priv)

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallSPKI, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	smallPKCS8, _ := x509.MarshalPKCS8PrivateKey(small)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSPKI, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ec)

	b64 := base64.StdEncoding.EncodeToString
	secrets := []string{b64(pkcs8)[40:80], b64(pkcs1Priv)[40:80], b64(spki)[40:80]}

	pubCases := []struct {
		name, in, wantErr string
	}{
		{"PEM SPKI", pemOf("PUBLIC KEY", spki), ""},
		{"PEM PKCS#1", pemOf("RSA PUBLIC KEY", pkcs1Pub), ""},
		{"base64 SPKI (SDK form)", vs.Keys["gateway"].Public, ""},
		{"base64 SPKI wrapped", "  " + wrap64(b64(spki)), ""},
		{"base64 PKCS#1", b64(pkcs1Pub), ""},
		{"raw DER", string(spki), ""},
		{"EC key", pemOf("PUBLIC KEY", ecSPKI), "public key: not an RSA key (ECDSA); only RSA256 is supported"},
		{"1024-bit key", b64(smallSPKI), "public key: RSA key is 1024 bits; at least 2048 required"},
		{"private PEM given", pemOf("PRIVATE KEY", pkcs8), "public key: PEM block is a private key; give the public key"},
		{"private base64 given", b64(pkcs8), "public key: this is a private key; give the public key"},
		{"certificate PEM", pemOf("CERTIFICATE", []byte{1, 2, 3}), "public key: PEM type CERTIFICATE is not supported (want PUBLIC KEY or RSA PUBLIC KEY)"},
		{"broken PEM", "-----BEGIN PUBLIC KEY-----\nAAAA", "public key: malformed PEM block"},
		{"garbage", "not a key at all!", "public key: neither PEM nor base64 DER"},
		{"base64 of garbage", b64([]byte("hello world")), "public key: not a valid SPKI or PKCS#1 public key"},
		{"empty", " \n ", "public key: empty"},
	}
	for _, tc := range pubCases {
		t.Run("public/"+tc.name, func(t *testing.T) {
			got, err := ParsePublicKey([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePublicKey: %v", err)
				}
				if !got.Equal(pub) {
					t.Fatal("parsed a different key")
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			checkKeyError(t, err, "public key: ", secrets)
		})
	}

	privCases := []struct {
		name, in, wantErr string
	}{
		{"PEM PKCS#8", pemOf("PRIVATE KEY", pkcs8), ""},
		{"PEM PKCS#1", pemOf("RSA PRIVATE KEY", pkcs1Priv), ""},
		{"base64 PKCS#8 (SDK form)", vs.Keys["gateway"].Private, ""},
		{"base64 PKCS#8 wrapped", wrap64(b64(pkcs8)), ""},
		{"base64 PKCS#1", b64(pkcs1Priv), ""},
		{"raw DER", string(pkcs8), ""},
		{"EC key", pemOf("PRIVATE KEY", ecPKCS8), "private key: not an RSA key (ECDSA); only RSA256 is supported"},
		{"1024-bit key", pemOf("PRIVATE KEY", smallPKCS8), "private key: RSA key is 1024 bits; at least 2048 required"},
		{"encrypted PKCS#8", pemOf("ENCRYPTED PRIVATE KEY", []byte{1}), "private key: encrypted keys are not supported; decrypt it first"},
		{"encrypted PEM headers", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "private key: encrypted PEM is not supported; decrypt it first"},
		{"public PEM given", pemOf("PUBLIC KEY", spki), "private key: PEM block is a public key; give the private key"},
		{"public base64 given", b64(spki), "private key: this is a public key; give the private key"},
		{"garbage", "%%%", "private key: neither PEM nor base64 DER"},
		{"base64 of garbage", b64([]byte("hello world")), "private key: not a valid PKCS#8 or PKCS#1 private key"},
	}
	for _, tc := range privCases {
		t.Run("private/"+tc.name, func(t *testing.T) {
			got, err := ParsePrivateKey([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePrivateKey: %v", err)
				}
				if !got.Equal(priv) {
					t.Fatal("parsed a different key")
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			checkKeyError(t, err, "private key: ", secrets)
		})
	}
}

func checkKeyError(t *testing.T, err error, prefix string, secrets []string) {
	t.Helper()
	checkMessage(t, err, prefix)
	if !errors.Is(err, ErrKey) {
		t.Fatalf("%v is not ErrKey", err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error message leaks key material: %q", err)
		}
	}
}

func TestGenerateAndEncodeRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k.N.BitLen() != 2048 {
		t.Fatalf("GenerateKey made %d bits", k.N.BitLen())
	}
	privPEM := EncodePrivateKeyPEM(k)
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----\n") {
		t.Fatalf("private PEM is not PKCS#8: %.40q", privPEM)
	}
	pubPEM := EncodePublicKeyPEM(&k.PublicKey)
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----\n") {
		t.Fatalf("public PEM is not SPKI: %.40q", pubPEM)
	}
	privB64 := EncodePrivateKeyBase64(k)
	pubB64 := EncodePublicKeyBase64(&k.PublicKey)
	if strings.ContainsAny(privB64+pubB64, "-\n ") {
		t.Fatal("base64 forms must have no armour or line breaks")
	}
	// The SDKs parse these forms with PKCS#8 / SPKI parsers exactly.
	if der, _ := base64.StdEncoding.DecodeString(privB64); der == nil {
		t.Fatal("private base64 is not std base64")
	} else if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		t.Fatalf("private base64 is not PKCS#8: %v", err)
	}
	if der, _ := base64.StdEncoding.DecodeString(pubB64); der == nil {
		t.Fatal("public base64 is not std base64")
	} else if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		t.Fatalf("public base64 is not SPKI: %v", err)
	}
	for _, in := range [][]byte{privPEM, []byte(privB64)} {
		got, err := ParsePrivateKey(in)
		if err != nil || !got.Equal(k) {
			t.Fatalf("private round trip: %v", err)
		}
	}
	for _, in := range [][]byte{pubPEM, []byte(pubB64)} {
		got, err := ParsePublicKey(in)
		if err != nil || !got.Equal(&k.PublicKey) {
			t.Fatalf("public round trip: %v", err)
		}
	}
	if EncodePrivateKeyPEM(nil) != nil || EncodePublicKeyPEM(nil) != nil ||
		EncodePrivateKeyBase64(nil) != "" || EncodePublicKeyBase64(nil) != "" {
		t.Fatal("nil keys must encode to nothing")
	}
}
