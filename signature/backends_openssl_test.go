//go:build openssl

package signature

func init() {
	signerBackends = append(signerBackends, testBackend{"openssl", newOpenSSLSigner})
}
