//go:build openssl && cgo

package signature

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/opensslv.h>
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "-tags openssl needs OpenSSL 3 (Debian/Ubuntu: apt-get install libssl-dev)"
#endif
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

// osync_load imports a PKCS#8 DER private key. The DER buffer is not kept.
static EVP_PKEY *osync_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, len);
	if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		ERR_clear_error();
		return NULL;
	}
	return k;
}

// osync_sign writes the RSASSA-PKCS1-v1_5 signature of a SHA-256 digest
// into sig (EVP_PKEY_get_size bytes). The EVP_PKEY is only read, which
// OpenSSL 3 allows from many threads at once; the EVP_PKEY_CTX is private
// to this call. OpenSSL blinds the private operation and checks the CRT
// result before returning it.
static int osync_sign(EVP_PKEY *pkey, const unsigned char *dgst, size_t dlen,
		unsigned char *sig, size_t *siglen) {
	int ok = 0;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx != NULL &&
		EVP_PKEY_sign_init(ctx) > 0 &&
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
		EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) > 0 &&
		EVP_PKEY_sign(ctx, sig, siglen, dgst, dlen) > 0) {
		ok = 1;
	}
	EVP_PKEY_CTX_free(ctx);
	if (!ok) {
		// The error queue is per thread; leave nothing for the next caller
		// scheduled on this one.
		ERR_clear_error();
	}
	return ok;
}
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// opensslLiveKeys counts EVP_PKEYs loaded and not yet freed, so the tests
// can prove that Close and the garbage collector release every one.
var opensslLiveKeys atomic.Int64

func freeKey(p *C.EVP_PKEY) {
	C.EVP_PKEY_free(p)
	opensslLiveKeys.Add(-1)
}

// opensslSigner signs with the system libcrypto.
//
// Lifetime: the EVP_PKEY is allocated by OpenSSL in newOpenSSLSigner and
// freed exactly once, either by close (explicit, after signatures in flight
// finish: they hold mu for reading) or, if close is never called, by a
// runtime cleanup once the signer is unreachable. close stops that cleanup
// before freeing, so the two never both run. Each signature allocates and
// frees its own EVP_PKEY_CTX inside one C call.
type opensslSigner struct {
	mu      sync.RWMutex
	pkey    *C.EVP_PKEY // nil once closed
	size    int         // signature length in bytes
	cleanup runtime.Cleanup
}

func newOpenSSLSigner(priv *rsa.PrivateKey) (signerBackend, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, newError(ReasonKey, "private key: cannot export it to OpenSSL")
	}
	pkey := C.osync_load((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	clear(der) // the only other copy of the key material this function made
	if pkey == nil {
		return nil, newError(ReasonKey, "private key: OpenSSL refused it")
	}
	opensslLiveKeys.Add(1)
	s := &opensslSigner{pkey: pkey, size: int(C.EVP_PKEY_get_size(pkey))}
	s.cleanup = runtime.AddCleanup(s, freeKey, pkey)
	return s, nil
}

func (s *opensslSigner) sign(hashed []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.pkey == nil {
		return nil, errSignerClosed
	}
	sig := make([]byte, s.size)
	n := C.size_t(len(sig))
	ok := C.osync_sign(s.pkey,
		(*C.uchar)(unsafe.Pointer(&hashed[0])), C.size_t(len(hashed)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n)
	if ok != 1 || int(n) != len(sig) {
		return nil, newError(ReasonKey, "private key: OpenSSL cannot sign with this key")
	}
	return sig, nil
}

func (s *opensslSigner) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pkey == nil {
		return
	}
	s.cleanup.Stop()
	freeKey(s.pkey)
	s.pkey = nil
}

func (*opensslSigner) name() string { return "openssl" }
