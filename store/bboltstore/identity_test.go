package bboltstore

import (
	"path/filepath"
	"testing"
)

// TestIdentity: two spellings of one file are one store; two files are two.
func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	a := (&Store{Path: filepath.Join(dir, "x", "..", "push.db")}).Identity()
	b := (&Store{Path: filepath.Join(dir, "push.db")}).Identity()
	c := (&Store{Path: filepath.Join(dir, "other.db")}).Identity()
	if a == "" || a != b || a == c {
		t.Errorf("identities %q %q %q", a, b, c)
	}
}
