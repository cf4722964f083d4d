//go:build openssl

package caddytest

// caddyBuildTags: see buildtags_test.go.
const caddyBuildTags = "openssl"
