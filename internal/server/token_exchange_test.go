package server_test

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	idTokenType        = "urn:ietf:params:oauth:token-type:id_token"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
)

// withTokenExchange lets app2 use token exchange besides its usual grants, and gives app1 a
// user-flow grant on the orders API without letting it exchange tokens.
func withTokenExchange(cfg *config.Config) {
	for i := range cfg.Clients {
		if cfg.Clients[i].ID == "app2" {
			cfg.Clients[i].GrantTypes = []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantTokenExchange}
		}
	}
	for i := range cfg.APIs {
		if cfg.APIs[i].Identifier == ordersAPI {
			cfg.APIs[i].Grants = append([]config.APIGrant{{ClientID: "app1", UserFlows: &config.GrantedScopes{Scopes: []string{"orders:read"}}}}, cfg.APIs[i].Grants...)
		}
	}
}

// exchange asks the token endpoint, as app2 (or as client with its secret), to exchange a
// subject token with the extra parameters.
func exchange(t *testing.T, e *env, client, subject, subjectType string, extra url.Values) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {subjectType}}
	for k, v := range extra {
		form[k] = v
	}
	return tokenRequest(t, e, form, client, client+"-secret")
}

func TestTokenExchangeGivesAnAPITokenForTheClientsOwnTokens(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withTokenExchange)
	b := e.browser()
	tok, _ := e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	idToken, _ := tok.Extra("id_token").(string)
	app1Tok, _ := e.rp("app1", "app1-secret").signIn(t, e.browser(), "alice", alicePassword, oauthConnection("people"))
	app1IDToken, _ := app1Tok.Extra("id_token").(string)
	forged := idToken[:len(idToken)-4] + "AAAA"
	orders := url.Values{"audience": {ordersAPI}}

	tests := []struct {
		name        string
		client      string
		subject     string
		subjectType string
		extra       url.Values
		wantError   string
		wantScope   string
	}{
		{name: "the client's ID token gets every granted scope of the API", subject: idToken, subjectType: idTokenType, extra: orders, wantScope: "orders:read"},
		{name: "the client's access token gets the same", subject: tok.AccessToken, subjectType: accessTokenType, extra: url.Values{"resource": {ordersAPI}}, wantScope: "orders:read"},
		{name: "a granted scope with a user claim scope is given both", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {ordersAPI}, "scope": {"orders:read groups"}}, wantScope: "orders:read groups"},
		{name: "a scope the API does not grant is invalid_scope", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {ordersAPI}, "scope": {"orders:write"}}, wantError: "invalid_scope"},
		{name: "openid is invalid_scope since an exchange issues no ID token", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {ordersAPI}, "scope": {"openid"}}, wantError: "invalid_scope"},
		{name: "an API that grants the client nothing is invalid_target by audience", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {reportsAPI}}, wantError: "invalid_target"},
		{name: "an API that does not exist is invalid_target by resource", subject: idToken, subjectType: idTokenType, extra: url.Values{"resource": {"https://api.example/payroll"}}, wantError: "invalid_target"},
		{name: "a request naming no API is invalid_request", subject: idToken, subjectType: idTokenType, wantError: "invalid_request"},
		{name: "another application's ID token is invalid_request", subject: app1IDToken, subjectType: idTokenType, extra: orders, wantError: "invalid_request"},
		{name: "an ID token with a broken signature is invalid_request", subject: forged, subjectType: idTokenType, extra: orders, wantError: "invalid_request"},
		{name: "an ID token sent as an access token is invalid_request", subject: idToken, subjectType: accessTokenType, extra: orders, wantError: "invalid_request"},
		{name: "an access token sent as an ID token is invalid_request", subject: tok.AccessToken, subjectType: idTokenType, extra: orders, wantError: "invalid_request"},
		{name: "another application's access token is invalid_request", subject: app1Tok.AccessToken, subjectType: accessTokenType, extra: orders, wantError: "invalid_request"},
		{name: "an unknown subject token type is invalid_request", subject: idToken, subjectType: "urn:ietf:params:oauth:token-type:saml2", extra: orders, wantError: "invalid_request"},
		{name: "a missing subject token is invalid_request", subjectType: idTokenType, extra: orders, wantError: "invalid_request"},
		{name: "an actor token is invalid_request", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {ordersAPI}, "actor_token": {idToken}, "actor_token_type": {idTokenType}}, wantError: "invalid_request"},
		{name: "asking for an ID token is invalid_request", subject: idToken, subjectType: idTokenType, extra: url.Values{"audience": {ordersAPI}, "requested_token_type": {idTokenType}}, wantError: "invalid_request"},
		{name: "a client that does not declare the grant is unauthorized_client", client: "app1", subject: app1IDToken, subjectType: idTokenType, extra: orders, wantError: "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := exchange(t, e, cmp.Or(tt.client, "app2"), tt.subject, tt.subjectType, tt.extra)
			if tt.wantError != "" {
				if status != http.StatusBadRequest || body["error"] != tt.wantError {
					t.Fatalf("status %d body %v, want 400 %s", status, body, tt.wantError)
				}
				return
			}
			if status != http.StatusOK || body["issued_token_type"] != accessTokenType || body["token_type"] != "Bearer" || body["id_token"] != nil || body["refresh_token"] != nil {
				t.Fatalf("status %d body %v, want 200 with an access token only", status, body)
			}
			if body["scope"] != tt.wantScope {
				t.Errorf("scope = %v, want %q", body["scope"], tt.wantScope)
			}
			token, _ := body["access_token"].(string)
			c := verifyAsAPI(t, e, token)
			if c.Subject != "people|alice" || c.ClientID != "app2" || c.AuthTime == 0 || c.Scope != tt.wantScope {
				t.Errorf("the API sees %+v, want alice's token for app2 with scope %q", c, tt.wantScope)
			}
			if wantGroups := strings.Contains(tt.wantScope, "groups"); wantGroups != slices.Contains(c.Groups, "admins") {
				t.Errorf("groups %v with scope %q", c.Groups, tt.wantScope)
			}
		})
	}
}

