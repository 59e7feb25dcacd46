package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/storage"
)

// Both logout endpoints end the same sessions: every session this browser holds (its SSO
// session and the sessions of clients with single sign-on off tied to it, session.go) and
// the session a valid id_token_hint's sid names, wherever it is. Each ended session's
// refresh and access tokens are revoked and its clients get back-channel logout tokens.
//
// A request that would end a session asks the user first (RP-Initiated Logout §2 allows
// logging out without asking only when the request is known to come from the RP) unless it
// carries an id_token_hint this server signed for the browser's user and one of the
// browser's sessions: a bare cross-site link or image must not sign anyone out (logout
// CSRF). The confirmation is a form posted back with the browser's CSRF token.

// handleEndSession is the end_session_endpoint (OIDC RP-Initiated Logout 1.0), over GET and
// POST. It returns to post_logout_redirect_uri only when the client is identified
// (client_id or a valid id_token_hint) and the URI is registered for it exactly; otherwise
// the user sees the signed-out page. A hint this server did not sign (tampered or foreign)
// is dropped: after confirmation the user is signed out but never sent to the request's
// target.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readLogoutRequest(w, r, "post_logout_redirect_uri")
	if !ok {
		return
	}
	next := ""
	if client, ok := req.st.cfg.Client(req.clientID); ok && req.target != "" && slices.Contains(client.PostLogoutRedirectURIs, req.target) {
		u, _ := url.Parse(req.target)
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		next = u.String()
	}
	// A target without a trusted hint could be anyone's: the user confirms even when there
	// is nothing to end, and is then not sent there unless it is registered.
	s.logout(w, r, req, pathEndSession, next, req.target != "" && req.hint == nil, "post_logout_redirect_uri", "state")
}

// handleAuth0Logout is Auth0's /v2/logout: returnTo must be one of the client's registered
// logout URLs; with a client and no returnTo the first of them is used. With federated the
// user also goes through the upstream IdP's logout (federated.go) when the session has one.
// It takes an id_token_hint like the end-session endpoint, which spares the user the
// confirmation.
func (s *Server) handleAuth0Logout(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readLogoutRequest(w, r, "returnTo")
	if !ok {
		return
	}
	next := ""
	if client, ok := req.st.cfg.Client(req.clientID); ok {
		returnTo := req.target
		if returnTo == "" && len(client.PostLogoutRedirectURIs) > 0 {
			returnTo = client.PostLogoutRedirectURIs[0]
		}
		if returnTo != "" && slices.Contains(client.PostLogoutRedirectURIs, returnTo) {
			next = returnTo
		}
	}
	s.logout(w, r, req, pathAuth0Logout, next, false, "returnTo")
}

// logoutRequest is what both logout endpoints read from a request.
type logoutRequest struct {
	st *state
	// hint is the id_token_hint when this server signed it; untrusted reports a hint it
	// did not sign.
	hint      *idTokenClaims
	untrusted bool
	// clientID is the client_id parameter, or else the hint's audience.
	clientID string
	target   string
}

// readLogoutRequest reads the parameters of a logout request, with the name of its redirect
// parameter; when the request is refused it has answered it and ok is false.
func (s *Server) readLogoutRequest(w http.ResponseWriter, r *http.Request, targetParam string) (logoutRequest, bool) {
	if !s.openPage(w, r, "Sign-out") {
		return logoutRequest{}, false
	}
	req := logoutRequest{st: s.state.Load(), clientID: r.Form.Get("client_id"), target: r.Form.Get(targetParam)}
	if raw := r.Form.Get("id_token_hint"); raw != "" {
		req.hint = new(idTokenClaims)
		if err := req.st.keys.verify(raw, req.st.cfg.Issuer, req.hint); err != nil {
			s.logger.InfoContext(r.Context(), "logout request with an id_token_hint this server did not sign", "err", err)
			req.hint, req.untrusted = nil, true
		}
	}
	if req.hint != nil {
		if req.clientID != "" && !slices.Contains(req.hint.Audience, req.clientID) {
			s.renderError(w, http.StatusBadRequest, "This sign-out request names two different applications. You are still signed in.")
			return logoutRequest{}, false
		}
		if req.clientID == "" && len(req.hint.Audience) > 0 {
			req.clientID = req.hint.Audience[0]
		}
	}
	return req, true
}

// logout ends the sessions of a logout request and sends the user on to next, after the
// user's confirmation unless the request carries a hint for the browser's user and session
// (see above). askAnyway asks even when the browser holds no session. fields names the
// request parameters the confirmation form carries back to path.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, req logoutRequest, path, next string, askAnyway bool, fields ...string) {
	ctx := r.Context()
	sessions, err := s.browserSessions(ctx, r, req.st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !logoutConfirmed(r, req.st) && (req.untrusted || askAnyway || len(sessions) > 0 && !req.hint.namesOneOf(sessions)) {
		carried := []formField{}
		if !req.untrusted {
			carried = formFields(r, req.clientID, append(fields, "id_token_hint")...)
		}
		s.askLogoutConfirmation(w, r, req.st, path, next, carried)
		return
	}
	if req.hint != nil && !req.hint.namesOneOf(sessions) {
		hinted, found, err := s.hintedSession(ctx, req.hint)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if found {
			sessions = append(sessions, hinted)
		}
	}
	req.st.cookies.clear(w, sessionCookie)
	req.st.cookies.clear(w, tiedSessionsCookie)
	var ended []storage.Session
	for _, sess := range sessions {
		ok, err := s.terminateSession(ctx, req.st, sess, endLogout)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if ok {
			ended = append(ended, sess)
		}
	}
	s.finishLogout(w, r, req.st, ended, req.clientID, next, isFederated(r))
}

