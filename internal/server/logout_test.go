package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

// TestRPInitiatedLogoutConformance reproduces the eleven modules of the OpenID Foundation's
// oidcc-rp-initiated-logout-certification-test-plan. Each starts with a normal login of
// app1; after each, the user must be signed out: prompt=none fails and the session's
// refresh token is revoked. Where the plan says the OP must not redirect back, a
// confirmation page is an accepted answer, and the test confirms as the user would.
func TestRPInitiatedLogoutConformance(t *testing.T) {
	const registered = "https://app1.example/bye"
	tests := []struct {
		module string
		name   string
		// params builds the logout request from the raw ID token of app1's login.
		params       func(t *testing.T, idToken string) url.Values
		wantRedirect string // "" means no redirect back: the signed-out page
	}{
		{"oidcc-rp-initiated-logout", "a registered URI, a hint and state redirect back with state",
			func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {registered}, "state": {"s-123"}}
			}, registered + "?state=s-123"},
		{"oidcc-rp-initiated-logout-no-state", "a registered URI and a hint without state redirect back without state",
			func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {registered}}
			}, registered},
		{"oidcc-rp-initiated-logout-bad-post-logout-redirect-uri", "an unregistered post-logout URI is not followed",
			func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://evil.example/bye"}, "state": {"s"}}
			}, ""},
		{"oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri", "a registered URI with a query added is not followed",
			func(_ *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {registered + "?foo=bar"}, "state": {"s"}}
			}, ""},
		{"oidcc-rp-initiated-logout-modified-id-token-hint", "a hint changed to alg none is not trusted to redirect",
			func(_ *testing.T, idt string) url.Values {
				parts := strings.Split(idt, ".")
				none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
				return url.Values{"id_token_hint": {none + "." + parts[1] + "."}, "post_logout_redirect_uri": {registered}, "state": {"s"}}
			}, ""},
		{"oidcc-rp-initiated-logout-bad-id-token-hint", "a hint signed by someone else is not trusted to redirect",
			func(t *testing.T, idt string) url.Values {
				return url.Values{"id_token_hint": {foreignSigned(t, idt)}, "post_logout_redirect_uri": {registered}, "state": {"s"}}
			}, ""},
		{"oidcc-rp-initiated-logout-no-id-token-hint", "a post-logout URI without a hint is not followed",
			func(_ *testing.T, _ string) url.Values {
				return url.Values{"post_logout_redirect_uri": {registered}, "state": {"s"}}
			}, ""},
		{"oidcc-rp-initiated-logout-no-params", "a logout without parameters signs the user out",
			func(_ *testing.T, _ string) url.Values { return url.Values{} }, ""},
		{"oidcc-rp-initiated-logout-no-post-logout-redirect-uri", "a hint without a post-logout URI signs the user out",
			func(_ *testing.T, idt string) url.Values { return url.Values{"id_token_hint": {idt}} }, ""},
		{"oidcc-rp-initiated-logout-only-state", "a logout with only state signs the user out",
			func(_ *testing.T, _ string) url.Values { return url.Values{"state": {"s-only"}} }, ""},
	}
	t.Run("oidcc-rp-initiated-logout-discovery-endpoint-verification: discovery names the end-session endpoint", func(t *testing.T) {
		e := newEnv(t)
		var doc map[string]any
		getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
		if doc["end_session_endpoint"] != e.issuer+"/oidc/logout" {
			t.Errorf("end_session_endpoint = %v", doc["end_session_endpoint"])
		}
	})
	for _, tc := range tests {
		t.Run(tc.module+": "+tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			raw, _ := tok.Extra("id_token").(string)

			p := b.get(e.issuer + "/oidc/logout?" + tc.params(t, raw).Encode())
			if p.location == nil && strings.Contains(p.body, "Sign out?") {
				action, form := formFields(t, p)
				p = b.post(action, form)
			}
			if tc.wantRedirect != "" {
				if p.location == nil || p.location.String() != tc.wantRedirect {
					t.Fatalf("redirected to %v, want %s (status %d)", p.location, tc.wantRedirect, p.status)
				}
			} else {
				if p.location != nil || p.header.Get("Location") != "" {
					t.Fatalf("redirected to %s; the OP must not redirect back here", p.header.Get("Location"))
				}
				if p.status != http.StatusOK || !strings.Contains(p.body, "You are signed out") {
					t.Fatalf("status %d, want the signed-out page:\n%s", p.status, p.body)
				}
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after logout, prompt=none gave %q, want login_required", err)
			}
			if _, err := refresh(app1, tok.RefreshToken); err == nil {
				t.Error("after logout, the session's refresh token still works")
			}
		})
	}
}

