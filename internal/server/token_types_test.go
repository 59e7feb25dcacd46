package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"golang.org/x/oauth2"
)

func TestOnlyIDTokensAreAcceptedAsIDTokenHints(t *testing.T) {
	rec := newLogoutReceiver(t, nil)
	e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": rec.url}))
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")
	b := e.browser()
	tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	idToken, _ := tok.Extra("id_token").(string)
	// A second session of the same user keeps a silent login possible after the logout.
	other := e.browser()
	app2.signIn(t, other, "alice", alicePassword)
	b.get(e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {idToken}}.Encode())
	logoutToken := rec.next(t).token
	e.drain(t)

	tests := []struct {
		name string
		hint string
		want string // the error of a prompt=none request in other's browser ("" = a code)
	}{
		{name: "an ID token of this server is a valid hint", hint: idToken, want: ""},
		{name: "a logout token signed by this server is refused as a hint", hint: logoutToken, want: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, errCode := app2.silent(t, other, oauth2.SetAuthURLParam("id_token_hint", tt.hint))
			if errCode != tt.want {
				t.Fatalf("silent login with the hint: error %q, want %q", errCode, tt.want)
			}
		})
	}
}

func TestAuthenticationContextSaysHowTheUserSignedIn(t *testing.T) {
	e := newEnv(t)
	_, idt := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	var claims struct {
		ACR string `json:"acr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.ACR != "urn:hallpass:acr:password" {
		t.Fatalf("acr of a password login = %q", claims.ACR)
	}
	// Federated logins: TestSignInThroughGitHub checks they do not claim a password.
}

func TestDiscoveryDoesNotAdvertisePromptConsent(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Prompts []string `json:"prompt_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.Prompts, "consent") || !slices.Contains(d.Prompts, "none") {
		t.Fatalf("prompt_values_supported = %v: consent is ignored, so it must not be listed", d.Prompts)
	}
}
