package postgres

// Channel returns the LISTEN/NOTIFY channel of the store's schema.
func (s *Store) Channel() string { return s.channel }
