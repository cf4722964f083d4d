//go:build openssl && !cgo

package signature

// The OpenSSL signer is C code: with cgo disabled the build must fail rather
// than quietly ship the pure Go signer under the openssl tag. The undefined
// name below is the error message.
var _ = openssl_build_tag_needs_cgo_set_CGO_ENABLED_1_and_install_libssl_dev
