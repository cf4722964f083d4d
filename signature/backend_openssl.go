//go:build openssl

package signature

// -tags openssl signs with the system libcrypto (signer_openssl.go), chosen
// at compile time; nothing at run time switches back to pure Go.
const defaultBackendName = "openssl"

var newDefaultBackend = newOpenSSLSigner
