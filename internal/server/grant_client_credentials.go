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
	if client.Type != config.ClientMachineToMachine {
		return nil, newError(ErrUnauthorizedClient, "only machine-to-machine applications may use client_credentials")
	}
	var scopes []string
	for _, sc := range strings.Fields(r.PostForm.Get("scope")) {
		// User scopes make no sense without a user.
		if slices.Contains(supportedScopes, sc) {
			return nil, newError(ErrInvalidScope, "scope "+sc+" needs a user; client_credentials has none")
		}
		// Only what the client was allowed (SSOClient.spec.allowedScopes).
		if !slices.Contains(client.AllowedScopes, sc) {
			return nil, newError(ErrInvalidScope, "scope "+sc+" is not allowed for this client")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	g := grant{clientID: client.ID, apiAudience: client.AccessTokenAudience, scopes: scopes, claims: storage.Claims{Subject: client.ID}}
	return s.issueTokens(ctx, st, g, storage.AccessToken{})
}
