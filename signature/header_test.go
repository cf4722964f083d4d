package signature

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	// Bytes chosen so std base64 contains '+', '/' and padding.
	sig := []byte{0x03, 0xef, 0xbf, 0xfb, 0xef, 0xff, 0x01, 0x02, 0xfe, 0x3f}
	std := base64.StdEncoding.EncodeToString(sig) // "A++/++//AQL+Pw=="
	if !strings.ContainsAny(std, "+/=") {
		t.Fatalf("test signature %q lacks + / =", std)
	}
	esc := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(std)
	lower := strings.NewReplacer("+", "%2b", "/", "%2f", "=", "%3d").Replace(std)
	urlSafe := base64.URLEncoding.EncodeToString(sig)
	unpadded := base64.RawStdEncoding.EncodeToString(sig)
	spaced := strings.ReplaceAll(std, "+", " ")

	ok := []struct {
		name, in, ver string
	}{
		{"canonical", "algorithm=RSA256,keyVersion=1,signature=" + esc, "1"},
		{"any order", "signature=" + esc + ",keyVersion=2,algorithm=RSA256", "2"},
		{"spaces around , and =", "  algorithm = RSA256 ,\tkeyVersion =  7 , signature = " + esc + "  ", "7"},
		{"item names any case", "ALGORITHM=RSA256,keyversion=3,Signature=" + esc, "3"},
		{"algorithm any case", "algorithm=rsa256,KeyVersion=1,signature=" + esc, "1"},
		{"keyVersion missing", "algorithm=RSA256,signature=" + esc, "1"},
		{"keyVersion empty", "algorithm=RSA256,keyVersion=,signature=" + esc, "1"},
		{"raw base64 with + / =", "algorithm=RSA256,keyVersion=1,signature=" + std, "1"},
		{"lower-case escapes", "algorithm=RSA256,keyVersion=1,signature=" + lower, "1"},
		{"partly escaped", "algorithm=RSA256,keyVersion=1,signature=" + strings.Replace(std, "=", "%3D", 1), "1"},
		{"url-safe alphabet", "algorithm=RSA256,keyVersion=1,signature=" + urlSafe, "1"},
		{"unpadded", "algorithm=RSA256,keyVersion=1,signature=" + unpadded, "1"},
		{"plus mangled to space", "algorithm=RSA256,keyVersion=1,signature=" + spaced, "1"},
		{"unknown item ignored", "algorithm=RSA256,keyVersion=1,foo=bar,signature=" + esc, "1"},
		{"trailing comma", "algorithm=RSA256,keyVersion=1,signature=" + esc + ",", "1"},
		{"rotated version", "algorithm=RSA256,keyVersion=v2.1_a-b,signature=" + esc, "v2.1_a-b"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.in)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if h.Algorithm != "RSA256" || h.KeyVersion != tc.ver || !bytes.Equal(h.Signature, sig) {
				t.Fatalf("got %s/%s/%x, want RSA256/%s/%x", h.Algorithm, h.KeyVersion, h.Signature, tc.ver, sig)
			}
		})
	}

	bad := []struct {
		name, in, reason, msg string
	}{
		{"empty", "", ReasonMalformed, "Signature: missing header"},
		{"blank", "  \t ", ReasonMalformed, "Signature: missing header"},
		{"missing algorithm", "keyVersion=1,signature=" + esc, ReasonMalformed, "Signature: missing algorithm= item"},
		{"empty algorithm", "algorithm=,signature=" + esc, ReasonMalformed, "Signature: missing algorithm= item"},
		{"missing signature", "algorithm=RSA256,keyVersion=1", ReasonMalformed, "Signature: missing signature= item"},
		{"empty signature", "algorithm=RSA256,keyVersion=1,signature=", ReasonMalformed, "Signature: empty signature= value"},
		{"ECC224", "algorithm=ECC224,keyVersion=1,signature=" + esc, ReasonAlgorithm, "Signature: algorithm ECC224 is not supported (only RSA256)"},
		{"long algorithm not echoed", "algorithm=" + strings.Repeat("X", 40) + ",signature=" + esc, ReasonAlgorithm, "Signature: algorithm is not supported (only RSA256)"},
		{"garbage", "hello world", ReasonMalformed, "Signature: every item must be name=value"},
		{"item without =", "algorithm=RSA256,signature", ReasonMalformed, "Signature: every item must be name=value"},
		{"not base64", "algorithm=RSA256,signature=!!!!", ReasonMalformed, "Signature: not valid base64"},
		{"bad escape", "algorithm=RSA256,signature=abc%zz", ReasonMalformed, "Signature: bad %-escape in signature= value"},
		{"duplicate signature", "algorithm=RSA256,signature=" + esc + ",signature=" + esc, ReasonMalformed, "Signature: duplicate signature= item"},
		{"duplicate algorithm", "algorithm=RSA256,algorithm=ECC224,signature=" + esc, ReasonMalformed, "Signature: duplicate algorithm= item"},
		{"bad keyVersion", "algorithm=RSA256,keyVersion=1;drop,signature=" + esc, ReasonMalformed, "Signature: keyVersion must be 1-32 letters, digits, '.', '_' or '-'"},
		{"oversize", "algorithm=RSA256,keyVersion=1,signature=" + strings.Repeat("A", MaxHeaderLen), ReasonMalformed, "Signature: longer than 8192 bytes"},
		{"signature longer than any key's", "algorithm=RSA256,signature=" + strings.Repeat("A", 1368), ReasonMalformed, "Signature: signature= longer than 1024 bytes"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseHeader(tc.in)
			if err == nil {
				t.Fatalf("ParseHeader accepted %q", tc.in)
			}
			if err.Error() != tc.msg {
				t.Fatalf("message %q, want %q", err, tc.msg)
			}
			if ReasonOf(err) != tc.reason {
				t.Fatalf("reason %q, want %q", ReasonOf(err), tc.reason)
			}
			checkMessage(t, err, "Signature: ")
		})
	}
}

