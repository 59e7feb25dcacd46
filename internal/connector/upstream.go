package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// Upstream is what a central session keeps of its upstream login (storage.Session.Upstream),
// so that logout with `federated` can also end the session at the upstream. It holds the
// upstream's ID token, which only serves as id_token_hint: it must not be logged.
type Upstream struct {
	// EndSessionURL is the upstream's OpenID RP-Initiated Logout endpoint.
	EndSessionURL string `json:"endSessionURL,omitempty"`
	// IDTokenHint is the upstream ID token of the login.
	IDTokenHint string `json:"idTokenHint,omitempty"`
	// ClientID is Hallpass's client ID at the upstream.
	ClientID string `json:"clientID,omitempty"`
}

// Marshal encodes u for storage; an Upstream without a logout endpoint encodes as nil.
func (u Upstream) Marshal() []byte {
	if u.EndSessionURL == "" {
		return nil
	}
	b, _ := json.Marshal(u) // a struct of strings always encodes
	return b
}

// ErrNoUpstreamLogout means the upstream login left nothing to end: the connection has no
// upstream session (Database, LDAP) or the upstream offers no end-session endpoint.
var ErrNoUpstreamLogout = errors.New("the upstream offers no logout")

// LogoutURL returns where to send the browser to end the upstream session of a login that
// stored upstream: the upstream's end-session endpoint with its id_token_hint and client_id.
// postLogoutRedirect and state are sent only when non-empty; postLogoutRedirect must be
// registered at the upstream, so the caller passes one the administrator has registered
// (Hallpass's own federated-logout return). It fails with ErrNoUpstreamLogout when there is
// nothing to end.
func LogoutURL(upstream []byte, postLogoutRedirect, state string) (*url.URL, error) {
	if len(upstream) == 0 {
		return nil, ErrNoUpstreamLogout
	}
	var u Upstream
	if err := json.Unmarshal(upstream, &u); err != nil {
		return nil, fmt.Errorf("read upstream logout information: %w", err)
	}
	if u.EndSessionURL == "" {
		return nil, ErrNoUpstreamLogout
	}
	end, err := url.Parse(u.EndSessionURL)
	if err != nil || (end.Scheme != "https" && end.Scheme != "http") {
		return nil, fmt.Errorf("upstream end-session URL %q is not an http(s) URL", u.EndSessionURL)
	}
	q := end.Query()
	if u.IDTokenHint != "" {
		q.Set("id_token_hint", u.IDTokenHint)
	}
	if u.ClientID != "" {
		q.Set("client_id", u.ClientID)
	}
	if postLogoutRedirect != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	if state != "" {
		q.Set("state", state)
	}
	end.RawQuery = q.Encode()
	return end, nil
}
