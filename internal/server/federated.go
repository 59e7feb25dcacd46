package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/storage"
)

// Federated logout: with `federated` on /v2/logout (or /oidc/logout), after the central
// session has ended the user also goes through the upstream IdP's logout, which comes
// back to pathFederatedReturn, which continues to the validated returnTo.
//
// A connector that can end its upstream session returns a connector.Upstream, stored as
// JSON in storage.Session.Upstream ({"endSessionURL", "idTokenHint", "clientID"}). A
// session without one (the Database connection, an IdP without an end-session endpoint)
// makes federated a no-op.

// pathFederatedReturn is the post_logout_redirect_uri Hallpass gives upstream IdPs; a
// connector registers issuer + this path with its IdP.
const pathFederatedReturn = "/logout/federated/return"

// federatedContinuationLifetime bounds the round trip through the upstream IdP's logout.
const federatedContinuationLifetime = 10 * time.Minute

// federatedContinuation is where to go after the upstream's logout. It travels as the
// upstream request's state, sealed, so the return endpoint can neither be made into an
// open redirect nor read.
type federatedContinuation struct {
	ClientID string `json:"c,omitempty"`
	Next     string `json:"n,omitempty"`
	Expires  int64  `json:"e"`
}

// upstreamLogoutURL builds the request to the upstream IdP's logout for an ended session,
// or reports false when the session has no usable upstream logout information.
func (s *Server) upstreamLogoutURL(ctx context.Context, st *state, sess storage.Session, clientID, next string) (string, bool) {
	if len(sess.Upstream) == 0 {
		return "", false
	}
	sealed, err := sealContinuation(st, federatedContinuation{ClientID: clientID, Next: next, Expires: s.now().Add(federatedContinuationLifetime).Unix()})
	if err != nil {
		s.logger.ErrorContext(ctx, "seal federated logout state; skipping federated logout", "err", err)
		return "", false
	}
	u, err := connector.LogoutURL(sess.Upstream, st.endpoint(pathFederatedReturn), sealed)
	switch {
	case errors.Is(err, connector.ErrNoUpstreamLogout):
		return "", false
	case err != nil:
		s.logger.WarnContext(ctx, "session has unusable upstream logout information; skipping federated logout", "sid", sess.SID, "connection", sess.Connection, "err", err)
		return "", false
	case !frameable(st.cfg, u):
		s.logger.WarnContext(ctx, "upstream end-session URL is not an https URL; skipping federated logout", "sid", sess.SID, "connection", sess.Connection)
		return "", false
	}
	return u.String(), true
}

// handleFederatedReturn is where the upstream IdP sends the user after its logout. It
// continues to the post-logout redirect validated before leaving, if that client still
// registers it, and otherwise shows the signed-out page.
func (s *Server) handleFederatedReturn(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	st := s.state.Load()
	c, err := openContinuation(st, r.URL.Query().Get("state"), s.now())
	if err == nil && c.Next != "" {
		if client, ok := st.cfg.Client(c.ClientID); ok && registeredLogoutTarget(client.PostLogoutRedirectURIs, c.Next) {
			redirectAfterLogout(w, c.Next)
			return
		}
	}
	s.renderSignedOut(w, st, nil, "")
}

// registeredLogoutTarget reports whether next is a registered URI, or one with the state
// parameter that RP-Initiated Logout added to it.
func registeredLogoutTarget(registered []string, next string) bool {
	if slices.Contains(registered, next) {
		return true
	}
	u, err := url.Parse(next)
	if err != nil {
		return false
	}
	q := u.Query()
	if !q.Has("state") {
		return false
	}
	q.Del("state")
	u.RawQuery = q.Encode()
	return slices.Contains(registered, u.String())
}

var errBadContinuation = errors.New("federated logout state is invalid or expired")

func sealContinuation(st *state, c federatedContinuation) (string, error) {
	return st.keys.sealer.seal(purposeFederatedLogout, c)
}

// openContinuation accepts the previous key's secret too (the sealer tries every key), so a
// key rotation during the round trip does not strand the user at the upstream IdP.
func openContinuation(st *state, sealed string, now time.Time) (federatedContinuation, error) {
	var c federatedContinuation
	if sealed == "" || st.keys.sealer.open(purposeFederatedLogout, sealed, &c) != nil || now.Unix() > c.Expires {
		return federatedContinuation{}, errBadContinuation
	}
	return c, nil
}
