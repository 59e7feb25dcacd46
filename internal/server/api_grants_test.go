package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server"
)

// withBillingAPI declares an API that grants m2m only user flows, which a machine client
// cannot use: a grant for one kind of flow is no grant for the other.
func withBillingAPI() func(*config.Config) {
	return withAPI(config.API{Identifier: "https://api.example/billing", Name: "Billing", Scopes: []string{"billing:read"},
		TokenFormat: config.TokenJWT, TokenLifetime: config.Duration{Duration: time.Hour}, Grants: []config.APIGrant{
			{ClientID: "m2m", UserFlows: &config.GrantedScopes{Scopes: []string{"billing:read"}}},
		}})
}

func TestClientCredentialsGetOnlyWhatAnAPIGrants(t *testing.T) {
	e := newEnv(t, withOrdersAPI(), withBillingAPI())
	tests := []struct {
		name      string
		form      url.Values
		wantError string
		granted   string
	}{
		{name: "no API and no scope gets a token for no API", form: url.Values{}},
		{name: "a scope without an API is refused", form: url.Values{"scope": {"reports:read"}}, wantError: "invalid_scope"},
		{name: "the audience parameter without scope gets every granted scope", form: url.Values{"audience": {reportsAPI}}, granted: "reports:read reports:write"},
		{name: "the resource parameter gets the same", form: url.Values{"resource": {reportsAPI}}, granted: "reports:read reports:write"},
		{name: "audience and resource naming the same API are accepted", form: url.Values{"resource": {reportsAPI}, "audience": {reportsAPI}}, granted: "reports:read reports:write"},
		{name: "a granted scope asked for twice is granted once", form: url.Values{"audience": {reportsAPI}, "scope": {"reports:read reports:read"}}, granted: "reports:read"},
		{name: "a scope the API defines but does not grant is refused", form: url.Values{"audience": {reportsAPI}, "scope": {"reports:admin"}}, wantError: "invalid_scope"},
		{name: "one ungranted scope among granted ones refuses the request", form: url.Values{"audience": {reportsAPI}, "scope": {"reports:read reports:admin"}}, wantError: "invalid_scope"},
		{name: "a scope of another API is refused", form: url.Values{"audience": {reportsAPI}, "scope": {"orders:read"}}, wantError: "invalid_scope"},
		{name: "a user scope is refused", form: url.Values{"audience": {reportsAPI}, "scope": {"openid"}}, wantError: "invalid_scope"},
		{name: "an audience no API has is access_denied", form: url.Values{"audience": {"https://api.example/payroll"}}, wantError: "access_denied"},
		{name: "a resource no API has is invalid_target", form: url.Values{"resource": {"https://api.example/payroll"}}, wantError: "invalid_target"},
		{name: "an API that grants the client only user flows is access_denied", form: url.Values{"audience": {"https://api.example/billing"}}, wantError: "access_denied"},
		{name: "a resource that is no absolute URI is invalid_target", form: url.Values{"resource": {"reports"}}, wantError: "invalid_target"},
		{name: "two resources are invalid_target", form: url.Values{"resource": {reportsAPI, ordersAPI}}, wantError: "invalid_target"},
		{name: "audience and resource naming different APIs are refused", form: url.Values{"resource": {reportsAPI}, "audience": {ordersAPI}}, wantError: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("grant_type", "client_credentials")
			status, body := tokenRequest(t, e, tt.form, "m2m", "m2m-secret")
			if tt.wantError != "" {
				if status != http.StatusBadRequest || body["error"] != tt.wantError {
					t.Fatalf("status %d body %v, want 400 %s", status, body, tt.wantError)
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("status %d body %v, want 200", status, body)
			}
			if got, _ := body["scope"].(string); got != tt.granted {
				t.Fatalf("scope = %q, want %q", got, tt.granted)
			}
		})
	}
}

func TestAnOpaqueAPITokenHasTheAPIsAudienceAndLifetime(t *testing.T) {
	e := newEnv(t)
	status, body := tokenRequest(t, e, url.Values{"grant_type": {"client_credentials"}, "audience": {reportsAPI}}, "m2m", "m2m-secret")
	token, _ := body["access_token"].(string)
	if status != http.StatusOK || strings.Contains(token, ".") || body["expires_in"] != float64(600) {
		t.Fatalf("status %d body %v, want an opaque token for the API's 10 minutes", status, body)
	}
	// The API checks an opaque token by introspection, and must see it is for the API.
	got := e.introspect(t, token)
	if got["active"] != true || got["aud"] != reportsAPI || got["scope"] != "reports:read reports:write" || got["exp"].(float64)-got["iat"].(float64) != 600 {
		t.Fatalf("introspection = %v, want the API's audience, granted scopes and lifetime", got)
	}
}

