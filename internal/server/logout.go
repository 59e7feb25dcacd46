package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/hallpass/hallpass/internal/storage"
)

// handleEndSession is the end_session_endpoint (OIDC RP-Initiated Logout 1.0), over GET and
// POST. It ends the browser's central session and returns to post_logout_redirect_uri only
// when the client is identified (client_id or a valid id_token_hint) and the URI is
// registered for it exactly; otherwise the user sees the signed-out page.
//
// The user confirms first (RP-Initiated Logout §2 requires asking) when the request could
// come from anyone: a redirect target without an id_token_hint, a hint this server did not
// sign (tampered or foreign: after confirmation the user is signed out but never sent to
// the request's target), or a hint for another user or session than the browser's.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	st, ok := s.readLogoutForm(w, r)
	if !ok {
		return
	}
	clientID := r.Form.Get("client_id")
	target := r.Form.Get("post_logout_redirect_uri")
	var hint *idTokenClaims
	untrusted := false
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		hint = new(idTokenClaims)
		if err := st.keys.verify(raw, st.cfg.Issuer, hint); err != nil {
			s.logger.InfoContext(r.Context(), "logout request with an id_token_hint this server did not sign", "err", err)
			hint, untrusted = nil, true
		}
	}
	if hint != nil {
		if clientID != "" && !slices.Contains(hint.Audience, clientID) {
			s.renderError(w, r, http.StatusBadRequest, "This sign-out request names two different applications. You are still signed in.")
			return
		}
		if clientID == "" && len(hint.Audience) > 0 {
			clientID = hint.Audience[0]
		}
	}
	if !logoutConfirmed(r, st) {
		sess, found, err := s.browserSession(r.Context(), r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		mismatch := hint != nil && found && (hint.Subject != sess.Claims.Subject || hint.SID != "" && hint.SID != sess.SID)
		if untrusted || target != "" && hint == nil || mismatch {
			fields := []formField{}
			if !untrusted {
				fields = formFields(r, clientID, "post_logout_redirect_uri", "state")
			}
			s.askLogoutConfirmation(w, r, st, fields)
			return
		}
	}
	ended, err := s.endBrowserSession(r.Context(), w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	next := ""
	if client, ok := st.cfg.Client(clientID); ok && target != "" && slices.Contains(client.PostLogoutRedirectURIs, target) {
		u, _ := url.Parse(target)
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		next = u.String()
	}
	s.finishLogout(w, r, st, ended, clientID, next, isFederated(r))
}

// handleAuth0Logout is Auth0's /v2/logout: returnTo must be one of the client's registered
// logout URLs; with a client and no returnTo the first of them is used. With federated the
// user also goes through the upstream IdP's logout (federated.go) when the session has one.
func (s *Server) handleAuth0Logout(w http.ResponseWriter, r *http.Request) {
	st, ok := s.readLogoutForm(w, r)
	if !ok {
		return
	}
	ended, err := s.endBrowserSession(r.Context(), w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	clientID, next := r.Form.Get("client_id"), ""
	if client, ok := st.cfg.Client(clientID); ok {
		returnTo := r.Form.Get("returnTo")
		if returnTo == "" && len(client.PostLogoutRedirectURIs) > 0 {
			returnTo = client.PostLogoutRedirectURIs[0]
		}
		if returnTo != "" && slices.Contains(client.PostLogoutRedirectURIs, returnTo) {
			next = returnTo
		}
	}
	s.finishLogout(w, r, st, ended, clientID, next, isFederated(r))
}

// isFederated reports Auth0's federated flag, which is meaningful by its presence alone
// ("/v2/logout?federated").
func isFederated(r *http.Request) bool {
	_, ok := r.Form["federated"]
	return ok
}

func (s *Server) readLogoutForm(w http.ResponseWriter, r *http.Request) (*state, bool) {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, r, http.StatusMethodNotAllowed, "Sign-out accepts GET and POST only.")
		return nil, false
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "The request could not be read.")
		return nil, false
	}
	return s.state.Load(), true
}

// browserSession returns the session the browser's cookie names, valid or not: an expired
// session that the sweeper has not reached yet still has to be ended and announced.
func (s *Server) browserSession(ctx context.Context, r *http.Request) (storage.Session, bool, error) {
	id := s.state.Load().cookies.value(r, sessionCookie)
	if id == "" {
		return storage.Session{}, false, nil
	}
	sess, err := s.store.GetSession(ctx, storage.Hash(id))
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Session{}, false, nil
	}
	if err != nil {
		return storage.Session{}, false, fmt.Errorf("load session to end: %w", err)
	}
	return sess, true, nil
}

