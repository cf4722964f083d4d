// Package signature implements the request and response signatures of the
// AlipayHK open API (Order Service "order sync" and its siblings), as
// docs/SPEC.md §3 sums them up.
//
// # Scheme
//
// The signed content is the UTF-8 text
//
//	<METHOD> <PATH>\n<Client-Id>.<time>.<body>
//
// where time is the exact Request-Time header value for a request (the
// Response-Time value for a response) and body is the raw body bytes as
// sent: never re-serialize JSON before verifying, or whitespace and key
// order break the signature. The algorithm RSA256 is RSASSA-PKCS1-v1_5 with
// SHA-256 over RSA keys of at least 2048 bits. The Signature header carries
//
//	algorithm=RSA256,keyVersion=1,signature=<url-encoded std base64>
//
// Responses use the same template with the server's key: the request's method
// and path, the caller's Client-Id and the Response-Time value.
//
// # SDK quirks tolerated by ParseHeader
//
// The official SDKs and hand-written clients do not agree on the header, so
// ParseHeader accepts:
//   - items in any order, with spaces or tabs around ',' and '=';
//   - item names in any case (keyVersion, keyversion, KEYVERSION), and the
//     algorithm value in any case (rsa256);
//   - a missing or empty keyVersion, defaulting to "1" as every SDK does;
//   - the signature value URL-encoded (%2B %2F %3D, also lower-case %2b from
//     .NET) or raw base64 with literal '+', '/' and '='. It is decoded
//     path-style: query-style decoding turns '+' into a space and breaks raw
//     values. A space inside the value is read back as '+', repairing a
//     value that went through such a decoder on its way to us;
//   - raw padding: each item is split on its first '=' only;
//   - as a fallback, unpadded and URL-safe base64.
//
// The algorithm item is required: treating a missing algorithm as RSA256
// would let a client skip algorithm negotiation silently. ECC224 is listed by
// AlipayHK but no SDK implements it and its hash is unpublished, so it is
// rejected as unsupported. Headers over MaxHeaderLen bytes are rejected before
// any parsing.
//
// FormatHeader emits exactly the form the strictest SDKs expect: the Java SDK
// takes the third comma item and splits it on '=' into exactly two parts,
// so the value is escaped with every '=' as %3D; the Go SDK query-unescapes
// it, which is safe because '+' is always escaped as %2B.
//
// # Keys
//
// The SDKs hold private keys as base64 PKCS#8 DER without PEM armour and
// public keys as base64 X.509 SubjectPublicKeyInfo DER; operators usually
// hold PEM files. ParsePublicKey and ParsePrivateKey accept both, plus
// PKCS#1, and reject non-RSA keys and keys under 2048 bits.
//
// # Prepared keys and signers
//
// A long-lived caller loads its keys once. NewPublicKey (or LoadPublicKey)
// prepares an RSA public key for verification: the modulus' Montgomery
// constants, which crypto/rsa rebuilds on every call, are computed once
// with filippo.io/bigmod (the standard library's own bigmod, exported), and
// PublicKey.Verify then compares the whole expected encoded message, exactly
// as RFC 8017 section 8.2.2. It accepts and rejects what crypto/rsa does; the tests
// and a fuzz target hold it to that.
//
// NewSigner (or LoadSigner) loads a private key once into the signing
// backend chosen at compile time: pure Go by default (crypto/rsa,
// constant-time), OpenSSL's libcrypto with -tags openssl (cgo, needs the
// libcrypto headers: Debian's libssl-dev). Backend names the one compiled
// in. Both give byte-identical signatures. Signer.Close frees the OpenSSL
// key; one that is never closed is freed when the Signer is garbage
// collected.
//
// The package-level Verify and Sign are crypto/rsa as is, for one-off use.
//
// # Times
//
// Request-Time arrives as epoch milliseconds (Java and Go SDKs), as ISO-8601
// with an offset (the documentation), or with 7 fractional digits (.NET).
// ParseTime accepts all of them; FormatTime emits RFC 3339 UTC with
// milliseconds.
//
// # Errors
//
// Every error returned by this package is an *Error whose message starts with
// the header or field it concerns and never contains the offending value or
// key material, so it can be shown to the caller as is. Its Reason is a short,
// fixed label for metrics; errors.Is also matches the sentinels ErrMalformed,
// ErrAlgorithm, ErrMismatch, ErrTime and ErrKey.
package signature
