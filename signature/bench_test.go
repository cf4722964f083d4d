package signature

import "testing"

// The signature-stage benchmarks. Names are stable: bench/README.md's
// per-stage table quotes them.
//
//	BenchmarkVerify/prepared    PublicKey.Verify, the key prepared at provision (the gateway's path)
//	BenchmarkVerify/crypto_rsa  the package-level Verify: crypto/rsa, modulus rebuilt per call
//	BenchmarkSign/go            Signer with the pure Go backend (crypto/rsa, precomputed key)
//	BenchmarkSign/openssl       Signer with the OpenSSL backend (only with -tags openssl)
//	BenchmarkSignParallel/...   the same signers from GOMAXPROCS goroutines
//	BenchmarkParseHeader        parsing an SDK Signature header
//
// Each verify and sign includes hashing the signed content of the SDK's
// response vector.

func BenchmarkVerify(b *testing.B) {
	v, vs := responseVector(b)
	h, err := ParseHeader(v.SignatureHeader)
	if err != nil {
		b.Fatal(err)
	}
	pub, body := vs.pub[v.Key], []byte(v.Body)
	b.Run("prepared", func(b *testing.B) {
		k, err := NewPublicKey(pub)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := k.Verify(v.Method, v.Path, v.ClientID, v.Time, body, h.Signature); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto_rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Verify(pub, v.Method, v.Path, v.ClientID, v.Time, body, h.Signature); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	v, vs := responseVector(b)
	body := []byte(v.Body)
	for _, be := range signerBackends {
		b.Run(be.name, func(b *testing.B) {
			s := newTestSigner(b, be, vs.priv[v.Key])
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(v.Method, v.Path, v.ClientID, v.Time, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSignParallel(b *testing.B) {
	v, vs := responseVector(b)
	body := []byte(v.Body)
	for _, be := range signerBackends {
		b.Run(be.name, func(b *testing.B) {
			s := newTestSigner(b, be, vs.priv[v.Key])
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(v.Method, v.Path, v.ClientID, v.Time, body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
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