// endBrowserSession ends the browser's central session on the user's request and clears
// its cookie. It returns the ended session (nil when there was none) for the front-channel
// and federated steps of the signed-out page.
func (s *Server) endBrowserSession(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state) (*storage.Session, error) {
	st.cookies.clear(w, sessionCookie)
	sess, found, err := s.browserSession(ctx, r)
	if err != nil || !found {
		return nil, err
	}
	ended, err := s.terminateSession(ctx, st, sess, endLogout)
	if err != nil || !ended {
		return nil, err
	}
	return &sess, nil
}

// terminateSession is where every session ends, whatever the reason: storage deletes it,
// revokes its refresh token families and deletes its access tokens in one transaction, and
// the session's clients are told by back-channel logout. ended is false when the session
// was already gone, e.g. another replica's sweeper got there first; only the caller that
// ended it announces it, so a client gets one logout token per session.
func (s *Server) terminateSession(ctx context.Context, st *state, sess storage.Session, reason string) (ended bool, err error) {
	err = s.store.RevokeSession(ctx, sess.IDHash)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("end session (%s): %w", reason, err)
	}
	s.logger.InfoContext(ctx, "session ended", "sid", sess.SID, "reason", reason, "clients", len(sess.Clients))
	s.announceLogout(ctx, st, sess, reason)
	return true, nil
}

// endReplacedSession ends the session a browser had before a new login replaced it.
func (s *Server) endReplacedSession(ctx context.Context, st *state, idHash string) error {
	old, err := s.store.GetSession(ctx, idHash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load replaced session: %w", err)
	}
	_, err = s.terminateSession(ctx, st, old, endReplaced)
	return err
}

// RevokeUserSessions ends every central session of one user of one connection, with
// back-channel logout to their clients, and returns how many it ended. It is the
// administrator's "sign this user out everywhere" (hallpass admin revoke-sessions).
func (s *Server) RevokeUserSessions(ctx context.Context, connection, subject string) (int, error) {
	if connection == "" || subject == "" {
		return 0, errors.New("revoke user sessions: connection and subject are required")
	}
	st := s.state.Load()
	sessions, err := s.store.ListSessionsBySubject(ctx, connection, subject)
	if err != nil {
		return 0, fmt.Errorf("revoke user sessions: %w", err)
	}
	n := 0
	for _, sess := range sessions {
		ended, err := s.terminateSession(ctx, st, sess, endRevoked)
		if err != nil {
			return n, fmt.Errorf("revoke user sessions: %w", err)
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// formFields returns the hidden fields that carry a logout request through the confirmation
// page, with the client the request identified.
func formFields(r *http.Request, clientID string, names ...string) []formField {
	var out []formField
	if clientID != "" {
		out = append(out, formField{"client_id", clientID})
	}
	for _, name := range names {
		if v := r.Form.Get(name); v != "" {
			out = append(out, formField{name, v})
		}
	}
	if isFederated(r) {
		out = append(out, formField{"federated", "1"})
	}
	return out
}

// askLogoutConfirmation shows a form that posts the request back with the user's
// confirmation and the browser's CSRF token.
func (s *Server) askLogoutConfirmation(w http.ResponseWriter, r *http.Request, st *state, fields []formField) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	fields = append([]formField{{"confirm", "yes"}, {"csrf", csrf}}, fields...)
	s.render(w, st, http.StatusOK, "confirm", &pageData{
		Heading: "Sign out?",
		Message: "An application asks to sign you out of every application that uses this sign-in.",
		FormURL: st.endpoint(pathEndSession),
		Fields:  fields,
	}, pageCSP(st, "", r.Form.Get("post_logout_redirect_uri")))
}

func logoutConfirmed(r *http.Request, st *state) bool {
	if r.Method != http.MethodPost || r.PostForm.Get("confirm") != "yes" {
		return false
	}
	form := []byte(r.PostForm.Get("csrf"))
	return len(form) > 0 && subtle.ConstantTimeCompare(form, []byte(st.cookies.value(r, csrfCookie))) == 1
}

func redirectAfterLogout(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}
