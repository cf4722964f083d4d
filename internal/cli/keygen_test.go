package cli_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caddy-alipay/ordersync/signature"
)

func checkPair(t *testing.T, priv *rsa.PrivateKey, pub *rsa.PublicKey) {
	t.Helper()
	body := []byte(`{"a":1}`)
	sig, err := signature.Sign(priv, "POST", "/p", "C", "1", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.Verify(pub, "POST", "/p", "C", "1", body, sig); err != nil {
		t.Fatalf("the generated keys do not pair up: %v", err)
	}
}

func TestKeygenOutDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, err := run(t, "", "keygen", "--out", dir, "--name", "gw")
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "gw-private.pem"), filepath.Join(dir, "gw-public.pem")
	privPEM, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(privPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("private key file is not a PKCS#8 PEM block")
	}
	if b, _ := pem.Decode(pubPEM); b == nil || b.Type != "PUBLIC KEY" {
		t.Fatalf("public key file is not an SPKI PEM block")
	}
	priv, err := signature.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if priv.N.BitLen() != 2048 {
		t.Fatalf("key is %d bits, want 2048", priv.N.BitLen())
	}
	checkPair(t, priv, pub)
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(privPath); fi.Mode().Perm() != 0o600 {
			t.Fatalf("private key mode %v, want 0600", fi.Mode().Perm())
		}
	}

	// The printed SDK forms are the same keys: one label line, then the value.
	lines := strings.Split(out, "\n")
	var privB64, pubB64 string
	for i, l := range lines {
		switch {
		case strings.Contains(l, "private key, SDK form (base64 PKCS#8 DER") && i+1 < len(lines):
			privB64 = lines[i+1]
		case strings.Contains(l, "public key, SDK form (base64 SPKI DER") && i+1 < len(lines):
			pubB64 = lines[i+1]
		}
	}
	if strings.Contains(out, "BEGIN") {
		t.Fatal("with --out, PEM must go to the files, not stdout")
	}
	sdkPriv, err := signature.ParsePrivateKey([]byte(privB64))
	if err != nil {
		t.Fatalf("printed private key: %v", err)
	}
	sdkPub, err := signature.ParsePublicKey([]byte(pubB64))
	if err != nil {
		t.Fatalf("printed public key: %v", err)
	}
	if !sdkPriv.Equal(priv) || !sdkPub.Equal(pub) {
		t.Fatal("printed base64 keys differ from the files")
	}
	if _, err := base64.StdEncoding.DecodeString(privB64); err != nil {
		t.Fatal("private SDK form is not std base64")
	}

	// A second run must not touch the existing pair.
	_, _, err = run(t, "", "keygen", "--out", dir, "--name", "gw")
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen: err = %v, want a refusal to overwrite", err)
	}
	if again, _ := os.ReadFile(privPath); !bytes.Equal(again, privPEM) {
		t.Fatal("existing private key was overwritten")
	}
	// Nor a half-existing one.
	os.Remove(privPath)
	if _, _, err = run(t, "", "keygen", "--out", dir, "--name", "gw"); err == nil {
		t.Fatal("keygen overwrote an existing public key")
	}
	if _, err := os.Stat(privPath); !os.IsNotExist(err) {
		t.Fatal("refused keygen still left a private key behind")
	}
}

func TestKeygenStdout(t *testing.T) {
	out, _, err := run(t, "", "keygen")
	if err != nil {
		t.Fatal(err)
	}
	var priv *rsa.PrivateKey
	var pub *rsa.PublicKey
	rest := []byte(out)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			priv, err = signature.ParsePrivateKey(pem.EncodeToMemory(b))
		case "PUBLIC KEY":
			pub, err = signature.ParsePublicKey(pem.EncodeToMemory(b))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if priv == nil || pub == nil {
		t.Fatalf("stdout lacks a PEM pair:\n%s", out)
	}
	checkPair(t, priv, pub)
	if !strings.Contains(out, "merchant public key, SDK form") {
		t.Fatal("stdout lacks the labelled SDK forms (default --name merchant)")
	}
}

func TestKeygenBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"keygen", "--name", "../evil"},
		{"keygen", "--name", ""},
		{"keygen", "stray"},
	} {
		if _, _, err := run(t, "", args...); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}
