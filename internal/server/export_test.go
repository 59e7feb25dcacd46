package server

// HoldVerificationSlots takes every slot of the server's bounded verification work
// (password hashing, SAML responses), as a burst of requests would, until release.
func (s *Server) HoldVerificationSlots() (release func()) {
	for range cap(s.verifySlots) {
		s.verifySlots <- struct{}{}
	}
	return func() {
		for range cap(s.verifySlots) {
			<-s.verifySlots
		}
	}
}

// UpstreamRetryDelay is the wait after the nth failed open of a connector in a row.
var UpstreamRetryDelay = upstreamRetryDelay
