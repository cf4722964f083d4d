//go:build !openssl

package signature

// The default build signs in pure Go; -tags openssl swaps in
// backend_openssl.go at compile time.
const defaultBackendName = "go"

var newDefaultBackend = newGoSigner
