package redisstore

import "fmt"

// Identity names the keyspace this Store works on: server, database and
// key prefix, not the credentials (a rotated password is still the same
// outbox). The egress handler keeps one delivery runner per outbox and
// client_id. "" if the options do not resolve (Provision then failed
// anyway).
func (s *Store) Identity() string {
	o, err := s.options()
	if err != nil {
		return ""
	}
	prefix := o.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return fmt.Sprintf("redis:%s/%d/%s", o.Addr, o.DB, prefix)
}
