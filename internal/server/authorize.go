package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// handleAuthorize serves /authorize over GET and POST (OIDC Core §3.1.2.1).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if !s.openPage(w, r, "The authorization endpoint") {
		return
	}
	st := s.state.Load()
	req, client, err := parseAuthorizeRequest(st.cfg, r.Form)
	var pe *pageError
	var re *redirectError
	switch {
	case errors.As(err, &pe):
		s.renderError(w, http.StatusBadRequest, pe.message)
		return
	case errors.As(err, &re):
		s.metrics.authorization.WithLabelValues(string(re.err.Code)).Inc()
		s.sendAuthError(w, st, re.req, re.err)
		return
	}
	s.authorize(w, r, st, req, client)
}

// authorize decides between a silent answer from the central session and the login page.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, client config.Client) {
	ctx := r.Context()
	var hint *idTokenClaims
	if req.IDTokenHint != "" {
		hint = new(idTokenClaims)
		if err := st.keys.verify(req.IDTokenHint, st.cfg.Issuer, hint); err != nil {
			s.sendAuthError(w, st, req, newError(ErrInvalidRequest, "id_token_hint is not an ID token of this server"))
			return
		}
	}
	sess, found, err := s.currentSession(ctx, r, st)
	if err != nil {
		s.failAuthorization(w, r, st, req, internalError("load the browser's session", err))
		return
	}
	var current *storage.Session
	if found {
		current = &sess
	}
	refusal := silentLoginRefusal(client, current, req, hint, s.now())
	lacking := false
	if refusal == nil {
		if lacking, err = s.lacksSecondFactor(ctx, st, client, req, sess); err != nil {
			s.failAuthorization(w, r, st, req, internalError("load the user's second factors", err))
			return
		}
	}
	if lacking {
		if !req.PromptNone {
			s.metrics.authorization.WithLabelValues("step_up").Inc()
			s.startStepUp(w, r, st, req, client, sess)
			return
		}
		refusal = newError(ErrInteractionRequired, "the application requires a second factor the session does not have")
	}
	if refusal == nil {
		sess, err = s.useSession(ctx, st, sess, client.ID)
		if errors.Is(err, errSessionEnded) {
			refusal = newError(ErrLoginRequired, "the session has ended")
		} else if err != nil {
			s.failAuthorization(w, r, st, req, internalError("record the session's use", err))
			return
		}
	}
	if refusal == nil {
		s.metrics.authorization.WithLabelValues("sso").Inc()
		s.completeAuthorization(w, r, st, req, sess)
		return
	}
	if req.PromptNone {
		s.metrics.authorization.WithLabelValues(string(refusal.Code)).Inc()
		s.sendAuthError(w, st, req, refusal)
		return
	}
	s.metrics.authorization.WithLabelValues("login").Inc()
	s.startLogin(w, r, st, req)
}

// silentLoginRefusal says why the session cannot answer this request without the login
// page, or nil when it can (docs/architecture.md, "Silent login"). sess is nil when the
// browser has no valid session.
//
// login_required means the user has to authenticate (again); interaction_required means
// a valid session exists but the request asks for another connection than the one the user
// signed in with, so the user has to choose one.
func silentLoginRefusal(client config.Client, sess *storage.Session, req *authorizeRequest, hint *idTokenClaims, now time.Time) *oauthError {
	switch {
	case sess == nil:
		return newError(ErrLoginRequired, "the user is not signed in")
	case !client.SingleSignOn:
		return newError(ErrLoginRequired, "single sign-on is off for this application")
	case !sess.Reusable:
		return newError(ErrLoginRequired, "the session was created by an application without single sign-on")
	case req.PromptLogin:
		return newError(ErrLoginRequired, "the request asks for a new login")
	case req.Connection != "" && req.Connection != sess.Connection:
		return newError(ErrInteractionRequired, "the user signed in with another connection")
	case !slices.Contains(client.Connections, sess.Connection):
		return newError(ErrInteractionRequired, "the user signed in with a connection this application does not use")
	case req.MaxAge >= 0 && now.Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second:
		return newError(ErrLoginRequired, "the authentication is older than max_age")
	case hint != nil && hint.Subject != sess.Claims.Subject:
		return newError(ErrLoginRequired, "the signed-in user is not the one of id_token_hint")
	}
	return nil
}

// completeAuthorization issues a code in the session and sends it to the client, or, for a
// sign-in on the device page, approves the device code.
func (s *Server) completeAuthorization(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, sess storage.Session) {
	if req.Device != "" {
		s.approveDevice(w, r, st, req.Device, sess)
		return
	}
	code, err := s.issueCode(st, req, sess)
	if err != nil {
		s.failAuthorization(w, r, st, req, internalError("issue the authorization code", err))
		return
	}
	s.sendAuthResponse(w, st, req, map[string]string{"code": code})
}

// codeRedirectURI is the redirect_uri the token request must repeat (RFC 6749 §4.1.3): the
// authorization request's, or none when it named none.
func codeRedirectURI(req *authorizeRequest) string {
	if req.RedirectURIOmitted {
		return ""
	}
	return req.RedirectURI
}

// authorizationCode is what a code carries from /authorize to /token. A code is this record
// sealed with XChaCha20-Poly1305 under the key every replica derives from the signing keys, as a
// login transaction is, so issuing one writes nothing to storage (ADR 0012): only its
// redemption is recorded, which keeps it single use. The user's claims are not in it; the
// redemption reads them from the session, which it has to hold anyway.
type authorizationCode struct {
	ClientID string `json:"c"`
	// RedirectURI is empty when the authorization request named none.
	RedirectURI string   `json:"r,omitempty"`
	Scopes      []string `json:"s"`
	// Audience is the identifier of the API the access token is for; empty for none.
	Audience      string `json:"a,omitempty"`
	Nonce         string `json:"n,omitempty"`
	CodeChallenge string `json:"p,omitempty"`
	SessionIDHash string `json:"h"`
	// Expires is in Unix nanoseconds, so the code's lifetime is kept exactly.
	Expires int64 `json:"e"`
}

func (s *Server) issueCode(st *state, req *authorizeRequest, sess storage.Session) (string, error) {
	code, err := st.keys.sealer.seal(purposeAuthorizationCode, authorizationCode{
		ClientID:      req.ClientID,
		RedirectURI:   codeRedirectURI(req),
		Scopes:        req.Scopes,
		Audience:      req.Audience,
		Nonce:         req.Nonce,
		CodeChallenge: req.CodeChallenge,
		SessionIDHash: sess.IDHash,
		Expires:       s.now().Add(st.cfg.Tokens.AuthorizationCode.Duration).UnixNano(),
	})
	if err != nil {
		return "", fmt.Errorf("seal authorization code: %w", err)
	}
	return code, nil
}

// failAuthorization answers a valid authorization request that failed on the server's
// side: the cause is logged, and the client gets server_error in the protocol (at its
// redirect URI with state and iss, or by web_message), never a page that a silent renewal's
// hidden iframe would wait on forever.
func (s *Server) failAuthorization(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, e *oauthError) {
	s.logger.ErrorContext(r.Context(), "authorization request failed", "client", req.ClientID, "err", e)
	s.metrics.authorization.WithLabelValues(string(e.Code)).Inc()
	s.sendAuthError(w, st, req, e)
}

// serverError logs the cause and shows the user a page without details.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
	s.renderError(w, http.StatusInternalServerError, "Something went wrong on our side. Please try again.")
}
