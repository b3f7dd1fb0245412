package proxy

// OpenStreams counts the streams the server holds, for tests that wait for
// a lingering stream to be freed.
func (s *Server) OpenStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Clients counts the clients of every stream.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.streams {
		st.mu.Lock()
		n += len(st.clients)
		st.mu.Unlock()
	}
	return n
}

// EndedStreams counts the streams a reload ended that still have clients.
func (s *Server) EndedStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ended)
}