// namesOneOf reports whether the hint is for the user of one of sessions and, when it has
// a sid, for that very session. A nil hint names none.
func (h *idTokenClaims) namesOneOf(sessions []storage.Session) bool {
	return h != nil && slices.ContainsFunc(sessions, func(sess storage.Session) bool {
		return h.Subject == sess.Claims.Subject && (h.SID == "" || h.SID == sess.SID)
	})
}

// isFederated reports Auth0's federated flag, which is meaningful by its presence alone
// ("/v2/logout?federated").
func isFederated(r *http.Request) bool {
	_, ok := r.Form["federated"]
	return ok
}

// browserSessions returns the sessions the browser's cookies name, valid or not: its SSO
// session first, then the tied sessions of clients with single sign-on off. An expired
// session that the sweeper has not reached yet still has to be ended and announced.
func (s *Server) browserSessions(ctx context.Context, r *http.Request, st *state) ([]storage.Session, error) {
	ids := tiedSessionIDs(r, st)
	if id := st.cookies.value(r, sessionCookie); id != "" {
		ids = append([]string{id}, ids...)
	}
	var out []storage.Session
	for _, id := range ids {
		sess, ok, err := s.sessionByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, sess)
		}
	}
	return out, nil
}

// hintedSession finds the session a hint's sid names among its user's sessions. A subject
// is "<connection>|<user>" (connection names hold no "|"), which names the connection to
// look in.
func (s *Server) hintedSession(ctx context.Context, hint *idTokenClaims) (storage.Session, bool, error) {
	connection, _, ok := strings.Cut(hint.Subject, "|")
	if !ok || hint.SID == "" {
		return storage.Session{}, false, nil
	}
	sessions, err := s.store.ListSessionsBySubject(ctx, connection, hint.Subject)
	if err != nil {
		return storage.Session{}, false, fmt.Errorf("find the id_token_hint's session: %w", err)
	}
	for _, sess := range sessions {
		if sess.SID == hint.SID {
			return sess, true, nil
		}
	}
	return storage.Session{}, false, nil
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
	s.sessionEnded(ctx, st, sess, reason, false)
	return true, nil
}

// terminateSessions is terminateSession for a batch of the sweeper's, in one storage
// transaction. Its announcements wait for room in the back-channel queue rather than being
// dropped, so a mass expiry goes at the pace its logout tokens are sent.
func (s *Server) terminateSessions(ctx context.Context, st *state, sessions []storage.Session, reason string) (ended int, err error) {
	if len(sessions) == 0 {
		return 0, nil
	}
	ids := make([]string, len(sessions))
	for i, sess := range sessions {
		ids[i] = sess.IDHash
	}
	gone, err := s.store.RevokeSessions(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("end sessions (%s): %w", reason, err)
	}
	for _, sess := range sessions {
		if slices.Contains(gone, sess.IDHash) {
			s.sessionEnded(ctx, st, sess, reason, true)
			ended++
		}
	}
	return ended, nil
}

// sessionEnded logs the end of a session that storage deleted and tells its clients.
func (s *Server) sessionEnded(ctx context.Context, st *state, sess storage.Session, reason string, paced bool) {
	level := slog.LevelInfo
	if reason == endExpired {
		// The sweeper logs one line per run: a mass expiry must not flood the log.
		level = slog.LevelDebug
	}
	s.logger.Log(ctx, level, "session ended", "sid", sess.SID, "reason", reason, "clients", len(sess.Clients))
	s.announceLogout(ctx, st, sess, reason, paced)
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

// askLogoutConfirmation shows a form that posts the request back to path with the user's
// confirmation and the browser's CSRF token; next is where the post may be redirected.
func (s *Server) askLogoutConfirmation(w http.ResponseWriter, r *http.Request, st *state, path, next string, fields []formField) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	fields = append([]formField{{"confirm", "yes"}, {"csrf", csrf}}, fields...)
	s.render(w, st, http.StatusOK, "confirm", &pageData{
		Heading: "Sign out?",
		Message: "An application asks to sign you out of every application that uses this sign-in.",
		FormURL: st.endpoint(path),
		Fields:  fields,
	}, pageCSP(st, "", next))
}

func logoutConfirmed(r *http.Request, st *state) bool {
	if r.Method != http.MethodPost || r.PostForm.Get("confirm") != "yes" {
		return false
	}
	return formCSRF(r, st)
}

func redirectAfterLogout(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}
