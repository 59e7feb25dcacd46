package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestCodeFlowWithPKCEGivesVerifiableTokensAndUserinfo(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	tok, idt := rp.signIn(t, e.browser(), "alice", alicePassword)

	var claims struct {
		Sub           string   `json:"sub"`
		AuthTime      int64    `json:"auth_time"`
		SID           string   `json:"sid"`
		AMR           []string `json:"amr"`
		ACR           string   `json:"acr"`
		Name          string   `json:"name"`
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		Groups        []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.Sub != "people|alice" || claims.SID == "" || claims.ACR == "" || !slices.Equal(claims.AMR, []string{"pwd"}) {
		t.Errorf("ID token claims = %+v", claims)
	}
	if claims.AuthTime != e.clock.Now().Unix() {
		t.Errorf("auth_time = %d, want %d", claims.AuthTime, e.clock.Now().Unix())
	}
	if claims.Name != "Alice Liddell" || claims.Email != "alice@example.com" || !claims.EmailVerified || !slices.Equal(claims.Groups, []string{"admins"}) {
		t.Errorf("scope claims = %+v", claims)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Error("offline_access gave no refresh token")
	}

	ui, err := rp.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != "people|alice" || ui.Email != "alice@example.com" {
		t.Errorf("userinfo = %+v", ui)
	}

	// POST with the token in the body works too (OIDC Core §5.3.1).
	resp, err := http.PostForm(e.issuer+"/userinfo", url.Values{"access_token": {tok.AccessToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("userinfo POST status = %d", resp.StatusCode)
	}
}

func TestScopesLimitTheClaimsReleased(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret", "openid")
	tok, idt := rp.signIn(t, e.browser(), "alice", alicePassword)
	var claims map[string]any
	_ = idt.Claims(&claims)
	for _, c := range []string{"email", "name", "groups", "preferred_username"} {
		if _, ok := claims[c]; ok {
			t.Errorf("scope openid alone released %s", c)
		}
	}
	if tok.RefreshToken != "" {
		t.Error("a refresh token was issued without offline_access")
	}
}

func TestBcryptHashesFromAnotherSystemAreAccepted(t *testing.T) {
	e := newEnv(t)
	_, idt := e.rp("app2", "app2-secret").signIn(t, e.browser(), "bob", bobPassword)
	if idt.Subject != "people|bob" {
		t.Errorf("sub = %q", idt.Subject)
	}
}

func TestPKCE(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a public client without code_challenge is refused", func(t *testing.T) {
			rp := e.rp("spa", "")
			l := newLogin()
			u := strings.Replace(rp.authURL(l), "code_challenge=", "x_challenge=", 1)
			if got := rp.authError(t, l, e.browser().get(u)); got != "invalid_request" {
				t.Errorf("error = %q, want invalid_request", got)
			}
		}},
		{"a confidential client that requires PKCE must send a challenge", func(t *testing.T) {
			rp := e.rp("pkce", "pkce-secret")
			l := newLogin()
			if got := rp.authError(t, l, e.browser().get(rp.oauth.AuthCodeURL(l.state))); got != "invalid_request" {
				t.Errorf("error = %q, want invalid_request", got)
			}
			rp.signIn(t, e.browser(), "alice", alicePassword)
		}},
		{"the plain method is refused", func(t *testing.T) {
			rp := e.rp("spa", "")
			l := newLogin()
			u := rp.oauth.AuthCodeURL(l.state, oauth2.SetAuthURLParam("code_challenge", l.verifier[:43]), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
			if got := rp.authError(t, l, e.browser().get(u)); got != "invalid_request" {
				t.Errorf("error = %q, want invalid_request", got)
			}
		}},
		{"a wrong verifier is refused with invalid_grant", func(t *testing.T) {
			rp := e.rp("spa", "")
			_, code := rp.loginCode(t, e.browser(), "alice", alicePassword)
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
			assertOAuthError(t, err, "invalid_grant")
		}},
		{"a verifier for a request without challenge is refused (downgrade)", func(t *testing.T) {
			rp := e.rp("app2", "app2-secret")
			b := e.browser()
			l := newLogin()
			u := rp.oauth.AuthCodeURL(l.state)
			code := rp.callback(t, l, b.submitLogin(b.get(u), "alice", alicePassword))
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			assertOAuthError(t, err, "invalid_grant")
		}},
		{"a public client with the right verifier gets tokens", func(t *testing.T) {
			rp := e.rp("spa", "")
			rp.signIn(t, e.browser(), "alice", alicePassword)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func assertOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want an OAuth error %s", err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("error code = %q (%s), want %q", re.ErrorCode, re.ErrorDescription, code)
	}
}

func userinfoStatus(t *testing.T, e *env, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func refresh(rp *relyingParty, token string) (*oauth2.Token, error) {
	return rp.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: token, Expiry: time.Unix(1, 0)}).Token()
}

func TestRefreshTokensRotateWithAGraceWindowAndReplayRevokesTheFamily(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	first, _ := rp.signIn(t, e.browser(), "alice", alicePassword)

	second, err := refresh(rp, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh token was not rotated")
	}
	if raw, _ := second.Extra("id_token").(string); raw == "" {
		t.Error("refresh gave no ID token")
	} else if _, err := rp.verifier.Verify(context.Background(), raw); err != nil {
		t.Errorf("refreshed ID token: %v", err)
	}

	// A concurrent refresh with the same (now previous) token inside the grace window gets
	// the same new refresh token, so the family does not fork.
	e.clock.Advance(2 * time.Second)
	again, err := refresh(rp, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh within the reuse interval: %v", err)
	}
	if again.RefreshToken != second.RefreshToken {
		t.Errorf("grace refresh returned another token than the rotation")
	}

	// After the window, the old token is a replay: refused, and the whole family dies.
	e.clock.Advance(2 * time.Second)
	_, err = refresh(rp, first.RefreshToken)
	assertOAuthError(t, err, "invalid_grant")
	_, err = refresh(rp, second.RefreshToken)
	assertOAuthError(t, err, "invalid_grant")
	if status := userinfoStatus(t, e, second.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("access token of a revoked family: status %d, want 401", status)
	}
}

func TestARefreshTokenIsBoundToItsClient(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	_, err := refresh(e.rp("app1", "app1-secret"), tok.RefreshToken)
	assertOAuthError(t, err, "invalid_grant")
}

func tokenRequest(t *testing.T, e *env, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", cc)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		wantStatus int
		wantError  string
	}{
		{"a machine-to-machine client with client_secret_basic gets a token", url.Values{"grant_type": {"client_credentials"}, "audience": {reportsAPI}, "scope": {"reports:read"}}, "m2m", "m2m-secret", 200, ""},
		{"a machine-to-machine client with client_secret_post gets a token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"m2m"}, "client_secret": {"m2m-secret"}}, "", "", 200, ""},
		{"a wrong secret is refused with invalid_client", url.Values{"grant_type": {"client_credentials"}}, "m2m", "wrong", 401, "invalid_client"},
		{"a wrong posted secret is refused with invalid_client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"m2m"}, "client_secret": {"nope"}}, "", "", 401, "invalid_client"},
		{"an unknown client is refused with invalid_client", url.Values{"grant_type": {"client_credentials"}}, "ghost", "m2m-secret", 401, "invalid_client"},
		{"a web application may not use client_credentials", url.Values{"grant_type": {"client_credentials"}}, "app2", "app2-secret", 400, "unauthorized_client"},
		{"user scopes are refused without a user", url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, "m2m", "m2m-secret", 400, "invalid_scope"},
		{"an unknown grant type is refused", url.Values{"grant_type": {"password"}}, "m2m", "m2m-secret", 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tokenRequest(t, e, tc.form, tc.user, tc.pass)
			if status != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", status, tc.wantStatus, body)
			}
			if tc.wantError != "" && body["error"] != tc.wantError {
				t.Fatalf("error = %v, want %s", body["error"], tc.wantError)
			}
			if tc.wantError == "" && (body["access_token"] == nil || body["id_token"] != nil || body["refresh_token"] != nil) {
				t.Fatalf("body = %v, want an access token only", body)
			}
		})
	}
}

func TestAWrongClientSecretCannotRedeemACode(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	l, code := rp.loginCode(t, e.browser(), "alice", alicePassword)
	bad := e.rp("app2", "not-the-secret")
	_, err := bad.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
	assertOAuthError(t, err, "invalid_client")
	// The failed attempt did not burn the code for the real client.
	rp.exchange(t, l, code)
}

func TestAnUntrustworthyClientOrRedirectShowsAnErrorPageAndNeverRedirects(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		params url.Values
	}{
		{"an unknown client", url.Values{"client_id": {"ghost"}, "redirect_uri": {"https://app2.example/callback"}, "response_type": {"code"}}},
		{"a missing client_id", url.Values{"redirect_uri": {"https://app2.example/callback"}, "response_type": {"code"}}},
		{"an unregistered redirect URI", url.Values{"client_id": {"app2"}, "redirect_uri": {"https://evil.example/callback"}, "response_type": {"code"}}},
		{"a registered redirect URI with a query added", url.Values{"client_id": {"app2"}, "redirect_uri": {"https://app2.example/callback?x=1"}, "response_type": {"code"}}},
		{"a registered redirect URI with a different case", url.Values{"client_id": {"app2"}, "redirect_uri": {"https://APP2.example/callback"}, "response_type": {"code"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := e.browser().get(e.issuer + "/authorize?" + tc.params.Encode())
			if p.location != nil || p.header.Get("Location") != "" {
				t.Fatalf("redirected to %s", p.header.Get("Location"))
			}
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "not") {
				t.Fatalf("status %d, body:\n%s", p.status, p.body)
			}
		})
	}
}

