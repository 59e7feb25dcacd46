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
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

// TestOpenIDBasicAndConfigPlans reproduces the checks of the OpenID Foundation's
// oidcc-basic-certification-test-plan and oidcc-config-certification-test-plan that apply
// to a code-flow provider, as a relying party (go-oidc and x/oauth2) sees them, once per
// signing.algorithm: a provider signing with ES256 by default must pass them all too, and
// still offer RS256.
func TestOpenIDBasicAndConfigPlans(t *testing.T) {
	for _, alg := range config.Algorithms {
		t.Run("signing.algorithm "+alg, func(t *testing.T) {
			runOpenIDPlans(t, alg)
		})
	}
}

func runOpenIDPlans(t *testing.T, alg string) {
	e := newEnv(t, func(c *config.Config) { c.Signing.Algorithm = alg })
	rp := e.rp("app2", "app2-secret")
	// The relying party accepts only the provider's default algorithm, so a token signed
	// with another one fails.
	rp.verifier = rp.provider.Verifier(&oidc.Config{ClientID: "app2", Now: e.clock.Now, SupportedSigningAlgs: []string{alg}})
	var jwks jose.JSONWebKeySet
	getJSON(t, e.issuer+"/jwks", &jwks)

	t.Run("oidcc-discovery-endpoint-verification: the metadata names what a relying party needs", func(t *testing.T) {
		var doc struct {
			Issuer        string   `json:"issuer"`
			Authorization string   `json:"authorization_endpoint"`
			Token         string   `json:"token_endpoint"`
			JWKS          string   `json:"jwks_uri"`
			ResponseTypes []string `json:"response_types_supported"`
			SubjectTypes  []string `json:"subject_types_supported"`
			Algs          []string `json:"id_token_signing_alg_values_supported"`
		}
		getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
		if doc.Issuer != e.issuer || doc.Authorization == "" || doc.Token == "" || doc.JWKS != e.issuer+"/jwks" ||
			!slices.Contains(doc.ResponseTypes, "code") || len(doc.SubjectTypes) == 0 {
			t.Errorf("discovery = %+v", doc)
		}
		// RS256 must always be offered (Discovery §3); the default algorithm comes first.
		if len(doc.Algs) == 0 || doc.Algs[0] != alg || !slices.Contains(doc.Algs, "RS256") {
			t.Errorf("id_token_signing_alg_values_supported = %v, want %s first and RS256 offered", doc.Algs, alg)
		}
		kids := map[string]bool{}
		algs := map[string]bool{}
		for _, k := range jwks.Keys {
			if kids[k.KeyID] || k.KeyID == "" || k.Use != "sig" || !k.IsPublic() {
				t.Errorf("JWKS key %q: duplicate or empty kid, use %q, or private", k.KeyID, k.Use)
			}
			kids[k.KeyID], algs[k.Algorithm] = true, true
		}
		if !algs["RS256"] || !algs["ES256"] {
			t.Errorf("JWKS algorithms = %v, want RS256 and ES256 keys", algs)
		}
	})

	b := e.browser()
	l := newLogin()
	code := rp.callback(t, l, b.submitLogin(b.get(rp.authURL(l)), "alice", alicePassword))
	tok, idt := rp.exchange(t, l, code)
	raw, _ := tok.Extra("id_token").(string)

	t.Run("oidcc-server: the ID token's claims are those of this login", func(t *testing.T) {
		var c struct {
			AuthTime int64  `json:"auth_time"`
			ACR      string `json:"acr"`
		}
		_ = idt.Claims(&c)
		now := e.clock.Now()
		if idt.Issuer != e.issuer || !slices.Equal(idt.Audience, []string{"app2"}) || !idt.Expiry.After(now) ||
			now.Sub(idt.IssuedAt) > 5*time.Minute || idt.IssuedAt.After(now) || c.AuthTime > now.Unix() || c.ACR == "" {
			t.Errorf("ID token iss=%s aud=%v exp=%v iat=%v auth_time=%d acr=%q", idt.Issuer, idt.Audience, idt.Expiry, idt.IssuedAt, c.AuthTime, c.ACR)
		}
	})
	t.Run("oidcc-idtoken-signature: signed with the default algorithm and a published kid", func(t *testing.T) {
		jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
		if err != nil {
			t.Fatalf("ID token is not signed with %s: %v", alg, err)
		}
		keys := jwks.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 {
			t.Fatalf("kid %q is not in the JWKS", jws.Signatures[0].Header.KeyID)
		}
		if _, err := jws.Verify(keys[0].Key); err != nil {
			t.Fatalf("signature: %v", err)
		}
	})
	t.Run("oidcc-server-client-secret-post: the code flow with the secret in the body", func(t *testing.T) {
		post := *rp
		post.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		l := newLogin()
		_, idt := post.exchange(t, l, post.callback(t, l, b.get(post.authURL(l))))
		if idt.Subject != "people|alice" {
			t.Errorf("sub = %q", idt.Subject)
		}
	})
	t.Run("oidcc-userinfo-get, -post-header, -post-body: userinfo answers each way", func(t *testing.T) {
		for _, req := range []*http.Request{
			func() *http.Request { r, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil); return r }(),
			func() *http.Request { r, _ := http.NewRequest(http.MethodPost, e.issuer+"/userinfo", nil); return r }(),
		} {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("%s userinfo: %v %v", req.Method, err, resp)
			} else {
				resp.Body.Close()
			}
		}
		resp, err := http.PostForm(e.issuer+"/userinfo", url.Values{"access_token": {tok.AccessToken}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("userinfo with the token in the body: %v %v", err, resp)
		}
		resp.Body.Close()
	})
	t.Run("oidcc-ensure-request-without-nonce-succeeds-for-code-flow", func(t *testing.T) {
		l := newLogin()
		u := strings.Replace(rp.authURL(l), "nonce="+l.nonce, "", 1)
		l.nonce = ""
		rp.exchange(t, l, rp.callback(t, l, b.get(u)))
	})
	t.Run("oidcc-prompt-none-logged-in and oidcc-id-token-hint: the same user and auth_time, silently", func(t *testing.T) {
		l, code, errCode := rp.silent(t, b, oauth2.SetAuthURLParam("id_token_hint", raw))
		if errCode != "" {
			t.Fatalf("prompt=none with the hint: %s", errCode)
		}
		_, again := rp.exchange(t, l, code)
		if again.Subject != idt.Subject || authTime(t, again) != authTime(t, idt) {
			t.Errorf("silent login sub/auth_time = %s/%d, want %s/%d", again.Subject, authTime(t, again), idt.Subject, authTime(t, idt))
		}
	})
	t.Run("oidcc-prompt-none-not-logged-in: login_required with a 128-character state intact", func(t *testing.T) {
		l := newLogin()
		l.state = strings.Repeat("s", 128)
		p := e.browser().get(rp.authURL(l, oauth2.SetAuthURLParam("prompt", "none")))
		if got := rp.authError(t, l, p); got != "login_required" {
			t.Errorf("error = %q, want login_required", got)
		}
	})
	t.Run("oidcc-max-age-1: an older login asks again", func(t *testing.T) {
		e.clock.Advance(2 * time.Second)
		if p := b.get(rp.authURL(newLogin(), oauth2.SetAuthURLParam("max_age", "1"))); p.location != nil {
			t.Fatalf("max_age=1 after 2s redirected to %s without a login", p.location)
		}
	})
	t.Run("oidcc-refresh-token: the refresh token gives a new ID token of the same user", func(t *testing.T) {
		fresh, err := refresh(rp, tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		raw, _ := fresh.Extra("id_token").(string)
		if got, err := rp.verifier.Verify(context.Background(), raw); err != nil || got.Subject != idt.Subject {
			t.Fatalf("refreshed ID token: %v", err)
		}
	})
	t.Run("oidcc-codereuse: a code is redeemed once, and its reuse revokes what it gave", func(t *testing.T) {
		_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
		assertOAuthError(t, err, "invalid_grant")
		if _, err := refresh(rp, tok.RefreshToken); err == nil {
			t.Error("the reused code's refresh token still works")
		}
	})
	t.Run("oidcc-ensure-registered-redirect-uri: an unregistered redirect_uri is an error page", func(t *testing.T) {
		other := *rp
		other.oauth.RedirectURL = "https://evil.example/callback"
		if p := b.get(other.authURL(newLogin())); p.location != nil || p.status != http.StatusBadRequest {
			t.Fatalf("status %d location %v, want an error page", p.status, p.location)
		}
	})
}

func authTime(t *testing.T, idt *oidc.IDToken) int64 {
	t.Helper()
	var c struct {
		AuthTime int64 `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.AuthTime
}