// foreignSigned re-signs the claims of idToken with a key of another issuer that claims
// the server's kid, as the conformance suite's own signature would.
func foreignSigned(t *testing.T, idToken string) string {
	t.Helper()
	k, err := config.NewSigningKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := testKeys()
	k.KeyID = keys.Current.KeyID
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(idToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLogoutRefusals(t *testing.T) {
	tests := []struct {
		name   string
		params func(idToken string) url.Values
	}{
		{"a client_id that is not the hint's audience is refused and the user stays signed in",
			func(idt string) url.Values { return url.Values{"id_token_hint": {idt}, "client_id": {"app2"}} }},
		{"a tampered hint shows a confirmation and signs no one out unconfirmed",
			func(idt string) url.Values {
				parts := strings.Split(idt, ".")
				return url.Values{"id_token_hint": {parts[0] + "." + parts[1] + ".AAAA"}, "post_logout_redirect_uri": {"https://app1.example/bye"}}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			raw, _ := tok.Extra("id_token").(string)
			p := b.get(e.issuer + "/oidc/logout?" + tc.params(raw).Encode())
			if p.location != nil || strings.Contains(p.body, "You are signed out") {
				t.Fatalf("status %d location %v: the request was followed", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
				t.Errorf("the session ended on a refused logout: %s", err)
			}
			if _, err := refresh(app1, tok.RefreshToken); err != nil {
				t.Errorf("a refused logout revoked the refresh token: %v", err)
			}
		})
	}
}

func TestAHintForAnotherUserAsksBeforeSigningOutTheBrowsersUser(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tok, _ := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	aliceHint, _ := tok.Extra("id_token").(string)
	// bob signs in in the same browser; alice's old ID token no longer names its session.
	e.rp("app1", "app1-secret").signIn(t, b, "bob", bobPassword, oauthConnection("people"), oauth2.SetAuthURLParam("prompt", "login"))

	q := url.Values{"id_token_hint": {aliceHint}, "post_logout_redirect_uri": {"https://app1.example/bye"}, "state": {"x"}}
	p := b.get(e.issuer + "/oidc/logout?" + q.Encode())
	if p.location != nil || !strings.Contains(p.body, "Sign out?") {
		t.Fatalf("status %d location %v, want a confirmation", p.status, p.location)
	}
	if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
		t.Fatalf("bob was signed out before confirming: %s", err)
	}
	action, form := formFields(t, p)
	if p = b.post(action, form); p.location == nil || p.location.String() != "https://app1.example/bye?state=x" {
		t.Fatalf("after confirming: status %d location %v, want the registered URI with state", p.status, p.location)
	}
	if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
		t.Errorf("after confirmed logout, prompt=none gave %q", err)
	}
}

func TestAuth0Logout(t *testing.T) {
	tests := []struct {
		name         string
		query        url.Values
		wantRedirect string // "" means the signed-out page
	}{
		{"a registered returnTo is followed", url.Values{"client_id": {"app1"}, "returnTo": {"https://app1.example/bye"}}, "https://app1.example/bye"},
		{"a client without returnTo goes to its first logout URL", url.Values{"client_id": {"app1"}}, "https://app1.example/bye"},
		{"an unregistered returnTo is not followed", url.Values{"client_id": {"app1"}, "returnTo": {"https://evil.example/"}, "federated": {""}}, ""},
		{"a returnTo without client_id is not followed", url.Values{"returnTo": {"https://app1.example/bye"}}, ""},
		{"federated without upstream logout information is an ordinary logout", url.Values{"client_id": {"app1"}, "federated": {""}}, "https://app1.example/bye"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, _ := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			p := b.signOut(e.issuer + "/v2/logout?" + tc.query.Encode())
			if tc.wantRedirect != "" && (p.location == nil || p.location.String() != tc.wantRedirect) {
				t.Fatalf("redirected to %v, want %s (status %d)", p.location, tc.wantRedirect, p.status)
			}
			if tc.wantRedirect == "" && (p.location != nil || !strings.Contains(p.body, "You are signed out")) {
				t.Fatalf("status %d location %v, want the signed-out page", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after logout, prompt=none gave %q, want login_required", err)
			}
			if _, err := refresh(app1, tok.RefreshToken); err == nil {
				t.Error("after logout, the session's refresh token still works")
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

func TestDiscoveryAdvertisesTheLogoutProfiles(t *testing.T) {
	e := newEnv(t)
	var doc map[string]any
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
	for _, key := range []string{"backchannel_logout_supported", "backchannel_logout_session_supported",
		"frontchannel_logout_supported", "frontchannel_logout_session_supported"} {
		if doc[key] != true {
			t.Errorf("%s = %v, want true", key, doc[key])
		}
	}
	if doc["end_session_endpoint"] != e.issuer+"/oidc/logout" {
		t.Errorf("end_session_endpoint = %v", doc["end_session_endpoint"])
	}
}

// TestACodeIssuedBeforeALogoutIsRefusedAfterIt redeems a code that was on its way to the
// application while the user signed out elsewhere: the tokens it would give must not
// outlive the session the user just ended.
func TestACodeIssuedBeforeALogoutIsRefusedAfterIt(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	app2 := e.rp("app2", "app2-secret")
	app2.signIn(t, b, "alice", alicePassword)
	l, code, errCode := app2.silent(t, b)
	if errCode != "" {
		t.Fatalf("silent login: %s", errCode)
	}
	if p := b.signOut(e.issuer + "/v2/logout"); !strings.Contains(p.body, "You are signed out") {
		t.Fatalf("logout: status %d, no signed-out page", p.status)
	}
	_, err := app2.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
	assertOAuthError(t, err, "invalid_grant")
}