func TestAuthorizationErrorsGoBackToTheRegisteredRedirectURI(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	tests := []struct {
		name      string
		params    []oauth2.AuthCodeOption
		wantError string
	}{
		{"an unsupported response type", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("response_type", "token")}, "unsupported_response_type"},
		{"prompt=none combined with login", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none login")}, "invalid_request"},
		{"a connection the client may not use", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("connection", "staff")}, "invalid_request"},
		{"a negative max_age", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "-1")}, "invalid_request"},
		{"an id_token_hint this server did not sign", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("id_token_hint", "eyJhbGciOiJub25lIn0.e30.")}, "invalid_request"},
		{"an unsupported response_mode", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("response_mode", "jwt")}, "invalid_request"},
		{"web_message from an origin that is not registered", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("response_mode", "web_message")}, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLogin()
			if got := rp.authError(t, l, e.browser().get(rp.authURL(l, tc.params...))); got != tc.wantError {
				t.Fatalf("error = %q, want %q", got, tc.wantError)
			}
		})
	}
}

func TestUnknownParametersAndPOSTAreAccepted(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	l := newLogin()
	u, _ := url.Parse(rp.authURL(l, oauth2.SetAuthURLParam("frobnicate", "yes"), oauth2.SetAuthURLParam("ui_locales", "fr")))
	p := b.post(e.issuer+"/authorize", u.Query())
	rp.exchange(t, l, rp.callback(t, l, b.submitLogin(p, "alice", alicePassword)))
}

