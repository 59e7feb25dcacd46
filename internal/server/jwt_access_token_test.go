package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

const ordersAPI = "https://api.example/orders"

// withOrdersAPI declares ordersAPI, with RFC 9068 JWT access tokens: app2 may get
// orders:read for its users, m2m orders:read for itself; orders:write nobody.
func withOrdersAPI() func(*config.Config) {
	return withAPI(config.API{Identifier: ordersAPI, Name: "Orders", Scopes: []string{"orders:read", "orders:write"},
		TokenFormat: config.TokenJWT, TokenLifetime: config.Duration{Duration: time.Hour}, Grants: []config.APIGrant{
			{ClientID: "app2", UserFlows: &config.GrantedScopes{Scopes: []string{"orders:read"}}},
			{ClientID: "m2m", ClientCredentials: &config.GrantedScopes{Scopes: []string{"orders:read"}}},
		}})
}

// forOrders is the authorization request parameter that asks for ordersAPI.
var forOrders = oauth2.SetAuthURLParam("audience", ordersAPI)

// jwtAccessToken is what an API reads from an RFC 9068 access token.
type jwtAccessToken struct {
	Subject  string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	ID       string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	AuthTime int64    `json:"auth_time"`
	Groups   []string `json:"groups"`
}

// verifyAsAPI checks an access token the way an API does, with nothing but the issuer's
// discovery and JWKS: signature, issuer, audience, expiry, and the at+jwt type.
func verifyAsAPI(t *testing.T, e *env, token string) jwtAccessToken {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	verified, err := provider.Verifier(&oidc.Config{ClientID: ordersAPI, Now: e.clock.Now}).Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the API cannot verify the access token: %v", err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; typ != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt (RFC 9068 §2.1)", typ)
	}
	var c jwtAccessToken
	if err := verified.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.Expiry-c.IssuedAt != int64(time.Hour/time.Second) {
		t.Errorf("jti %q, lifetime %ds; want a jti and the configured hour", c.ID, c.Expiry-c.IssuedAt)
	}
	return c
}

func TestAClientThatNamesAnAPIGetsJWTAccessTokens(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	b := e.browser()
	app2 := e.rp("app2", "app2-secret", "openid", "profile", "groups", "offline_access", "orders:read")
	tok, _ := app2.signIn(t, b, "alice", alicePassword, forOrders)

	c := verifyAsAPI(t, e, tok.AccessToken)
	if c.Subject != "people|alice" || c.ClientID != "app2" || c.AuthTime == 0 || !strings.Contains(c.Scope, "orders:read") || len(c.Groups) == 0 {
		t.Errorf("user access token claims = %+v", c)
	}
	if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusOK {
		t.Errorf("userinfo with the JWT access token: status %d", status)
	}

	// A refresh gives another JWT for the same API.
	refreshed, err := refresh(app2, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if c := verifyAsAPI(t, e, refreshed.AccessToken); c.Subject != "people|alice" {
		t.Errorf("refreshed access token sub = %q", c.Subject)
	}

	// Client credentials: the client is the subject, and there is no user's login.
	_, body := tokenRequest(t, e, url.Values{"grant_type": {"client_credentials"}, "resource": {ordersAPI}}, "m2m", "m2m-secret")
	machine, _ := body["access_token"].(string)
	if c := verifyAsAPI(t, e, machine); c.Subject != "m2m" || c.ClientID != "m2m" || c.AuthTime != 0 || c.Scope != "orders:read" {
		t.Errorf("machine access token claims = %+v", c)
	}

	// An access token is not an ID token: refused as id_token_hint.
	if _, _, errCode := app2.silent(t, b, oauth2.SetAuthURLParam("id_token_hint", tok.AccessToken)); errCode != "invalid_request" {
		t.Errorf("a JWT access token as id_token_hint: error %q, want invalid_request", errCode)
	}

	// Revocation ends a JWT access token for everything that asks the server.
	if status := revokeToken(t, e, "app2", "app2-secret", refreshed.AccessToken); status != http.StatusOK {
		t.Fatalf("revoke the access token: status %d", status)
	}
	if status := userinfoStatus(t, e, refreshed.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("userinfo with a revoked JWT access token: status %d, want 401", status)
	}
}

func TestAClientThatNamesNoAPIKeepsOpaqueAccessTokens(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	if strings.Count(tok.AccessToken, ".") != 0 {
		t.Fatalf("app2 named no API but got a structured access token %q", tok.AccessToken)
	}
	if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusOK {
		t.Errorf("userinfo with the opaque access token: status %d", status)
	}
}

// TestAJWTAccessTokenEndsWithWhatIssuedIt: a JWT access token is signed before the
// redemption's transaction, and must still be tied to its code and its refresh family.
func TestAJWTAccessTokenEndsWithWhatIssuedIt(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	tests := []struct {
		name string
		end  func(t *testing.T, rp *relyingParty, l login, code string, tok *oauth2.Token)
	}{
		{"a reuse of its code", func(t *testing.T, rp *relyingParty, l login, code string, _ *oauth2.Token) {
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			assertOAuthError(t, err, "invalid_grant")
		}},
		{"the revocation of its refresh token", func(t *testing.T, _ *relyingParty, _ login, _ string, tok *oauth2.Token) {
			if status := revokeToken(t, e, "app2", "app2-secret", tok.RefreshToken); status != http.StatusOK {
				t.Fatalf("revoke the refresh token: status %d", status)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := e.rp("app2", "app2-secret")
			l, code := rp.loginCode(t, e.browser(), "alice", alicePassword, forOrders)
			tok, _ := rp.exchange(t, l, code)
			verifyAsAPI(t, e, tok.AccessToken)
			if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusOK {
				t.Fatalf("userinfo with the JWT access token: status %d", status)
			}
			tc.end(t, rp, l, code, tok)
			if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("userinfo after %s: status %d, want 401", tc.name, status)
			}
		})
	}
}
