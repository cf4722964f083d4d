package signature

import "errors"

// Reasons carried by Error.Reason. They are fixed, low-cardinality strings
// so a caller can use them directly as a metrics label.
const (
	// ReasonMalformed: the Signature header is missing, too long or unparsable.
	ReasonMalformed = "malformed"
	// ReasonAlgorithm: the header names an algorithm other than RSA256.
	ReasonAlgorithm = "algorithm"
	// ReasonMismatch: the signature does not verify against the key.
	ReasonMismatch = "mismatch"
	// ReasonTime: a time header is unparsable or outside the allowed window.
	ReasonTime = "time"
	// ReasonKey: a key is unusable (wrong format, not RSA, too short, absent).
	ReasonKey = "key"
)

// Sentinels matched by errors.Is against any *Error of the same Reason, so
// callers can branch without string comparisons.
var (
	// ErrMalformed matches errors with ReasonMalformed.
	ErrMalformed = errors.New("signature: malformed")
	// ErrAlgorithm matches errors with ReasonAlgorithm.
	ErrAlgorithm = errors.New("signature: unsupported algorithm")
	// ErrMismatch matches errors with ReasonMismatch.
	ErrMismatch = errors.New("signature: does not verify")
	// ErrTime matches errors with ReasonTime.
	ErrTime = errors.New("signature: bad time")
	// ErrKey matches errors with ReasonKey.
	ErrKey = errors.New("signature: bad key")
)

// Error is the error type returned by every function of this package.
//
// Msg is complete and safe to show a client: it starts with the header or
// field concerned ("Signature: ", "Request-Time: ", "public key: ",
// "private key: "), names the broken rule, and never echoes the whole value
// or any key material. Reason is one of the Reason* constants.
type Error struct {
	Reason string
	Msg    string
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

// Is reports whether target is the sentinel for e.Reason.
func (e *Error) Is(target error) bool {
	switch e.Reason {
	case ReasonMalformed:
		return target == ErrMalformed
	case ReasonAlgorithm:
		return target == ErrAlgorithm
	case ReasonMismatch:
		return target == ErrMismatch
	case ReasonTime:
		return target == ErrTime
	case ReasonKey:
		return target == ErrKey
	}
	return false
}

// ReasonOf returns the Reason of the *Error in err's chain, or "" when err
// is nil or did not come from this package.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(reason, msg string) error { return &Error{Reason: reason, Msg: msg} }
