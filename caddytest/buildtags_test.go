//go:build !openssl

package caddytest

// caddyBuildTags are the build tags the Caddy binary under test is built
// with: the same as this test binary's, so `go test -tags openssl
// ./caddytest/` runs the end-to-end tests against the OpenSSL signer.
const caddyBuildTags = ""
