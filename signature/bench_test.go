package signature

import "testing"

func BenchmarkVerify(b *testing.B) {
	v, vs := responseVector(b)
	h, err := ParseHeader(v.SignatureHeader)
	if err != nil {
		b.Fatal(err)
	}
	pub, body := vs.pub[v.Key], []byte(v.Body)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(pub, v.Method, v.Path, v.ClientID, v.Time, body, h.Signature); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	v, vs := responseVector(b)
	priv, body := vs.priv[v.Key], []byte(v.Body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(priv, v.Method, v.Path, v.ClientID, v.Time, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	v, _ := responseVector(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(v.SignatureHeader); err != nil {
			b.Fatal(err)
		}
	}
}
