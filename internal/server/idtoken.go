package server

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// acrPassword is the `acr` of every login this server performs itself: single-factor
// password authentication. Relying parties that need more can check it. A login at an
// upstream IdP is acrFederated: this server does not know how the upstream authenticated
// the user, so it must not claim a password was checked.
// A login with a second factor is acrMFA, whatever its first factor.
const (
	acrPassword  = "urn:hallpass:acr:password"
	acrFederated = "urn:hallpass:acr:federated"
)

// acrFor is the acr of a login with these authentication methods.
func acrFor(amr []string) string {
	if hasMFA(amr) {
		return acrMFA
	}
	if slices.Contains(amr, amrFederated) {
		return acrFederated
	}
	return acrPassword
}

// idTokenClaims are the claims of an ID token (OIDC Core §2) plus the scope claims.
type idTokenClaims struct {
	Issuer   string       `json:"iss"`
	Subject  string       `json:"sub"`
	Audience jwt.Audience `json:"aud"`
	Expiry   int64        `json:"exp"`
	IssuedAt int64        `json:"iat"`
	AuthTime int64        `json:"auth_time,omitempty"`
	Nonce    string       `json:"nonce,omitempty"`
	SID      string       `json:"sid,omitempty"`
	AMR      []string     `json:"amr,omitempty"`
	ACR      string       `json:"acr,omitempty"`
	AZP      string       `json:"azp,omitempty"`
	AtHash   string       `json:"at_hash,omitempty"`
	scopeClaims
}

// scopeClaims are the user claims that the profile, email and groups scopes release, in
// the ID token and from userinfo.
type scopeClaims struct {
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     *bool    `json:"email_verified,omitempty"`
	Groups            []string `json:"groups,omitempty"`
}

func claimsForScopes(c storage.Claims, scopes []string) scopeClaims {
	var out scopeClaims
	if slices.Contains(scopes, scopeProfile) {
		out.Name, out.PreferredUsername = c.Name, c.Username
	}
	if slices.Contains(scopes, scopeEmail) && c.Email != "" {
		verified := c.EmailVerified
		out.Email, out.EmailVerified = c.Email, &verified
	}
	if slices.Contains(scopes, scopeGroups) {
		out.Groups = c.Groups
	}
	return out
}

// grant is the authorization a token response is issued for, whichever grant produced it.
type grant struct {
	clientID string
	// api is the API the access token is for (its aud, format and lifetime); nil for
	// none: an opaque token for userinfo, with the server's access token lifetime.
	api           *config.API
	scopes        []string
	claims        storage.Claims
	sessionIDHash string
	sid           string
	authTime      time.Time
	amr           []string
	nonce         string
}

// audience is the identifier of the API the access token is for; empty for none.
func (g grant) audience() string {
	if g.api == nil {
		return ""
	}
	return g.api.Identifier
}

// accessTokenLifetime is the lifetime of the access token of g: its API's, or the server's.
func (g grant) accessTokenLifetime(cfg *config.Config) time.Duration {
	if g.api == nil {
		return cfg.Tokens.AccessToken.Duration
	}
	return g.api.TokenLifetime.Duration
}

// jwtAccessTokens reports whether access tokens for api are RFC 9068 JWTs; for no API they
// are opaque.
func jwtAccessTokens(api *config.API) bool { return api != nil && api.TokenFormat == config.TokenJWT }

func (s *Server) mintIDToken(st *state, g grant, accessToken string) (string, error) {
	now := s.now()
	sum := sha256.Sum256([]byte(accessToken))
	c := idTokenClaims{
		Issuer:      st.cfg.Issuer,
		Subject:     g.claims.Subject,
		Audience:    jwt.Audience{g.clientID},
		Expiry:      now.Add(st.cfg.Tokens.IDToken.Duration).Unix(),
		IssuedAt:    now.Unix(),
		AuthTime:    g.authTime.Unix(),
		Nonce:       g.nonce,
		SID:         g.sid,
		AMR:         g.amr,
		ACR:         acrFor(g.amr),
		AZP:         g.clientID,
		AtHash:      base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]),
		scopeClaims: claimsForScopes(g.claims, g.scopes),
	}
	client, _ := st.cfg.Client(g.clientID)
	return signJWT(st.keys.forClient(client).idToken, c)
}