func TestResponseModes(t *testing.T) {
	e := newEnv(t)
	spa := e.rp("spa", "")
	b := e.browser()
	spa.signIn(t, b, "alice", alicePassword)

	t.Run("fragment puts the response after #", func(t *testing.T) {
		l := newLogin()
		p := b.get(spa.authURL(l, oauth2.SetAuthURLParam("response_mode", "fragment")))
		if p.location == nil || p.location.RawQuery != "" {
			t.Fatalf("location = %v", p.location)
		}
		frag, _ := url.ParseQuery(p.location.Fragment)
		if frag.Get("code") == "" || frag.Get("state") != l.state || frag.Get("iss") != e.issuer {
			t.Fatalf("fragment = %v", frag)
		}
	})
	t.Run("form_post renders a self-submitting form to the redirect URI", func(t *testing.T) {
		l := newLogin()
		p := b.get(spa.authURL(l, oauth2.SetAuthURLParam("response_mode", "form_post")))
		action, fields := formFields(t, p)
		if action != "https://spa.example/callback" || fields.Get("code") == "" || fields.Get("state") != l.state || fields.Get("iss") != e.issuer {
			t.Fatalf("action %s fields %v", action, fields)
		}
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://spa.example") {
			t.Errorf("CSP = %q", csp)
		}
	})
	t.Run("web_message posts to the registered origin only and may be framed by it", func(t *testing.T) {
		l := newLogin()
		p := b.get(spa.authURL(l, oauth2.SetAuthURLParam("response_mode", "web_message"), oauth2.SetAuthURLParam("prompt", "none")))
		if p.status != http.StatusOK || !strings.Contains(p.body, `"authorization_response"`) || !strings.Contains(p.body, `"https://spa.example"`) {
			t.Fatalf("status %d body:\n%s", p.status, p.body)
		}
		if !strings.Contains(p.body, l.state) {
			t.Error("web_message response lacks state")
		}
		if p.header.Get("X-Frame-Options") != "" || !strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors https://spa.example") {
			t.Errorf("framing headers: XFO=%q CSP=%q", p.header.Get("X-Frame-Options"), p.header.Get("Content-Security-Policy"))
		}
	})
}

