package bboltstore

// Identity names the file this Store works on, for whoever must tell two
// configurations of the same outbox apart from two outboxes (the egress
// handler keeps one delivery runner per outbox and client_id): two
// spellings of one path give the same identity. "" if the path does not
// resolve (Provision then failed anyway).
func (s *Store) Identity() string {
	path, err := resolvePath(s.Path)
	if err != nil {
		return ""
	}
	return "bbolt:" + path
}
