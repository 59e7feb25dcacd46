package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hallpass/hallpass/internal/passhash"
)

// newPasswordProblem says what is wrong with the new password of a form (its "new-password"
// and "confirm-password" fields), or "" when there is nothing wrong.
func newPasswordProblem(form url.Values) string {
	next := form.Get("new-password")
	switch {
	case len(next) < minPasswordLength || len(next) > maxCredentialBytes:
		return fmt.Sprintf("Choose a new password of at least %d characters.", minPasswordLength)
	case next != form.Get("confirm-password"):
		return "The new password and its confirmation differ."
	}
	return ""
}

// hashNewPassword hashes a password the user chose, within the server's budget of
// concurrent password hashes. When it cannot, it has answered the request (busy, through
// retry, or a server error) and returns false.
func (s *Server) hashNewPassword(ctx context.Context, w http.ResponseWriter, r *http.Request, password string, retry func(status int, msg string)) (string, bool) {
	release, ok := s.acquireVerification(ctx)
	if !ok {
		w.Header().Set("Retry-After", busyRetryAfter)
		retry(http.StatusServiceUnavailable, msgBusy)
		return "", false
	}
	hash, err := passhash.Hash(password)
	release()
	if err != nil {
		s.serverError(w, r, fmt.Errorf("hash the new password: %w", err))
		return "", false
	}
	return hash, true
}
