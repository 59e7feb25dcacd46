package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Grant types of the token endpoint; each is implemented in its own grant_*.go file.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantClientCredentials = "client_credentials"
	grantDeviceCode        = config.GrantDeviceCode
	grantTokenExchange     = config.GrantTokenExchange
)

// tokenResponse is the successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType is the type of a token exchange's token (RFC 8693 §2.2.1).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// tokenGrant is one grant type of the token endpoint: what answers it, the label of its
// requests in the metrics, and the refusal for a client that may not use it (the one check
// every grant shares, made before the grant is called).
type tokenGrant struct {
	issue   func(s *Server, ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError)
	label   string
	refusal string
}

var tokenGrants = map[string]tokenGrant{
	grantAuthorizationCode: {(*Server).grantAuthorizationCode, "authorization_code", "the application may not use the authorization code grant"},
	grantRefreshToken:      {(*Server).grantRefreshToken, "refresh_token", "the application may not use refresh tokens"},
	grantClientCredentials: {(*Server).grantClientCredentials, "client_credentials", "only machine-to-machine applications may use client_credentials"},
	grantDeviceCode:        {(*Server).grantDeviceCode, "device_code", "the application may not use the device authorization grant"},
	grantTokenExchange:     {(*Server).grantTokenExchange, "token_exchange", "the application may not use token exchange"},
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	client, ok := s.browserTokenEndpointClient(w, r, st)
	if !ok {
		return
	}

	var (
		resp *tokenResponse
		oerr *oauthError
	)
	label := "other"
	gt := r.PostForm.Get("grant_type")
	grant, known := tokenGrants[gt]
	switch {
	case gt == "":
		oerr = newError(ErrInvalidRequest, "grant_type is missing")
	case !known:
		oerr = newError(ErrUnsupportedGrantType, "grant_type is not supported")
	case !client.AllowsGrant(gt):
		label, oerr = grant.label, newError(ErrUnauthorizedClient, grant.refusal)
	default:
		label = grant.label
		resp, oerr = grant.issue(s, r.Context(), st, client, r)
	}
	if oerr != nil {
		s.metrics.tokens.WithLabelValues(label, string(oerr.Code)).Inc()
		if oerr.Code == ErrServerError {
			s.logger.ErrorContext(r.Context(), "token request failed", "client", client.ID, "err", oerr)
			oerr = newError(ErrServerError, "")
		}
		writeError(w, oerr)
		return
	}
	s.metrics.tokens.WithLabelValues(label, "ok").Inc()
	writeJSON(w, http.StatusOK, resp)
}

// redeemInSession issues the tokens of a single-use authorization granted in a central
// session: an authorization code, or an approved device code. A second redemption is refused
// and revokes everything the first one issued, since one of the two presenters is an attacker
// and we cannot tell which. The redemption is recorded and its tokens are stored in one
// transaction, so a second redemption, however close behind, finds them all. what names the
// authorization in error descriptions.
func (s *Server) redeemInSession(ctx context.Context, st *state, client config.Client, redemption storage.CodeRedemption,
	api *config.API, scopes []string, nonce, what string,
) (*tokenResponse, *oauthError) {
	invalid := newError(ErrInvalidGrant, "the "+what+" is invalid or expired")
	var g grant
	var accessToken, refreshToken string
	var jwtAccessToken *storage.AccessToken
	if jwtAccessTokens(api) {
		// A JWT access token is signed before the transaction, with the session as read
		// here: on SQLite the transaction runs on the single writer, which must not wait for
		// an RSA signature. The transaction still refuses the redemption if the session has
		// ended.
		sess, err := s.store.GetSession(ctx, redemption.SessionIDHash)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, invalid
		}
		if err != nil {
			return nil, internalError("load the session of the "+what, err)
		}
		g = sessionGrant(client, api, scopes, nonce, sess)
		var record storage.AccessToken
		if accessToken, record, err = s.newAccessToken(st, g, storage.AccessToken{}); err != nil {
			return nil, internalError("mint access token", err)
		}
		jwtAccessToken = &record
	}
	err := s.store.RedeemCode(ctx, redemption, func(sess storage.Session) (storage.Issued, error) {
		var issued storage.Issued
		var err error
		if jwtAccessToken == nil {
			g = sessionGrant(client, api, scopes, nonce, sess)
			if accessToken, issued.AccessToken, err = s.newAccessToken(st, g, storage.AccessToken{}); err != nil {
				return issued, err
			}
		} else {
			issued.AccessToken = *jwtAccessToken
		}
		if slices.Contains(scopes, scopeOfflineAccess) && client.AllowsGrant(config.GrantRefreshToken) {
			if refreshToken, issued.RefreshFamily, err = s.newRefreshFamily(st, g, sess.Connection); err != nil {
				return issued, err
			}
			issued.AccessToken.RefreshFamilyID = issued.RefreshFamily.ID
		}
		return issued, nil
	})
	switch {
	// An authorization whose session ended answers like an unknown one: it must not tell
	// another client that the user signed out.
	case errors.Is(err, storage.ErrSessionEnded):
		return nil, invalid
	case errors.Is(err, storage.ErrAlreadyExists):
		s.logger.WarnContext(ctx, what+" reused; revoking what it issued", "client", client.ID)
		if err := s.store.RevokeByCode(ctx, redemption.CodeHash); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, internalError("revoke tokens of reused "+what, err)
		}
		return nil, newError(ErrInvalidGrant, "the "+what+" was already used")
	case err != nil:
		return nil, internalError("redeem "+what, err)
	}
	resp, oerr := s.tokenResponse(st, g, accessToken)
	if oerr != nil {
		return nil, oerr
	}
	resp.RefreshToken = refreshToken
	return resp, nil
}