// TestAnExchangeEndsWithTheSession: a token presented after its user signed out gets
// nothing, and the tokens exchanged before stop working for everything that asks the server.
func TestAnExchangeEndsWithTheSession(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withTokenExchange)
	b := e.browser()
	tok, _ := e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	idToken, _ := tok.Extra("id_token").(string)
	status, body := exchange(t, e, "app2", idToken, idTokenType, url.Values{"audience": {ordersAPI}})
	exchanged, _ := body["access_token"].(string)
	if status != http.StatusOK || !introspectActive(t, e, exchanged) {
		t.Fatalf("status %d body %v, want a working token", status, body)
	}

	b.signOut(e.issuer + "/v2/logout?client_id=app2")
	if introspectActive(t, e, exchanged) {
		t.Error("the exchanged token is still active after sign-out")
	}
	if status, body := exchange(t, e, "app2", idToken, idTokenType, url.Values{"audience": {ordersAPI}}); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("an ID token of an ended session: status %d body %v, want invalid_request", status, body)
	}
}

func TestAnExpiredIDTokenIsNotExchanged(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withTokenExchange)
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	idToken, _ := tok.Extra("id_token").(string)
	// The ID token lives an hour; the session three days.
	e.clock.Advance(time.Hour + time.Second)
	if status, body := exchange(t, e, "app2", idToken, idTokenType, url.Values{"audience": {ordersAPI}}); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("an expired ID token: status %d body %v, want invalid_request", status, body)
	}
}

func TestAGrantWithdrawnFromTheAPIEndsExchanges(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withTokenExchange)
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	idToken, _ := tok.Extra("id_token").(string)

	e.withdrawGrant(t, ordersAPI, "app2")
	if status, body := exchange(t, e, "app2", idToken, idTokenType, url.Values{"audience": {ordersAPI}}); status != http.StatusBadRequest || body["error"] != "invalid_target" {
		t.Errorf("after the grant is withdrawn: status %d body %v, want invalid_target", status, body)
	}
}

// introspectActive asks the introspection endpoint, as app1, whether token is active.
func introspectActive(t *testing.T, e *env, token string) bool {
	t.Helper()
	return e.introspect(t, token)["active"] == true
}

// A command-line tool, a public client with no secret, signs in with the device flow and
// exchanges its ID token for a token of an API the server owner granted it, as the guide's
// example does. Its ID token is a bearer credential kube-apiserver also sees, so the
// exchange holds only while the session lives and only for the tool's own tokens.
func TestACommandLineToolExchangesItsDeviceSignInForAnAPIToken(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withDeviceClient(func(c *config.Client) {
		c.GrantTypes = append(c.GrantTypes, config.GrantTokenExchange)
	}), func(cfg *config.Config) {
		for i := range cfg.APIs {
			if cfg.APIs[i].Identifier == ordersAPI {
				cfg.APIs[i].Grants = append(cfg.APIs[i].Grants, config.APIGrant{ClientID: cliClient, UserFlows: &config.GrantedScopes{Scopes: []string{"orders:read"}}})
				slices.SortFunc(cfg.APIs[i].Grants, func(a, b config.APIGrant) int { return strings.Compare(a.ClientID, b.ClientID) })
			}
		}
	})
	b := e.browser()
	appTok, _ := e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	appIDToken, _ := appTok.Extra("id_token").(string)
	d := e.startDevice(t, cliClient)
	answer(t, b, d.confirmation(t, b), "allow")
	body, _ := d.tokens(t)
	idToken, _ := body["id_token"].(string)

	asTheTool := func(subject string) (int, map[string]any) {
		t.Helper()
		return tokenRequest(t, e, url.Values{"grant_type": {grantTokenExchange}, "client_id": {cliClient},
			"subject_token": {subject}, "subject_token_type": {idTokenType}, "audience": {ordersAPI}}, "", "")
	}
	status, got := asTheTool(idToken)
	if status != http.StatusOK || got["scope"] != "orders:read" {
		t.Fatalf("the tool's exchange: status %d body %v, want an orders:read token", status, got)
	}
	token, _ := got["access_token"].(string)
	if c := verifyAsAPI(t, e, token); c.Subject != "people|alice" || c.ClientID != cliClient {
		t.Errorf("the API sees %+v, want alice's token for %s", c, cliClient)
	}
	if status, got := asTheTool(appIDToken); status != http.StatusBadRequest || got["error"] != "invalid_request" {
		t.Errorf("the tool presenting app2's ID token: status %d body %v, want invalid_request", status, got)
	}

	b.signOut(e.issuer + "/v2/logout?client_id=app2")
	if status, got := asTheTool(idToken); status != http.StatusBadRequest || got["error"] != "invalid_request" {
		t.Errorf("after sign-out: status %d body %v, want invalid_request", status, got)
	}
	if introspectActive(t, e, token) {
		t.Error("the exchanged token is still active after sign-out")
	}
}
