//go:build openssl

package signature

import (
	"runtime"
	"testing"
	"time"
)

// Every EVP_PKEY the OpenSSL backend loads is freed: at once by Close, and
// by the garbage collector for a Signer dropped without Close. (The
// per-signature EVP_PKEY_CTX is freed inside the C call; CI runs these
// tests under -asan, whose leak check covers that side.)
func TestOpenSSLKeysFreed(t *testing.T) {
	_, vs := responseVector(t)
	priv := vs.priv["gateway"]
	base := opensslLiveKeys.Load()

	closed := make([]*Signer, 5)
	for i := range closed {
		s, err := newSigner(priv, newOpenSSLSigner)
		if err != nil {
			t.Fatal(err)
		}
		closed[i] = s
	}
	for i := range 5 {
		s, err := newSigner(priv, newOpenSSLSigner)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign("POST", "/", "c", "1", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		// dropped here without Close
	}
	for _, s := range closed {
		s.Close()
	}
	// Cleanups run on their own goroutine some time after a collection;
	// poll a bounded number of times instead of asserting a duration.
	for i := 0; opensslLiveKeys.Load() != base && i < 500; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if live := opensslLiveKeys.Load() - base; live != 0 {
		t.Fatalf("%d OpenSSL keys still allocated after Close and garbage collection", live)
	}
}
