package signature

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	ok := []struct {
		in   string
		want time.Time
	}{
		{"1742977506708", time.UnixMilli(1742977506708)},
		{"0", time.UnixMilli(0)},
		{"253402300799999", time.UnixMilli(253402300799999)},
		{"2024-05-22T06:42:21+05:30", utc(2024, 5, 22, 1, 12, 21, 0)},
		{"2026-11-25T21:12:21+08:00", utc(2026, 11, 25, 13, 12, 21, 0)},
		{"2026-11-25T13:12:21.1234567Z", utc(2026, 11, 25, 13, 12, 21, 123456700)},
		{"2026-11-25T13:12:21.123Z", utc(2026, 11, 25, 13, 12, 21, 123000000)},
		{"2026-11-25T13:12:21-03:15", utc(2026, 11, 25, 16, 27, 21, 0)},
		{"2026-11-25T13:12:21-00:00", utc(2026, 11, 25, 13, 12, 21, 0)},
		{"2026-11-25t13:12:21z", utc(2026, 11, 25, 13, 12, 21, 0)},
		{"2024-02-29T23:59:59.999999999Z", utc(2024, 2, 29, 23, 59, 59, 999999999)},
		{"2025-12-31T23:30:00-01:00", utc(2026, 1, 1, 0, 30, 0, 0)},
	}
	// Every fractional-digit count from 0 to 9.
	frac := "123456789"
	for n := 0; n <= 9; n++ {
		in, ns := "2026-11-25T13:12:21Z", 0
		if n > 0 {
			in = "2026-11-25T13:12:21." + frac[:n] + "Z"
			for i, c := range frac {
				ns *= 10
				if i < n {
					ns += int(c - '0')
				}
			}
		}
		ok = append(ok, struct {
			in   string
			want time.Time
		}{in, utc(2026, 11, 25, 13, 12, 21, ns)})
	}
	for _, tc := range ok {
		got, err := ParseTime(tc.in)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, want %v in UTC", tc.in, got, tc.want)
		}
		// Cross-check the ISO forms with the standard library.
		if !allDigits(tc.in) {
			std, err := time.Parse(time.RFC3339Nano, strings.NewReplacer("t", "T", "z", "Z").Replace(tc.in))
			if err != nil || !std.Equal(got) {
				t.Errorf("ParseTime(%q) = %v, time.Parse = %v, %v", tc.in, got, std, err)
			}
		}
	}

	bad := []struct{ in, msg string }{
		{"", "Request-Time: missing"},
		{"garbage", "Request-Time: not epoch milliseconds or ISO-8601"},
		{" 1742977506708", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"-1", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"1.7e12", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"1234567890123456", "Request-Time: epoch milliseconds out of range"},
		// The body's epoch rule: nothing after 9999-12-31T23:59:59.999Z.
		{"253402300800000", "Request-Time: epoch milliseconds out of range"},
		{"999999999999999", "Request-Time: epoch milliseconds out of range"},
		{"2024-05-22T06:42:21", "Request-Time: ISO-8601 needs a zone (Z or ±hh:mm)"},
		{"2024-05-22 06:42:21Z", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"2024-05-22T06:42:21.Z", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"2024-05-22T06:42:21.1234567890Z", "Request-Time: more than 9 fractional-second digits"},
		{"2024-05-22T06:42:21+0530", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"2024-05-22T06:42:21+05:30:00", "Request-Time: not epoch milliseconds or ISO-8601"},
		{"2024-05-22T06:42:21+24:00", "Request-Time: zone offset out of range"},
		{"2024-13-01T00:00:00Z", "Request-Time: date or time field out of range"},
		{"2023-02-29T00:00:00Z", "Request-Time: date or time field out of range"},
		{"2024-05-22T24:00:00Z", "Request-Time: date or time field out of range"},
		{"2024-05-22T23:59:60Z", "Request-Time: date or time field out of range"},
		{"2024-05-00T00:00:00Z", "Request-Time: date or time field out of range"},
		{"2O24-05-22T06:42:21Z", "Request-Time: not epoch milliseconds or ISO-8601"},
		{strings.Repeat("9", 65), "Request-Time: longer than 64 bytes"},
	}
	for _, tc := range bad {
		_, err := ParseTime(tc.in)
		if err == nil {
			t.Errorf("ParseTime(%q) accepted", tc.in)
			continue
		}
		if err.Error() != tc.msg || !errors.Is(err, ErrTime) {
			t.Errorf("ParseTime(%q) = %v, want %q (ErrTime)", tc.in, err, tc.msg)
		}
	}
}

func TestFormatTime(t *testing.T) {
	in := time.Date(2026, 11, 25, 21, 12, 21, 123456789, time.FixedZone("HKT", 8*3600))
	if got, want := FormatTime(in), "2026-11-25T13:12:21.123Z"; got != want {
		t.Fatalf("FormatTime = %q, want %q", got, want)
	}
	if got, want := FormatTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), "2026-01-02T03:04:05.000Z"; got != want {
		t.Fatalf("FormatTime = %q, want %q", got, want)
	}
	back, err := ParseTime(FormatTime(in))
	if err != nil || !back.Equal(in.Truncate(time.Millisecond)) {
		t.Fatalf("round trip: %v, %v", back, err)
	}
}

func TestFormatEpochMillis(t *testing.T) {
	in := time.Date(2025, 3, 26, 8, 25, 6, 708999999, time.UTC)
	if got, want := FormatEpochMillis(in), "1742977506708"; got != want {
		t.Fatalf("FormatEpochMillis = %q, want %q", got, want)
	}
	back, err := ParseTime(FormatEpochMillis(in))
	if err != nil || !back.Equal(in.Truncate(time.Millisecond)) {
		t.Fatalf("round trip: %v, %v", back, err)
	}
}

func TestCheckWindow(t *testing.T) {
	now := time.Date(2026, 11, 25, 13, 12, 21, 0, time.UTC)
	w := 5 * time.Minute
	cases := []struct {
		name   string
		t      time.Time
		window time.Duration
		ok     bool
	}{
		{"now", now, w, true},
		{"just inside past", now.Add(-w), w, true},
		{"just inside future", now.Add(w), w, true},
		{"too old", now.Add(-w - time.Millisecond), w, false},
		{"too far in the future", now.Add(w + time.Millisecond), w, false},
		{"zero time", time.Time{}, w, false},
		{"far future saturates Sub", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), w, false},
		{"off: ancient time", time.Time{}, 0, true},
		{"off: negative window", now.Add(time.Hour), -time.Second, true},
	}
	for _, tc := range cases {
		err := CheckWindow(tc.t, now, tc.window)
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckWindow = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil && (err.Error() != "Request-Time: outside the allowed window of 5m0s" || !errors.Is(err, ErrTime)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// The minimum-duration case: now far in the past of t.
	if err := CheckWindow(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, w); err == nil {
		t.Error("saturated negative difference accepted")
	}
}
