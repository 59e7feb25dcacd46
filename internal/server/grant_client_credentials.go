package server

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// grantClientCredentials issues an access token to a machine-to-machine client acting on
// its own behalf (RFC 6749 §4.4): no user, so no ID token and no refresh token.
func (s *Server) grantClientCredentials(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	target, oerr := parseTarget(r.PostForm)
	if oerr != nil {
		return nil, oerr
	}
	requested := strings.Fields(r.PostForm.Get("scope"))
	for _, sc := range requested {
		// User scopes make no sense without a user.
		if slices.Contains(supportedScopes, sc) {
			return nil, newError(ErrInvalidScope, "scope "+sc+" needs a user; client_credentials has none")
		}
	}
	g := grant{clientID: client.ID, claims: storage.Claims{Subject: client.ID}}
	if target.identifier == "" {
		// No API: a token that grants nothing but introspection tells who holds it.
		if len(requested) > 0 {
			return nil, newError(ErrInvalidScope, "scope "+requested[0]+" is no scope without an API; name the API with audience or resource")
		}
		return s.issueTokens(ctx, st, g, storage.AccessToken{})
	}
	api, granted, oerr := resolveTarget(st.cfg, client, target, clientCredentialsFlow)
	if oerr != nil {
		return nil, oerr
	}
	g.api = api
	// No scope asked for: every granted one, as Auth0 does for client credentials.
	if len(requested) == 0 {
		requested = granted
	}
	for _, sc := range requested {
		if !slices.Contains(granted, sc) {
			return nil, newError(ErrInvalidScope, "scope "+sc+" is not granted to this application for the API")
		}
		if !slices.Contains(g.scopes, sc) {
			g.scopes = append(g.scopes, sc)
		}
	}
	return s.issueTokens(ctx, st, g, storage.AccessToken{})
}
