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
// when the client is identified (client_id or id_token_hint) and the URI is registered for
// it exactly; otherwise the user sees the signed-out page. A hint this server did not sign
// is refused without ending anything: someone tampered with the request.
//
// A request to be sent somewhere without an id_token_hint could come from any site, so the
// user confirms it first (RP-Initiated Logout §3 requires asking when there is no hint).
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	st, ok := s.readLogoutForm(w, r)
	if !ok {
		return
	}
	clientID := r.Form.Get("client_id")
	target := r.Form.Get("post_logout_redirect_uri")
	raw := r.Form.Get("id_token_hint")
	if raw == "" && target != "" && !logoutConfirmed(r) {
		s.askLogoutConfirmation(w, r, st)
		return
	}
	if raw != "" {
		var hint idTokenClaims
		if err := st.keys.verify(raw, st.cfg.Issuer, &hint); err != nil {
			s.renderError(w, r, http.StatusBadRequest, "This sign-out request carries an ID token that this server did not issue. You are still signed in.")
			return
		}
		if clientID != "" && !slices.Contains(hint.Audience, clientID) {
			s.renderError(w, r, http.StatusBadRequest, "This sign-out request names two different applications. You are still signed in.")
			return
		}
		if clientID == "" && len(hint.Audience) > 0 {
			clientID = hint.Audience[0]
		}
	}
	if err := s.endSession(r.Context(), w, r, st); err != nil {
		s.serverError(w, r, err)
		return
	}
	if client, ok := st.cfg.Client(clientID); ok && target != "" && slices.Contains(client.PostLogoutRedirectURIs, target) {
		u, _ := url.Parse(target)
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		redirectAfterLogout(w, u.String())
		return
	}
	s.renderSignedOut(w, st)
}

// handleAuth0Logout is Auth0's /v2/logout: returnTo must be one of the client's registered
// logout URLs; with a client and no returnTo the first of them is used. federated=1 would
// also end the upstream IdP's session; the Database connection has none, and upstream
// connections bring their logout with them.
func (s *Server) handleAuth0Logout(w http.ResponseWriter, r *http.Request) {
	st, ok := s.readLogoutForm(w, r)
	if !ok {
		return
	}
	if err := s.endSession(r.Context(), w, r, st); err != nil {
		s.serverError(w, r, err)
		return
	}
	if client, ok := st.cfg.Client(r.Form.Get("client_id")); ok {
		returnTo := r.Form.Get("returnTo")
		if returnTo == "" && len(client.PostLogoutRedirectURIs) > 0 {
			returnTo = client.PostLogoutRedirectURIs[0]
		}
		if returnTo != "" && slices.Contains(client.PostLogoutRedirectURIs, returnTo) {
			redirectAfterLogout(w, returnTo)
			return
		}
	}
	s.renderSignedOut(w, st)
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

// endSession ends the browser's central session: storage deletes it, revokes its refresh
// token families and access tokens in one transaction, and the cookie is cleared.
//
// This is the one place a session ends on a user's request, so logout propagation to the
// session's clients (back- and front-channel, using the returned session's SID and
// Clients) belongs right after RevokeSession.
func (s *Server) endSession(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state) error {
	s.clearSessionCookie(w, st)
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil //nolint:nilerr // no cookie: there is no session to end
	}
	idHash := storage.Hash(c.Value)
	sess, err := s.store.GetSession(ctx, idHash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load session to end: %w", err)
	}
	if err := s.store.RevokeSession(ctx, idHash); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("revoke session: %w", err)
	}
	s.logger.InfoContext(ctx, "session ended", "sid", sess.SID, "clients", len(sess.Clients))
	return nil
}

// askLogoutConfirmation shows a form that posts the same request back with the user's
// confirmation and the browser's CSRF token.
func (s *Server) askLogoutConfirmation(w http.ResponseWriter, r *http.Request, st *state) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	fields := []formField{{"confirm", "yes"}, {"csrf", csrf}}
	for _, name := range []string{"client_id", "post_logout_redirect_uri", "state"} {
		if v := r.Form.Get(name); v != "" {
			fields = append(fields, formField{name, v})
		}
	}
	s.render(w, st, http.StatusOK, "confirm", &pageData{
		Heading: "Sign out?",
		Message: "An application asks to sign you out of every application that uses this sign-in.",
		FormURL: st.endpoint(pathEndSession),
		Fields:  fields,
	}, pageCSP(st, "", r.Form.Get("post_logout_redirect_uri")))
}

func logoutConfirmed(r *http.Request) bool {
	if r.Method != http.MethodPost || r.PostForm.Get("confirm") != "yes" {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	form := []byte(r.PostForm.Get("csrf"))
	return err == nil && len(form) > 0 && subtle.ConstantTimeCompare(form, []byte(c.Value)) == 1
}

func redirectAfterLogout(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}

func (s *Server) renderSignedOut(w http.ResponseWriter, st *state) {
	s.render(w, st, http.StatusOK, "message", &pageData{Heading: "You are signed out", Message: "You have been signed out. You can close this window."}, pageCSP(st, ""))
}
