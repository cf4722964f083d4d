package signature

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKeyVersion(t *testing.T) {
	for _, v := range []string{"1", "0", "42", "4294967296", "v2.1_a-b", "2024-05", strings.Repeat("9", 32)} {
		if err := CheckKeyVersion(v); err != nil {
			t.Errorf("CheckKeyVersion(%q) = %v, want nil", v, err)
		}
	}
	for _, v := range []string{"", "1;2", "1 ", " 1", "1,2", "1=2", "é", "1\x00", strings.Repeat("9", 33),
		// Zero padding does not make a long version short: a 33-byte
		// version cannot travel in a Signature header, whatever it means.
		strings.Repeat("0", 32) + "1"} {
		err := CheckKeyVersion(v)
		if !errors.Is(err, ErrMalformed) || ReasonOf(err) != ReasonMalformed {
			t.Errorf("CheckKeyVersion(%q) = %v, want a malformed error", v, err)
			continue
		}
		if want := "keyVersion must be 1-32 letters, digits, '.', '_' or '-'"; err.Error() != want {
			t.Errorf("CheckKeyVersion(%q) message %q, want %q", v, err, want)
		}
	}
}

// TestParseHeaderKeyVersionIsCheckKeyVersion: the header accepts exactly the
// versions CheckKeyVersion accepts (an empty one means the default), so a
// key registered under any valid version can be selected by a caller.
func TestParseHeaderKeyVersionIsCheckKeyVersion(t *testing.T) {
	for _, v := range []string{"1", "v2.1_a-b", strings.Repeat("7", 32), strings.Repeat("7", 33), "1;2", "a b", "x/y", "%31"} {
		h, err := ParseHeader("algorithm=RSA256,keyVersion=" + v + ",signature=A%2B%2B%2F%2B%2B%2F%2FAQL%2BPw%3D%3D")
		want := CheckKeyVersion(v)
		switch {
		case want == nil && (err != nil || h.KeyVersion != v):
			t.Errorf("keyVersion %q: ParseHeader = %+v, %v; CheckKeyVersion accepts it", v, h, err)
		case want != nil && (err == nil || err.Error() != "Signature: "+want.Error()):
			t.Errorf("keyVersion %q: ParseHeader error %v, want %q", v, err, "Signature: "+want.Error())
		}
	}
}
