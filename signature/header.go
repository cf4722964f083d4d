package signature

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
)

// AlgorithmRSA256 is the only algorithm this package implements:
// RSASSA-PKCS1-v1_5 with SHA-256.
const AlgorithmRSA256 = "RSA256"

// DefaultKeyVersion is used when a Signature header has no keyVersion item,
// and by FormatHeader when given an empty version; every SDK defaults to 1.
const DefaultKeyVersion = "1"

// MaxSignatureLen caps the decoded signature: an RSA signature is as long
// as the key's modulus, and 1024 bytes is an 8192-bit key.
const MaxSignatureLen = 1024

// MaxHeaderLen caps the Signature header. A signature of MaxSignatureLen
// bytes is 1368 base64 characters, at most three times that %-escaped
// (every character a '+', '/' or '='): 8 KiB holds whatever FormatHeader
// writes for one, so every header the gateway sends parses back, while
// bounding the work an abusive one can cause.
const MaxHeaderLen = 8192

// Header is a parsed Signature header.
type Header struct {
	// Algorithm is always AlgorithmRSA256 after a successful parse.
	Algorithm string
	// KeyVersion selects one of the caller's registered keys; DefaultKeyVersion
	// when the header had none.
	KeyVersion string
	// Signature holds the decoded signature bytes.
	Signature []byte
}

// ParseHeader parses a Signature header value such as
// "algorithm=RSA256,keyVersion=1,signature=KEhX...%3D%3D".
// The package documentation lists the variants it accepts.
func ParseHeader(v string) (Header, error) {
	if len(v) > MaxHeaderLen {
		return Header{}, newError(ReasonMalformed, "Signature: longer than "+strconv.Itoa(MaxHeaderLen)+" bytes")
	}
	if trimOWS(v) == "" {
		return Header{}, newError(ReasonMalformed, "Signature: missing header")
	}

	var alg, ver, sig string
	var haveAlg, haveVer, haveSig bool
	// Iterate with Cut rather than strings.Split: no slice allocation on the
	// hot path, and base64 never contains ',' so splitting on it is safe.
	for rest := v; ; {
		item, tail, more := strings.Cut(rest, ",")
		rest = tail
		if item = trimOWS(item); item != "" {
			// Split on the first '=' only: a raw base64 value ends in '=' padding.
			name, value, ok := strings.Cut(item, "=")
			if !ok {
				return Header{}, newError(ReasonMalformed, "Signature: every item must be name=value")
			}
			name, value = trimOWS(name), trimOWS(value)
			switch {
			case strings.EqualFold(name, "algorithm"):
				if haveAlg {
					return Header{}, newError(ReasonMalformed, "Signature: duplicate algorithm= item")
				}
				alg, haveAlg = value, true
			case strings.EqualFold(name, "keyVersion"):
				if haveVer {
					return Header{}, newError(ReasonMalformed, "Signature: duplicate keyVersion= item")
				}
				ver, haveVer = value, true
			case strings.EqualFold(name, "signature"):
				if haveSig {
					return Header{}, newError(ReasonMalformed, "Signature: duplicate signature= item")
				}
				sig, haveSig = value, true
			}
			// Unknown items are ignored so a future field does not break callers.
		}
		if !more {
			break
		}
	}

	if !haveAlg || alg == "" {
		return Header{}, newError(ReasonMalformed, "Signature: missing algorithm= item")
	}
	if !strings.EqualFold(alg, AlgorithmRSA256) {
		return Header{}, newError(ReasonAlgorithm, "Signature: algorithm "+safeToken(alg)+"is not supported (only RSA256)")
	}
	if ver == "" {
		ver = DefaultKeyVersion
	} else if err := CheckKeyVersion(ver); err != nil {
		return Header{}, newError(ReasonMalformed, "Signature: "+err.Error())
	}
	if !haveSig {
		return Header{}, newError(ReasonMalformed, "Signature: missing signature= item")
	}
	if sig == "" {
		return Header{}, newError(ReasonMalformed, "Signature: empty signature= value")
	}
	raw, err := decodeSignature(sig)
	if err != nil {
		return Header{}, err
	}
	if len(raw) > MaxSignatureLen {
		return Header{}, newError(ReasonMalformed, "Signature: signature= longer than "+strconv.Itoa(MaxSignatureLen)+" bytes")
	}
	return Header{Algorithm: AlgorithmRSA256, KeyVersion: ver, Signature: raw}, nil
}

// decodeSignature turns the signature= value into bytes.
func decodeSignature(s string) ([]byte, error) {
	if strings.IndexByte(s, '%') >= 0 {
		// Path-style: '+' stays '+'. Query-style would make it a space.
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, newError(ReasonMalformed, "Signature: bad %-escape in signature= value")
		}
		s = u
	}
	if strings.IndexByte(s, ' ') >= 0 {
		// base64 has no spaces; one here was a '+' mangled by a query-style
		// decoder on the way to us.
		s = strings.ReplaceAll(s, " ", "+")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	return nil, newError(ReasonMalformed, "Signature: not valid base64")
}

// FormatHeader returns the Signature header value for sig, exactly
// "algorithm=RSA256,keyVersion=N,signature=<url-encoded std base64>".
// An empty keyVersion becomes DefaultKeyVersion.
func FormatHeader(keyVersion string, sig []byte) string {
	if keyVersion == "" {
		keyVersion = DefaultKeyVersion
	}
	// QueryEscape matches the Go SDK byte for byte; for the base64 alphabet
	// it only rewrites '+', '/' and '=', so '+' never reaches a
	// query-style decoder unescaped.
	return "algorithm=" + AlgorithmRSA256 + ",keyVersion=" + keyVersion +
		",signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

// trimOWS trims HTTP optional whitespace (spaces and tabs).
func trimOWS(s string) string { return strings.Trim(s, " \t") }

// safeToken returns s followed by a space when it is short and plain enough
// to echo in an error message (an algorithm name), else "".
func safeToken(s string) string {
	if len(s) > 16 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isAlnum(c) || c == '_' || c == '-') {
			return ""
		}
	}
	return s + " "
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