func TestCORSOnTheTokenEndpointOnlyForTheClientsWebOrigins(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, origin string
		allowed      bool
	}{
		{"the SPA's registered origin is allowed", "https://spa.example", true},
		{"another origin is not", "https://evil.example", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodOptions, http.MethodPost} {
				req, _ := http.NewRequest(method, e.issuer+"/token", strings.NewReader(url.Values{"client_id": {"spa"}, "grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode()))
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				got := resp.Header.Get("Access-Control-Allow-Origin")
				if tc.allowed && got != tc.origin || !tc.allowed && got != "" {
					t.Errorf("%s: Access-Control-Allow-Origin = %q", method, got)
				}
			}
		})
	}
	// The authorization endpoint never answers CORS (RFC 9700 §2.6).
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/authorize?client_id=spa", nil)
	req.Header.Set("Origin", "https://spa.example")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("the authorization endpoint sent CORS headers")
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	tok, _ := rp.signIn(t, e.browser(), "alice", alicePassword)

	introspect := func(token string) map[string]any { return e.introspect(t, token) }
	if got := introspect(tok.AccessToken); got["active"] != true || got["sub"] != "people|alice" || got["client_id"] != "app2" {
		t.Fatalf("introspect access token = %v", got)
	}
	if got := introspect(tok.RefreshToken); got["active"] != true || got["token_type"] != "refresh_token" {
		t.Fatalf("introspect refresh token = %v", got)
	}
	if got := introspect("garbage"); len(got) != 1 || got["active"] != false {
		t.Fatalf("introspect garbage = %v, want only active=false", got)
	}

	revoke := func(user, pass, token string) int { return revokeToken(t, e, user, pass, token) }
	// Another client cannot revoke app2's token, and learns nothing from trying.
	if status := revoke("app1", "app1-secret", tok.RefreshToken); status != http.StatusOK {
		t.Fatalf("revoke by another client: status %d", status)
	}
	if got := introspect(tok.RefreshToken); got["active"] != true {
		t.Fatal("another client revoked app2's refresh token")
	}
	if status := revoke("app2", "app2-secret", tok.RefreshToken); status != http.StatusOK {
		t.Fatalf("revoke: status %d", status)
	}
	if got := introspect(tok.RefreshToken); got["active"] != false {
		t.Errorf("revoked refresh token is still active")
	}
	if got := introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("access token of a revoked refresh token is still active")
	}
	if status := revoke("app2", "wrong", tok.AccessToken); status != http.StatusUnauthorized {
		t.Errorf("revoke with a wrong secret: status %d, want 401", status)
	}
}

func TestAMachineTokenGetsNoUserinfo(t *testing.T) {
	e := newEnv(t)
	_, body := tokenRequest(t, e, url.Values{"grant_type": {"client_credentials"}}, "m2m", "m2m-secret")
	token, _ := body["access_token"].(string)
	if status := userinfoStatus(t, e, token); status != http.StatusForbidden {
		t.Errorf("userinfo with a client-credentials token: status %d, want 403", status)
	}
	if status := userinfoStatus(t, e, "not-a-token"); status != http.StatusUnauthorized {
		t.Errorf("userinfo with a bogus token: status %d, want 401", status)
	}
}

func TestConcurrentRefreshesOfOneTokenAllGetTheSameRotation(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	first, _ := rp.signIn(t, e.browser(), "alice", alicePassword)

	const n = 6
	results := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			tok, err := refresh(rp, first.RefreshToken)
			if err != nil {
				errs <- err
				return
			}
			results <- tok.RefreshToken
		}()
	}
	var tokens []string
	for range n {
		select {
		case err := <-errs:
			t.Fatalf("a concurrent refresh failed: %v", err)
		case tok := <-results:
			tokens = append(tokens, tok)
		}
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("concurrent refreshes forked the family into different tokens")
		}
	}
	if _, err := refresh(rp, tokens[0]); err != nil {
		t.Fatalf("the rotated token does not work: %v", err)
	}
}

func TestMetricsCountLoginsAuthorizationsAndTokens(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	app2 := e.rp("app2", "app2-secret")
	b.submitLogin(b.get(app2.authURL(newLogin())), "alice", "wrong")
	app2.signIn(t, b, "alice", alicePassword)
	l, code, _ := e.rp("app1", "app1-secret").silent(t, b, oauthConnection("people"))
	e.rp("app1", "app1-secret").exchange(t, l, code)
	e.rp("nosso", "nosso-secret").silent(t, b)

	want := map[string]float64{
		`hallpass_logins_total{result="failure"}`:                               1,
		`hallpass_logins_total{result="success"}`:                               1,
		`hallpass_authorizations_total{outcome="login"}`:                        2,
		`hallpass_authorizations_total{outcome="sso"}`:                          1,
		`hallpass_authorizations_total{outcome="login_required"}`:               1,
		`hallpass_token_requests_total{grant="authorization_code",result="ok"}`: 2,
	}
	for k, v := range want {
		assertMetric(t, e, k, v)
	}
}
