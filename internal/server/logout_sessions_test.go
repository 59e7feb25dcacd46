package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestLogoutEndsTheHintedSessionAndEveryOneOfTheBrowser signs alice in to app1 (single
// sign-on on) and then to nosso (single sign-on off) in one browser, and logs out each way
// an application can. Every way ends both sessions: app1's SSO session and nosso's own,
// with their refresh and access tokens revoked and a logout token for each application.
func TestLogoutEndsTheHintedSessionAndEveryOneOfTheBrowser(t *testing.T) {
	tests := []struct {
		name string
		// logout returns the logout URL from the ID tokens of app1 and nosso.
		logout func(e *env, app1Hint, nossoHint string) string
		// oneClick: the hint names a session of the browser's user, so nothing is asked.
		oneClick bool
	}{
		{"RP-initiated logout with nosso's id_token_hint",
			func(e *env, _, nosso string) string {
				return e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {nosso}}.Encode()
			}, true},
		{"/v2/logout of nosso with its id_token_hint",
			func(e *env, _, nosso string) string {
				return e.issuer + "/v2/logout?" + url.Values{"client_id": {"nosso"}, "id_token_hint": {nosso}}.Encode()
			}, true},
		{"/v2/logout of nosso without a hint, once the user confirms",
			func(e *env, _, _ string) string { return e.issuer + "/v2/logout?client_id=nosso" }, false},
		{"RP-initiated logout with app1's id_token_hint",
			func(e *env, app1, _ string) string {
				return e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {app1}}.Encode()
			}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recApp1, recNoSSO := newLogoutReceiver(t, nil), newLogoutReceiver(t, nil)
			e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": recApp1.url, "nosso": recNoSSO.url}))
			b := e.browser()
			app1, nosso := e.rp("app1", "app1-secret"), e.rp("nosso", "nosso-secret")
			app1Tok, app1IDT := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			nossoTok, nossoIDT := nosso.signIn(t, b, "alice", alicePassword)
			if sidOf(t, app1IDT) == sidOf(t, nossoIDT) {
				t.Fatal("the SSO-off client shares app1's session")
			}
			app1Hint, _ := app1Tok.Extra("id_token").(string)
			nossoHint, _ := nossoTok.Extra("id_token").(string)

			p := b.get(tc.logout(e, app1Hint, nossoHint))
			asked := p.location == nil && strings.Contains(p.body, "Sign out?")
			if asked == tc.oneClick {
				t.Fatalf("asked for confirmation: %v, want %v (status %d)", asked, !tc.oneClick, p.status)
			}
			if asked {
				action, form := formFields(t, p)
				p = b.post(action, form)
			}
			if p.location == nil && !strings.Contains(p.body, "You are signed out") {
				t.Fatalf("status %d, neither a redirect nor the signed-out page", p.status)
			}

			for _, s := range []struct {
				rp    *relyingParty
				tok   *oauth2.Token
				sid   string
				rec   *logoutReceiver
				label string
			}{{app1, app1Tok, sidOf(t, app1IDT), recApp1, "app1"}, {nosso, nossoTok, sidOf(t, nossoIDT), recNoSSO, "nosso"}} {
				lt := verifyLogoutToken(t, e, s.rec.next(t).token)
				if lt.claims["sid"] != s.sid || lt.claims["aud"] != s.label {
					t.Errorf("%s's logout token sid=%v aud=%v, want sid %s", s.label, lt.claims["sid"], lt.claims["aud"], s.sid)
				}
				if _, err := refresh(s.rp, s.tok.RefreshToken); err == nil {
					t.Errorf("%s's refresh token still works", s.label)
				}
				if _, err := s.rp.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(s.tok)); err == nil {
					t.Errorf("%s's access token still works at userinfo", s.label)
				}
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after logout, prompt=none gave %q, want login_required", err)
			}
		})
	}
}

// TestABareLogoutRequestAsksBeforeEndingTheSession sends what any other site can make the
// browser send (a top-level GET carries the SameSite=Lax session cookie): without an
// id_token_hint no logout request ends the session until the user confirms with the
// browser's CSRF token, while a hinted request is still one click.
func TestABareLogoutRequestAsksBeforeEndingTheSession(t *testing.T) {
	tests := []struct {
		name string
		path string
		// want is where the confirmed logout goes: "" for the signed-out page.
		want string
	}{
		{"/oidc/logout without parameters", "/oidc/logout", ""},
		{"/oidc/logout with only a client_id", "/oidc/logout?client_id=app1", ""},
		{"/oidc/logout with only state", "/oidc/logout?state=x", ""},
		{"/v2/logout without parameters", "/v2/logout", ""},
		{"/v2/logout with a client and its registered returnTo", "/v2/logout?client_id=app1&returnTo=" + url.QueryEscape("https://app1.example/bye"), "https://app1.example/bye"},
		{"/v2/logout with federated", "/v2/logout?client_id=app1&federated", "https://app1.example/bye"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))

			p := b.get(e.issuer + tc.path)
			if p.status != http.StatusOK || p.location != nil || !strings.Contains(p.body, "Sign out?") {
				t.Fatalf("status %d location %v, want the confirmation page", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
				t.Fatalf("the session ended before the user confirmed: %s", err)
			}
			if _, err := refresh(app1, tok.RefreshToken); err != nil {
				t.Fatalf("the refresh token was revoked before the user confirmed: %v", err)
			}
			// A confirmation forged by another site has no CSRF token to send.
			action, form := formFields(t, p)
			forged := url.Values{"confirm": {"yes"}, "client_id": {"app1"}}
			if p := b.post(action, forged); !strings.Contains(p.body, "Sign out?") {
				t.Fatalf("a forged confirmation was followed: status %d location %v", p.status, p.location)
			}
			if p = b.post(action, form); tc.want != "" && (p.location == nil || p.location.String() != tc.want) ||
				tc.want == "" && !strings.Contains(p.body, "You are signed out") {
				t.Fatalf("after confirming: status %d location %v, want %q", p.status, p.location, tc.want)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after the confirmed logout, prompt=none gave %q", err)
			}
		})
	}
	t.Run("/v2/logout with the application's id_token_hint is one click", func(t *testing.T) {
		e := newEnv(t)
		b := e.browser()
		tok, _ := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
		hint, _ := tok.Extra("id_token").(string)
		p := b.get(e.issuer + "/v2/logout?" + url.Values{"client_id": {"app1"}, "id_token_hint": {hint}}.Encode())
		if p.location == nil || p.location.String() != "https://app1.example/bye" {
			t.Fatalf("status %d location %v, want the registered returnTo at once", p.status, p.location)
		}
		if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
			t.Errorf("after logout, prompt=none gave %q", err)
		}
	})
}
