package signature

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzParseHeader(f *testing.F) {
	f.Add("algorithm=RSA256,keyVersion=1,signature=A%2B%2B%2F%2B%2B%2F%2FAQL%2BPw%3D%3D")
	f.Add("signature=A++/++//AQL+Pw==, keyversion = 2 ,ALGORITHM=rsa256")
	f.Add("algorithm=ECC224,keyVersion=1,signature=abc%2b")
	f.Add("algorithm=RSA256,signature=%zz")
	f.Add(",,=,==,algorithm==RSA256")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		h, err := ParseHeader(v)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Reason != ReasonMalformed && e.Reason != ReasonAlgorithm) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			if !strings.HasPrefix(e.Msg, "Signature: ") || len(e.Msg) > 120 {
				t.Fatalf("bad message %q", e.Msg)
			}
			return
		}
		if h.Algorithm != AlgorithmRSA256 || CheckKeyVersion(h.KeyVersion) != nil || len(h.Signature) == 0 {
			t.Fatalf("accepted an invalid header: %+v", h)
		}
		// What we emit must parse back to the same thing.
		h2, err := ParseHeader(FormatHeader(h.KeyVersion, h.Signature))
		if err != nil || h2.KeyVersion != h.KeyVersion || !bytes.Equal(h2.Signature, h.Signature) {
			t.Fatalf("round trip failed: %+v -> %+v, %v", h, h2, err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	v, vs := responseVector(f)
	pub := vs.pub[v.Key]
	want, err := ParseHeader(v.SignatureHeader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v.SignatureHeader, []byte(v.Body))
	f.Add(v.SignatureHeader, []byte(v.Body+" "))
	f.Add("algorithm=RSA256,signature=AAAA", []byte("{}"))
	f.Add("algorithm=RSA256,signature="+strings.Repeat("%2F", 400), []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h, err := ParseHeader(header)
		if err != nil {
			return
		}
		err = Verify(pub, v.Method, v.Path, v.ClientID, v.Time, body, h.Signature)
		if err == nil {
			// A PKCS#1 v1.5 signature is unique for a message and key, so
			// only the vector itself may verify.
			if string(body) != v.Body || !bytes.Equal(h.Signature, want.Signature) {
				t.Fatalf("forged signature verified")
			}
			return
		}
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1742977506708", "2024-05-22T06:42:21+05:30", "2026-11-25T13:12:21.1234567Z", "2024-05-22T06:42:21", "2024-02-29T23:59:59.9999999999Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseTime(v)
		if err != nil {
			if !errors.Is(err, ErrTime) || !strings.HasPrefix(err.Error(), "Request-Time: ") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if allDigits(v) {
			return
		}
		// Our ISO parser is stricter than the standard library, never looser.
		std, err := time.Parse(time.RFC3339Nano, strings.NewReplacer("t", "T", "z", "Z").Replace(v))
		if err != nil || !std.Equal(got) {
			t.Fatalf("ParseTime(%q) = %v but time.Parse = %v, %v", v, got, std, err)
		}
	})
}
