package server

import (
	"fmt"
	"net/http"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/passhash"
	"github.com/hallpass/hallpass/internal/storage"
)

// passwordChangeable reports whether the user of sess can change their password on the
// account page: a user who signed up into a Database connection. Users imported from the
// connection's users Secret belong to the administrator's Secret, which the server never
// writes.
func passwordChangeable(st *state, sess storage.Session) bool {
	conn, ok := st.cfg.Connection(sess.Connection)
	if !ok || conn.Type != config.ConnectionDatabase || !conn.Database.SignupEnabled {
		return false
	}
	return signedUp(conn, sess.Claims.Username)
}

// changePassword checks the current password, throttled like a sign-in, and stores the
// new one's hash.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, st *state, sess storage.Session, factors []storage.Factor) {
	ctx := r.Context()
	retry := func(status int, msg string) {
		s.showAccountWith(w, r, st, status, sess, factors, accountNotice{PasswordError: msg})
	}
	if !passwordChangeable(st, sess) {
		s.renderError(w, http.StatusForbidden, "Your password is managed by your administrator or your identity provider.")
		return
	}
	conn, _ := st.cfg.Connection(sess.Connection)
	current, next := r.PostForm.Get("current-password"), r.PostForm.Get("new-password")
	if problem := newPasswordProblem(r.PostForm); problem != "" {
		retry(http.StatusBadRequest, problem)
		return
	}
	release, ok := s.acquireVerification(ctx)
	if !ok {
		w.Header().Set("Retry-After", busyRetryAfter)
		retry(http.StatusServiceUnavailable, msgBusy)
		return
	}
	var hash string
	passed, throttled, wait, err := s.throttledCheck(ctx, loginThrottleKeys(conn.Name, sess.Claims.Username, s.clientIP(r)), func() (bool, error) {
		_, ok, err := s.checkPassword(ctx, conn, sess.Claims.Username, current)
		if err == nil && ok {
			hash, err = passhash.Hash(next)
		}
		return ok, err
	})
	release()
	switch {
	case err != nil:
		s.serverError(w, r, err)
		return
	case throttled:
		retry(http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords. Try again in %d seconds.", waitSeconds(wait)))
		return
	case !passed:
		s.logger.InfoContext(ctx, "password change refused: wrong current password", "audit", "password_change_failed", "connection", conn.Name, "subject", sess.Claims.Subject)
		retry(http.StatusUnauthorized, "Your current password is not right.")
		return
	}
	if err := s.store.SetUserPassword(ctx, conn.Name, sess.Claims.Username, hash); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.logger.InfoContext(ctx, "password changed", "audit", "password_changed", "connection", conn.Name, "subject", sess.Claims.Subject)
	s.showAccountWith(w, r, st, http.StatusOK, sess, factors, accountNotice{Password: "Your password was changed. " +
		"Sessions on other devices stay signed in: end them below if you did not start them."})
}