// checkMessage enforces the error-message rules shared by the package.
func checkMessage(t *testing.T, err error, prefix string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("message %q does not start with %q", msg, prefix)
	}
	if len(msg) > 120 {
		t.Fatalf("message is %d chars, want ≤ 120: %q", len(msg), msg)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *Error", err)
	}
}

func TestErrorSentinels(t *testing.T) {
	cases := map[string]error{
		ReasonMalformed: ErrMalformed,
		ReasonAlgorithm: ErrAlgorithm,
		ReasonMismatch:  ErrMismatch,
		ReasonTime:      ErrTime,
		ReasonKey:       ErrKey,
	}
	for reason, sentinel := range cases {
		err := error(&Error{Reason: reason, Msg: "x: y"})
		for _, other := range cases {
			if got := errors.Is(err, other); got != (other == sentinel) {
				t.Fatalf("errors.Is(%s error, %v) = %v", reason, other, got)
			}
		}
	}
	if ReasonOf(nil) != "" || ReasonOf(errors.New("other")) != "" {
		t.Fatal("ReasonOf of a foreign error must be empty")
	}
}

func TestFormatHeader(t *testing.T) {
	sig := []byte{0xfb, 0xef, 0xff, 0x01, 0x02, 0xfe, 0x3f}
	got := FormatHeader("2", sig)
	if want := "algorithm=RSA256,keyVersion=2,signature=%2B%2B%2F%2FAQL%2BPw%3D%3D"; got != want {
		t.Fatalf("FormatHeader = %q, want %q", got, want)
	}
	got = FormatHeader("", sig)
	if !strings.HasPrefix(got, "algorithm=RSA256,keyVersion=1,") {
		t.Fatalf("empty version: %q", got)
	}
	h, err := ParseHeader(got)
	if err != nil || h.KeyVersion != "1" || !bytes.Equal(h.Signature, sig) {
		t.Fatalf("round trip: %+v, %v", h, err)
	}
}