func TestUserFlowsGetOnlyWhatAnAPIGrants(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	tests := []struct {
		name      string
		client    string
		scopes    []string
		params    []oauth2.AuthCodeOption
		wantError string
		granted   []string
	}{
		{name: "a granted scope comes with the OpenID ones", client: "app2", scopes: []string{"openid", "email", "orders:read"}, params: []oauth2.AuthCodeOption{forOrders}, granted: []string{"email", "openid", "orders:read"}},
		{name: "a scope the API does not grant the client is invalid_scope", client: "app2", scopes: []string{"openid", "orders:read", "orders:write"}, params: []oauth2.AuthCodeOption{forOrders}, wantError: "invalid_scope"},
		{name: "a client no grant names is access_denied", client: "app1", scopes: []string{"openid"}, params: []oauth2.AuthCodeOption{forOrders}, wantError: "access_denied"},
		{name: "a client no grant names is invalid_target with resource", client: "app1", scopes: []string{"openid"}, params: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("resource", ordersAPI)}, wantError: "invalid_target"},
		{name: "a grant for client credentials is none for user flows", client: "app1", scopes: []string{"openid"}, params: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("audience", reportsAPI)}, wantError: "access_denied"},
		{name: "without an API an API's scope is dropped", client: "app2", scopes: []string{"openid", "orders:read"}, granted: []string{"openid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := tt.client + "-secret"
			rp := e.rp(tt.client, secret, tt.scopes...)
			b := e.browser()
			if tt.wantError != "" {
				l := newLogin()
				if got := rp.authError(t, l, b.get(rp.authURL(l, tt.params...))); got != tt.wantError {
					t.Fatalf("error = %q, want %q", got, tt.wantError)
				}
				return
			}
			tok, _ := rp.signIn(t, b, "alice", alicePassword, tt.params...)
			got := strings.Fields(tok.Extra("scope").(string))
			slices.Sort(got)
			if !slices.Equal(got, tt.granted) {
				t.Fatalf("granted %v, want %v", got, tt.granted)
			}
		})
	}
}

// TestAWithdrawnGrantEndsRefreshes: the platform team removes a client's grant; the
// client's refresh tokens for the API stop working at once, instead of running for 30 days.
func TestAWithdrawnGrantEndsRefreshes(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	app2 := e.rp("app2", "app2-secret", "openid", "offline_access", "orders:read")
	tok, _ := app2.signIn(t, e.browser(), "alice", alicePassword, forOrders)

	e.withdrawGrant(t, ordersAPI, "app2")
	_, err := refresh(app2, tok.RefreshToken)
	assertOAuthError(t, err, "invalid_grant")
}

// TestAnAccessTokenCannotPassAsAnotherClientsIDToken is the regression test of a client
// that named another client's ID as the audience of its access tokens: an ID token
// verifier (go-oidc) for that client then accepted them. A client can no longer choose an
// audience, no API can have a client ID as its identifier, and a granted API token is
// refused as an ID token by every client's verifier.
func TestAnAccessTokenCannotPassAsAnotherClientsIDToken(t *testing.T) {
	e := newEnv(t, withOrdersAPI())
	for _, param := range []string{"audience", "resource"} {
		status, body := tokenRequest(t, e, url.Values{"grant_type": {"client_credentials"}, param: {"app2"}}, "m2m", "m2m-secret")
		if status == http.StatusOK {
			t.Fatalf("%s=app2 got a token: %v", param, body)
		}
	}

	cfg := testConfig(t, e.issuer)
	cfg.APIs[0].Identifier = "app2"
	keys, _ := testKeys()
	if _, err := server.New(cfg, keys, e.store); err == nil || !strings.Contains(err.Error(), `"app2" is a client ID`) {
		t.Fatalf("a config with an API named like a client: error %v, want it refused", err)
	}

	_, body := tokenRequest(t, e, url.Values{"grant_type": {"client_credentials"}, "audience": {ordersAPI}}, "m2m", "m2m-secret")
	token, _ := body["access_token"].(string)
	verifyAsAPI(t, e, token)
	provider, err := oidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range e.srv.Config().Clients {
		if _, err := provider.Verifier(&oidc.Config{ClientID: c.ID, Now: e.clock.Now}).Verify(context.Background(), token); err == nil {
			t.Errorf("the API's access token passes as an ID token of client %s", c.ID)
		}
	}
}
