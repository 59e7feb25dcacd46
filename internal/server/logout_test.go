package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLogout(t *testing.T) {
	tests := []struct {
		name string
		// path builds the logout URL from the issuer and the raw ID token of app1's login.
		path         func(issuer, idToken string) string
		wantRedirect string // "" means the signed-out page
		wantEnded    bool
	}{
		{"RP-initiated logout with a registered URI, hint and state redirects back with state",
			func(iss, idt string) string {
				return iss + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app1.example/bye"}, "state": {"s-123"}}.Encode()
			}, "https://app1.example/bye?state=s-123", true},
		{"an unregistered post_logout_redirect_uri is not followed",
			func(iss, idt string) string {
				return iss + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode()
			}, "", true},
		{"a registered URI with a query added is not followed",
			func(iss, idt string) string {
				return iss + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app1.example/bye?foo=bar"}}.Encode()
			}, "", true},
		{"logout without parameters shows the signed-out page",
			func(iss, _ string) string { return iss + "/oidc/logout" }, "", true},
		{"a hint this server did not sign is refused and the user stays signed in",
			func(iss, idt string) string {
				parts := strings.Split(idt, ".")
				return iss + "/oidc/logout?" + url.Values{"id_token_hint": {parts[0] + "." + parts[1] + ".AAAA"}, "post_logout_redirect_uri": {"https://app1.example/bye"}}.Encode()
			}, "", false},
		{"a client_id that is not the hint's audience is refused",
			func(iss, idt string) string {
				return iss + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "client_id": {"app2"}}.Encode()
			}, "", false},
		{"/v2/logout follows a registered returnTo",
			func(iss, _ string) string {
				return iss + "/v2/logout?" + url.Values{"client_id": {"app1"}, "returnTo": {"https://app1.example/bye"}}.Encode()
			}, "https://app1.example/bye", true},
		{"/v2/logout with a client and no returnTo goes to its first logout URL",
			func(iss, _ string) string { return iss + "/v2/logout?client_id=app1" }, "https://app1.example/bye", true},
		{"/v2/logout does not follow an unregistered returnTo",
			func(iss, _ string) string {
				return iss + "/v2/logout?" + url.Values{"client_id": {"app1"}, "returnTo": {"https://evil.example/"}, "federated": {""}}.Encode()
			}, "", true},
		{"/v2/logout without client_id does not follow returnTo",
			func(iss, _ string) string {
				return iss + "/v2/logout?" + url.Values{"returnTo": {"https://app1.example/bye"}}.Encode()
			}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			raw, _ := tok.Extra("id_token").(string)

			p := b.get(tc.path(e.issuer, raw))
			switch {
			case tc.wantRedirect != "":
				if p.location == nil || p.location.String() != tc.wantRedirect {
					t.Fatalf("redirected to %v, want %s (status %d)", p.location, tc.wantRedirect, p.status)
				}
			default:
				if p.location != nil || p.header.Get("Location") != "" {
					t.Fatalf("redirected to %s; want a page", p.header.Get("Location"))
				}
				if tc.wantEnded && (p.status != http.StatusOK || !strings.Contains(p.body, "signed out")) {
					t.Fatalf("status %d, want the signed-out page:\n%s", p.status, p.body)
				}
			}

			_, _, silentErr := e.rp("app2", "app2-secret").silent(t, b)
			_, refreshErr := refresh(app1, tok.RefreshToken)
			if tc.wantEnded {
				if silentErr != "login_required" {
					t.Errorf("after logout, prompt=none gave %q, want login_required", silentErr)
				}
				if refreshErr == nil {
					t.Error("after logout, the session's refresh token still works")
				}
			} else {
				if silentErr != "" {
					t.Errorf("the session ended on a refused logout: %s", silentErr)
				}
				if refreshErr != nil {
					t.Errorf("a refused logout revoked the refresh token: %v", refreshErr)
				}
			}
		})
	}
}

func TestLogoutWithoutAHintAsksTheUserFirst(t *testing.T) {
	tests := []struct {
		name         string
		params       url.Values
		wantRedirect string
	}{
		{"with client_id and a registered URI it returns there after confirmation",
			url.Values{"client_id": {"app1"}, "post_logout_redirect_uri": {"https://app1.example/bye"}, "state": {"xyz"}}, "https://app1.example/bye?state=xyz"},
		{"without any client it shows the signed-out page after confirmation",
			url.Values{"post_logout_redirect_uri": {"https://app1.example/bye"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))

			p := b.get(e.issuer + "/oidc/logout?" + tc.params.Encode())
			if p.location != nil || !strings.Contains(p.body, "Sign out?") {
				t.Fatalf("no confirmation page: status %d location %v", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
				t.Fatalf("the session ended before the user confirmed: %s", err)
			}
			action, form := formFields(t, p)

			// A forged confirmation without the browser's CSRF token changes nothing.
			forged := url.Values{}
			for k, v := range form {
				forged[k] = v
			}
			forged.Set("csrf", strings.Repeat("A", 43))
			if p := b.post(action, forged); p.location != nil || !strings.Contains(p.body, "Sign out?") {
				t.Fatalf("a forged confirmation was accepted: status %d location %v", p.status, p.location)
			}

			p = b.post(action, form)
			if tc.wantRedirect != "" && (p.location == nil || p.location.String() != tc.wantRedirect) {
				t.Fatalf("redirected to %v, want %s", p.location, tc.wantRedirect)
			}
			if tc.wantRedirect == "" && (p.location != nil || !strings.Contains(p.body, "signed out")) {
				t.Fatalf("status %d location %v, want the signed-out page", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after confirmed logout, prompt=none gave %q", err)
			}
		})
	}
}
