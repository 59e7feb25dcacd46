package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

func TestClientCredentialsGrantOnlyTheAllowedScopes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		scope     string
		status    int
		wantError string
		granted   string
	}{
		{name: "an allowed scope is granted", scope: "reports:read", status: 200, granted: "reports:read"},
		{name: "several allowed scopes are granted once each", scope: "reports:read reports:write reports:read", status: 200, granted: "reports:read reports:write"},
		{name: "no scope grants none", scope: "", status: 200, granted: ""},
		{name: "a scope the client was not allowed is refused", scope: "admin", status: 400, wantError: "invalid_scope"},
		{name: "one scope not allowed among allowed ones refuses the request", scope: "reports:read admin", status: 400, wantError: "invalid_scope"},
		{name: "a user scope is refused", scope: "openid", status: 400, wantError: "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}}
			if tt.scope != "" {
				form.Set("scope", tt.scope)
			}
			status, body := tokenRequest(t, e, form, "m2m", "m2m-secret")
			if status != tt.status || tt.wantError != "" && body["error"] != tt.wantError {
				t.Fatalf("status %d body %v, want %d %s", status, body, tt.status, tt.wantError)
			}
			if tt.status == http.StatusOK {
				if got, _ := body["scope"].(string); got != tt.granted {
					t.Fatalf("scope = %q, want %q", got, tt.granted)
				}
			}
		})
	}
}

func TestUserFacingClientsGetOnlyKnownOrAllowedScopes(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "app2" {
				c.Clients[i].AllowedScopes = []string{"reports:read"}
			}
		}
	})
	tests := []struct {
		name      string
		requested []string
		granted   []string
	}{
		{name: "an allowed custom scope is granted with the OpenID ones", requested: []string{"openid", "email", "reports:read"}, granted: []string{"email", "openid", "reports:read"}},
		{name: "a custom scope the client was not allowed is dropped, not refused", requested: []string{"openid", "reports:read", "admin"}, granted: []string{"openid", "reports:read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := e.rp("app2", "app2-secret", tt.requested...)
			tok, _ := rp.signIn(t, e.browser(), "alice", alicePassword)
			got := strings.Fields(tok.Extra("scope").(string))
			slices.Sort(got)
			if !slices.Equal(got, tt.granted) {
				t.Fatalf("granted %v, want %v", got, tt.granted)
			}
		})
	}
}
