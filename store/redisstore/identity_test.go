package redisstore

import "testing"

// TestIdentity: the keyspace (address, db, prefix) names the store, not
// the credentials; the default prefix spelled out is the same store.
func TestIdentity(t *testing.T) {
	a := (&Store{Address: "127.0.0.1:6390", DB: 2, Password: "one"}).Identity()
	b := (&Store{Address: "127.0.0.1:6390", DB: 2, Password: "two", KeyPrefix: DefaultKeyPrefix}).Identity()
	c := (&Store{Address: "127.0.0.1:6390", DB: 3}).Identity()
	d := (&Store{Address: "127.0.0.1:6390", DB: 2, KeyPrefix: "other:"}).Identity()
	if a == "" || a != b || a == c || a == d {
		t.Errorf("identities %q %q %q %q", a, b, c, d)
	}
}