// sessionGrant is the authorization a redeemed code or device code carries, with the user of
// its session and the API and scopes that the config grants now (regrant).
func sessionGrant(client config.Client, api *config.API, scopes []string, nonce string, sess storage.Session) grant {
	return grant{
		clientID:      client.ID,
		api:           api,
		scopes:        scopes,
		claims:        sess.Claims,
		sessionIDHash: sess.IDHash,
		sid:           sess.SID,
		authTime:      sess.AuthTime,
		amr:           sess.AMR,
		nonce:         nonce,
	}
}

// issueTokens mints an access token that no code or refresh family issues (client
// credentials), stores it and answers with it.
func (s *Server) issueTokens(ctx context.Context, st *state, g grant, link storage.AccessToken) (*tokenResponse, *oauthError) {
	token, record, err := s.newAccessToken(st, g, link)
	if err != nil {
		return nil, internalError("generate access token", err)
	}
	if err := s.store.CreateAccessToken(ctx, record); err != nil {
		return nil, internalError("store access token", err)
	}
	return s.tokenResponse(st, g, token)
}

// newAccessToken mints an access token for g and the record storage keeps of it; link
// carries what ties the record to the code or refresh family that issued it. A JWT access
// token is stored like an opaque one, by its digest, so userinfo, introspection and
// revocation treat both alike.
func (s *Server) newAccessToken(st *state, g grant, link storage.AccessToken) (string, storage.AccessToken, error) {
	now := s.now()
	expires := now.Add(g.accessTokenLifetime(st.cfg))
	var token string
	var err error
	if jwtAccessTokens(g.api) {
		token, err = mintJWTAccessToken(st, g, now, expires)
	} else {
		token, err = config.RandomToken(32)
	}
	if err != nil {
		return "", storage.AccessToken{}, err
	}
	link.TokenHash = digest.Of(token)
	link.ClientID = g.clientID
	link.Audience = g.audience()
	link.Scopes = g.scopes
	link.Claims = g.claims
	link.SessionIDHash = g.sessionIDHash
	link.IssuedAt = now
	link.ExpiresAt = expires
	return token, link, nil
}

// jwtAccessTokenClaims are the claims of an RFC 9068 access token (§2.2), plus the groups
// of the groups scope (§2.2.3.1).
type jwtAccessTokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ID       string   `json:"jti"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

func mintJWTAccessToken(st *state, g grant, now, expires time.Time) (string, error) {
	jti, err := config.RandomToken(16)
	if err != nil {
		return "", err
	}
	c := jwtAccessTokenClaims{
		Issuer:   st.cfg.Issuer,
		Subject:  g.claims.Subject,
		Audience: g.api.Identifier,
		ClientID: g.clientID,
		Expiry:   expires.Unix(),
		IssuedAt: now.Unix(),
		ID:       jti,
		Scope:    strings.Join(g.scopes, " "),
		Groups:   claimsForScopes(g.claims, g.scopes).Groups,
	}
	// Only a user's login has these; client credentials have none (§2.2.1).
	if !g.authTime.IsZero() {
		c.AuthTime, c.ACR, c.AMR = g.authTime.Unix(), acrFor(g.amr), g.amr
	}
	return signJWT(st.keys.def.accessToken, c)
}

// tokenResponse answers with an access token and, with the openid scope, an ID token.
func (s *Server) tokenResponse(st *state, g grant, accessToken string) (*tokenResponse, *oauthError) {
	resp := &tokenResponse{
		AccessToken: accessToken,
		TokenType:   "Bearer",
		ExpiresIn:   int64(g.accessTokenLifetime(st.cfg).Seconds()),
		Scope:       strings.Join(g.scopes, " "),
	}
	if slices.Contains(g.scopes, scopeOpenID) {
		var err error
		if resp.IDToken, err = s.mintIDToken(st, g, accessToken); err != nil {
			return nil, internalError("mint ID token", err)
		}
	}
	return resp, nil
}
