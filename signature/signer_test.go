package signature

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"math/big"
	"strconv"
	"sync"
	"testing"
)

func TestSignerBackendIsCompileTimeChoice(t *testing.T) {
	_, vs := responseVector(t)
	s, err := NewSigner(vs.priv["gateway"])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Backend() != Backend {
		t.Fatalf("NewSigner uses %q, but this binary's Backend is %q", s.Backend(), Backend)
	}
	// signerBackends lists the OpenSSL backend only under -tags openssl, so
	// the last one listed is the one NewSigner must pick.
	if want := signerBackends[len(signerBackends)-1].name; Backend != want {
		t.Fatalf("Backend = %q, want %q for this build", Backend, want)
	}
	if !bytes.Equal(s.Public().RSA().N.Bytes(), vs.priv["gateway"].N.Bytes()) {
		t.Fatal("Public() is not the signing key's public half")
	}
}

// Every backend signs many different messages from many goroutines at
// once, each byte-identical to the one-off crypto/rsa Sign (run with -race).
func TestSignerConcurrent(t *testing.T) {
	_, vs := responseVector(t)
	priv := vs.priv["gateway"]
	const workers, each = 4, 8
	want := make([][]byte, workers*each)
	for i := range want {
		sig, err := Sign(priv, "POST", "/p", "cid", strconv.Itoa(i), []byte(`{"n":`+strconv.Itoa(i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = sig
	}
	for _, be := range signerBackends {
		t.Run(be.name, func(t *testing.T) {
			s := newTestSigner(t, be, priv)
			var wg sync.WaitGroup
			errs := make(chan string, len(want))
			for w := range workers {
				wg.Go(func() {
					for j := range each {
						i := w*each + j
						sig, err := s.Sign("POST", "/p", "cid", strconv.Itoa(i), []byte(`{"n":`+strconv.Itoa(i)+`}`))
						if err != nil || !bytes.Equal(sig, want[i]) {
							errs <- "message " + strconv.Itoa(i) + ": wrong signature or error " + errorText(err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

func errorText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Close may race with signatures in flight: each either completes with a
// valid signature or fails with ErrKey, never touches a freed key, and
// every Sign after Close fails.
func TestSignerCloseWhileSigning(t *testing.T) {
	v, vs := responseVector(t)
	priv := vs.priv["gateway"]
	body := []byte(v.Body)
	want, err := Sign(priv, v.Method, v.Path, v.ClientID, v.Time, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range signerBackends {
		t.Run(be.name, func(t *testing.T) {
			s := newTestSigner(t, be, priv)
			start := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var bad []string
			for range 4 {
				wg.Go(func() {
					<-start
					for range 5 {
						sig, err := s.Sign(v.Method, v.Path, v.ClientID, v.Time, body)
						if (err == nil && !bytes.Equal(sig, want)) || (err != nil && !errors.Is(err, ErrKey)) {
							mu.Lock()
							bad = append(bad, errorText(err))
							mu.Unlock()
						}
					}
				})
			}
			close(start)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if len(bad) > 0 {
				t.Fatalf("signatures racing Close: %v", bad)
			}
			if _, err := s.Sign(v.Method, v.Path, v.ClientID, v.Time, body); !errors.Is(err, ErrKey) || err.Error() != "private key: signer is closed" {
				t.Fatalf("Sign after Close = %v, want ErrKey", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

func TestNewSignerRefuses(t *testing.T) {
	_, vs := responseVector(t)
	good := vs.priv["gateway"]
	broken := *good
	broken.D = new(big.Int).Add(good.D, big.NewInt(2))
	broken.Precomputed = rsa.PrecomputedValues{}
	for _, be := range signerBackends {
		cases := []struct {
			name string
			key  *rsa.PrivateKey
			want string
		}{
			{"nil", nil, "private key: no key to sign with"},
			{"no modulus", &rsa.PrivateKey{}, "private key: no key to sign with"},
			{"inconsistent", &broken, "private key: inconsistent RSA key"},
		}
		for _, tc := range cases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				s, err := newSigner(tc.key, be.new)
				if s != nil || !errors.Is(err, ErrKey) || err.Error() != tc.want {
					t.Fatalf("newSigner = %v, %v; want ErrKey %q", s, err, tc.want)
				}
			})
		}
	}
	var nilSigner *Signer
	if _, err := nilSigner.Sign("POST", "/", "c", "1", nil); !errors.Is(err, ErrKey) {
		t.Fatalf("(*Signer)(nil).Sign = %v, want ErrKey", err)
	}
}

// A backend whose signatures do not verify under the key is refused at
// load, by the self-check, not discovered on the first reply.
func TestNewSignerSelfCheck(t *testing.T) {
	_, vs := responseVector(t)
	closed := false
	wrong := func(*rsa.PrivateKey) (signerBackend, error) {
		return fakeBackend{sig: make([]byte, 256), closed: &closed}, nil
	}
	s, err := newSigner(vs.priv["gateway"], wrong)
	if s != nil || !errors.Is(err, ErrKey) || err.Error() != "private key: the fake signer's self-check failed" {
		t.Fatalf("newSigner = %v, %v; want the self-check failure", s, err)
	}
	if !closed {
		t.Fatal("the refused backend was not closed")
	}
}

type fakeBackend struct {
	sig    []byte
	closed *bool
}

func (f fakeBackend) sign([]byte) ([]byte, error) { return f.sig, nil }
func (f fakeBackend) close()                      { *f.closed = true }
func (fakeBackend) name() string                  { return "fake" }

func TestLoadSigner(t *testing.T) {
	v, vs := responseVector(t)
	s, err := LoadSigner([]byte(vs.Keys[v.Key].Private))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sig, err := s.Sign(v.Method, v.Path, v.ClientID, v.Time, []byte(v.Body))
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatHeader(v.KeyVersion, sig); got != v.SignatureHeader {
		t.Fatalf("LoadSigner's signature differs from the SDK's\n got %s\nwant %s", got, v.SignatureHeader)
	}
	if _, err := LoadSigner([]byte(vs.Keys[v.Key].Public)); !errors.Is(err, ErrKey) {
		t.Fatalf("LoadSigner(public key) = %v, want ErrKey", err)
	}
}
