package cli_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/ordersync/signature"
)

// signOutput parses the four header lines sign prints.
func signOutput(t *testing.T, out string) map[string]string {
	t.Helper()
	h := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("sign printed %d lines, want 4:\n%s", len(lines), out)
	}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad header line %q", l)
		}
		h[name] = value
	}
	return h
}

func TestSignBodyFile(t *testing.T) {
	merchant, _ := sharedKeys(t)
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "m.pem", signature.EncodePrivateKeyPEM(merchant))
	// A trailing newline is part of what gets sent with --data-binary.
	body := []byte("{\"requestId\":\"r1\", \"amount\":{\"value\":\"100\"}}\n")
	bodyFile := writeFile(t, dir, "body.json", body)

	before := time.Now().UnixMilli()
	out, _, err := run(t, "", "sign", "--client-id", "CLIENT-1", "--key", keyFile, "--key-version", "3", bodyFile)
	if err != nil {
		t.Fatal(err)
	}
	h := signOutput(t, out)
	if h["Client-Id"] != "CLIENT-1" || h["Content-Type"] != "application/json; charset=UTF-8" {
		t.Fatalf("headers %v", h)
	}
	reqTime, err := signature.ParseTime(h["Request-Time"])
	if err != nil || reqTime.UnixMilli() < before || reqTime.UnixMilli() > time.Now().UnixMilli() {
		t.Fatalf("Request-Time %q is not now in epoch ms (%v)", h["Request-Time"], err)
	}
	if !strings.HasPrefix(h["Signature"], "algorithm=RSA256,keyVersion=3,signature=") {
		t.Fatalf("Signature %q", h["Signature"])
	}
	parsed, err := signature.ParseHeader(h["Signature"])
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/open/alipay/v1/merchant/order/sync"
	if err := signature.Verify(&merchant.PublicKey, "POST", path, "CLIENT-1", h["Request-Time"], body, parsed.Signature); err != nil {
		t.Fatalf("printed Signature does not verify: %v", err)
	}
	if signature.Verify(&merchant.PublicKey, "POST", path, "CLIENT-1", h["Request-Time"], bytes.TrimSpace(body), parsed.Signature) == nil {
		t.Fatal("the body was trimmed before signing")
	}

	// stdin, explicit method, path and ISO time.
	const iso = "2024-05-22T06:42:21+05:30"
	out, _, err = run(t, string(body), "sign", "--client-id", "CLIENT-1", "--key", keyFile,
		"--method", "PUT", "--path", "/other", "--time", iso, "-")
	if err != nil {
		t.Fatal(err)
	}
	h = signOutput(t, out)
	parsed, err = signature.ParseHeader(h["Signature"])
	if err != nil || h["Request-Time"] != iso || parsed.KeyVersion != "1" {
		t.Fatalf("headers %v, %v", h, err)
	}
	if err := signature.Verify(&merchant.PublicKey, "PUT", "/other", "CLIENT-1", iso, body, parsed.Signature); err != nil {
		t.Fatalf("stdin signature does not verify: %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	merchant, _ := sharedKeys(t)
	dir := t.TempDir()
	privFile := writeFile(t, dir, "m.pem", signature.EncodePrivateKeyPEM(merchant))
	pubFile := writeFile(t, dir, "m-pub.pem", signature.EncodePublicKeyPEM(&merchant.PublicKey))
	bodyFile := writeFile(t, dir, "b.json", []byte(`{}`))
	missing := filepath.Join(dir, "nope.pem")

	cases := []struct {
		args []string
		want []string // substrings of the error
	}{
		{[]string{"sign", "--client-id", "C", "--key", missing, bodyFile}, []string{"--key", "nope.pem"}},
		{[]string{"sign", "--client-id", "C", "--key", pubFile, bodyFile}, []string{"--key", "m-pub.pem", "public key"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, filepath.Join(dir, "nobody.json")}, []string{"BODY_FILE", "nobody.json"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile}, []string{"missing BODY_FILE"}},
		{[]string{"sign", "--key", privFile, bodyFile}, []string{"client-id"}},
		{[]string{"sign", "--client-id", " C", "--key", privFile, bodyFile}, []string{"--client-id"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--time", "yesterday", bodyFile}, []string{"--time"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--key-version", "1;2", bodyFile}, []string{"--key-version"}},
		{[]string{"sign", "--client-id", "C", "--key", privFile, "--path", "api", bodyFile}, []string{"--path"}},
	}
	pubB64 := signature.EncodePublicKeyBase64(&merchant.PublicKey)
	for _, tc := range cases {
		out, errOut, err := run(t, "", tc.args...)
		if err == nil {
			t.Errorf("%q: accepted", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.args, err, w)
			}
		}
		// No key material, ever, in any output of a failed run.
		for _, s := range []string{err.Error(), out, errOut} {
			if strings.Contains(s, "MII") || strings.Contains(s, pubB64[40:80]) {
				t.Errorf("%q: output contains key material", tc.args)
			}
		}
	}
}
