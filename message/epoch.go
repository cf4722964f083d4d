package message

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// The epoch-millisecond rule, defined once: package schema's
// "epoch-millis" format and Request use ParseEpochMillis for
// orderCreateTime and orderModifyTime, package signature for a
// Request-Time given in epoch milliseconds.
const (
	// MaxEpochMillis is 9999-12-31T23:59:59.999Z, so a normalized time
	// always has a four-digit year.
	MaxEpochMillis = 253402300799999
	// maxEpochDigits is the number of digits of MaxEpochMillis: a longer
	// literal is out of range without parsing it.
	maxEpochDigits = 15
)

// The rules broken by a bad time, phrased for resultMessage.
var (
	ErrNotEpochInt = errors.New("must be an integer (epoch milliseconds)")
	ErrEpochRange  = errors.New("must be between 0 and 253402300799999 (epoch milliseconds)")
)

// TimeLayout is the one form of every time the gateway writes: the
// normalized times the upstream is promised (README, "The upstream
// contract"), Response-Time, the admin API's times. Always UTC, always
// three fractional digits, always "Z" (time.RFC3339Nano would drop
// trailing zeros). Format only UTC times with it (FormatTime).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime returns t in TimeLayout, e.g. 2026-11-25T13:12:21.123Z.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseEpochMillis reads a JSON number literal as epoch milliseconds: a
// plain integer (no fraction, no exponent: 1.0 and 1e3 are not what any SDK
// sends) from 0 to MaxEpochMillis. "-0" is 0. The error is ErrNotEpochInt
// or ErrEpochRange.
func ParseEpochMillis(literal string) (int64, error) {
	neg := strings.HasPrefix(literal, "-")
	digits := strings.TrimPrefix(literal, "-")
	if digits == "" {
		return 0, ErrNotEpochInt
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, ErrNotEpochInt
		}
	}
	if neg && strings.Trim(digits, "0") != "" {
		return 0, ErrEpochRange
	}
	if len(digits) > maxEpochDigits {
		return 0, ErrEpochRange
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxEpochMillis {
		return 0, ErrEpochRange
	}
	return n, nil
}

// appendTime writes ms as a JSON string in TimeLayout, UTC.
func appendTime(b []byte, ms int64) []byte {
	b = append(b, '"')
	b = time.UnixMilli(ms).UTC().AppendFormat(b, TimeLayout)
	return append(b, '"')
}
