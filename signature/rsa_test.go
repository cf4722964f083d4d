package signature

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestContentToSign(t *testing.T) {
	got := string(ContentToSign("POST", "/p", "cid", "123", []byte(`{"a":1}`)))
	if want := "POST /p\ncid.123.{\"a\":1}"; got != want {
		t.Fatalf("ContentToSign = %q, want %q", got, want)
	}
	// Verify hashes the pieces itself; it must agree with the exported form.
	_, vs := responseVector(t)
	priv := vs.priv["gateway"]
	sum := sha256.Sum256([]byte(got))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(&priv.PublicKey, "POST", "/p", "cid", "123", []byte(`{"a":1}`), sig); err != nil {
		t.Fatalf("Verify disagrees with ContentToSign: %v", err)
	}
}

func TestVerifyTampering(t *testing.T) {
	v, vs := responseVector(t)
	h, err := ParseHeader(v.SignatureHeader)
	if err != nil {
		t.Fatal(err)
	}
	pub := vs.pub[v.Key]
	body := []byte(v.Body)
	flipped := append([]byte(nil), body...)
	flipped[len(flipped)/2] ^= 0x01
	cases := []struct {
		name                        string
		pub                         *rsa.PublicKey
		method, path, cid, tm, body string
		sig                         []byte
	}{
		{"body byte changed", pub, v.Method, v.Path, v.ClientID, v.Time, string(flipped), h.Signature},
		{"body re-serialized", pub, v.Method, v.Path, v.ClientID, v.Time, v.Body + "\n", h.Signature},
		{"time changed", pub, v.Method, v.Path, v.ClientID, v.Time + "0", v.Body, h.Signature},
		{"client id changed", pub, v.Method, v.Path, v.ClientID + "X", v.Time, v.Body, h.Signature},
		{"path changed", pub, v.Method, v.Path + "/", v.ClientID, v.Time, v.Body, h.Signature},
		{"method changed", pub, "PUT", v.Path, v.ClientID, v.Time, v.Body, h.Signature},
		{"wrong key", vs.pub["merchant_v1"], v.Method, v.Path, v.ClientID, v.Time, v.Body, h.Signature},
		{"truncated signature", pub, v.Method, v.Path, v.ClientID, v.Time, v.Body, h.Signature[:len(h.Signature)-1]},
		{"empty signature", pub, v.Method, v.Path, v.ClientID, v.Time, v.Body, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prepared, err := NewPublicKey(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			for name, err := range map[string]error{
				"Verify":           Verify(tc.pub, tc.method, tc.path, tc.cid, tc.tm, []byte(tc.body), tc.sig),
				"PublicKey.Verify": prepared.Verify(tc.method, tc.path, tc.cid, tc.tm, []byte(tc.body), tc.sig),
			} {
				if !errors.Is(err, ErrMismatch) || ReasonOf(err) != ReasonMismatch {
					t.Fatalf("%s = %v, want a mismatch", name, err)
				}
				if err.Error() != "Signature: does not verify" {
					t.Fatalf("%s message %q", name, err)
				}
			}
		})
	}
	if err := Verify(nil, v.Method, v.Path, v.ClientID, v.Time, body, h.Signature); !errors.Is(err, ErrKey) {
		t.Fatalf("Verify(nil key) = %v, want ErrKey", err)
	}
	var noKey *PublicKey
	if err := noKey.Verify(v.Method, v.Path, v.ClientID, v.Time, body, h.Signature); !errors.Is(err, ErrKey) {
		t.Fatalf("(*PublicKey)(nil).Verify = %v, want ErrKey", err)
	}
	if _, err := Sign(nil, v.Method, v.Path, v.ClientID, v.Time, body); !errors.Is(err, ErrKey) {
		t.Fatalf("Sign(nil key) = %v, want ErrKey", err)
	}
}
