package signature

import (
	"strconv"
	"time"

	"github.com/caddy-alipay/ordersync/message"
)

// maxTimeLen bounds Request-Time; the longest accepted form,
// "2006-01-02T15:04:05.999999999+07:00", is 35 bytes.
const maxTimeLen = 64

// ParseTime parses a Request-Time (or Response-Time) value: epoch
// milliseconds (digits only, as the Java and Go SDKs send), or ISO-8601
// "YYYY-MM-DDTHH:MM:SS[.f]" followed by 'Z' or a ±hh:mm offset, with 0 to 9
// fractional digits (.NET sends 7). The result is in UTC. Errors are *Error
// with ReasonTime and mention Request-Time.
func ParseTime(v string) (time.Time, error) {
	switch {
	case v == "":
		return time.Time{}, newError(ReasonTime, "Request-Time: missing")
	case len(v) > maxTimeLen:
		return time.Time{}, newError(ReasonTime, "Request-Time: longer than "+strconv.Itoa(maxTimeLen)+" bytes")
	case allDigits(v):
		// The body's epoch rule (up to year 9999), so that no time is
		// read one way in a header and another in a body.
		ms, err := message.ParseEpochMillis(v)
		if err != nil {
			return time.Time{}, newError(ReasonTime, "Request-Time: epoch milliseconds out of range")
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	return parseISO(v)
}

func parseISO(v string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, newError(ReasonTime, "Request-Time: not epoch milliseconds or ISO-8601")
	}
	// Fixed prefix "YYYY-MM-DDTHH:MM:SS".
	if len(v) < 19 || v[4] != '-' || v[7] != '-' || (v[10] != 'T' && v[10] != 't') || v[13] != ':' || v[16] != ':' {
		return bad()
	}
	year, ok1 := digits(v[0:4])
	month, ok2 := digits(v[5:7])
	day, ok3 := digits(v[8:10])
	hour, ok4 := digits(v[11:13])
	minute, ok5 := digits(v[14:16])
	sec, ok6 := digits(v[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return bad()
	}

	rest := v[19:]
	nsec := 0
	if rest != "" && rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		frac := n - 1
		switch {
		case frac == 0:
			return bad()
		case frac > 9:
			// time.Parse would silently truncate; a sender this precise is
			// more likely sending garbage.
			return time.Time{}, newError(ReasonTime, "Request-Time: more than 9 fractional-second digits")
		}
		nsec, _ = digits(rest[1:n])
		for i := frac; i < 9; i++ {
			nsec *= 10
		}
		rest = rest[n:]
	}

	offset := 0
	switch {
	case rest == "":
		// A local time cannot be placed on the timeline; the docs require a zone.
		return time.Time{}, newError(ReasonTime, "Request-Time: ISO-8601 needs a zone (Z or ±hh:mm)")
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm {
			return bad()
		}
		if oh > 23 || om > 59 {
			return time.Time{}, newError(ReasonTime, "Request-Time: zone offset out of range")
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad()
	}

	if month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, newError(ReasonTime, "Request-Time: date or time field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), nil
}

// FormatTime returns t as the gateway writes every time
// (message.TimeLayout), e.g. 2026-11-25T13:12:21.123Z: the form of
// Response-Time.
func FormatTime(t time.Time) string { return message.FormatTime(t) }

// FormatEpochMillis returns t as epoch milliseconds, the Request-Time form
// the Java and Go SDKs send, e.g. 1742977506708.
func FormatEpochMillis(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// CheckWindow returns an *Error with ReasonTime when t is more than window
// before or after now. A window of 0 (or less) turns the check off.
func CheckWindow(t, now time.Time, window time.Duration) error {
	if window <= 0 {
		return nil
	}
	// Sub saturates at ±maxDuration, so compare against -window rather than
	// negating d, which would overflow for the minimum duration.
	if d := now.Sub(t); d > window || d < -window {
		return newError(ReasonTime, "Request-Time: outside the allowed window of "+window.String())
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// digits parses a short, all-digit string; ok is false for anything else.
func digits(s string) (n int, ok bool) {
	if !allDigits(s) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
