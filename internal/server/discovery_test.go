package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/hallpass/hallpass/internal/config"
)

func TestDiscoveryMatchesWhatIsServed(t *testing.T) {
	e := newEnv(t)
	var doc map[string]any
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
	var asDoc map[string]any
	getJSON(t, e.issuer+"/.well-known/oauth-authorization-server", &asDoc)
	if doc["issuer"] != e.issuer || asDoc["issuer"] != e.issuer {
		t.Fatalf("issuer = %v / %v, want %s", doc["issuer"], asDoc["issuer"], e.issuer)
	}

	// Every advertised endpoint exists: none answers 404 or 405 to its method.
	for key, method := range map[string]string{
		"authorization_endpoint": http.MethodGet, "token_endpoint": http.MethodPost, "userinfo_endpoint": http.MethodGet,
		"jwks_uri": http.MethodGet, "revocation_endpoint": http.MethodPost, "introspection_endpoint": http.MethodPost,
		"end_session_endpoint": http.MethodGet,
	} {
		u, _ := doc[key].(string)
		if !strings.HasPrefix(u, e.issuer+"/") {
			t.Errorf("%s = %q, not under the issuer", key, u)
			continue
		}
		req, _ := http.NewRequest(method, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d", method, u, resp.StatusCode)
		}
	}

	want := map[string][]string{
		"response_types_supported":              {"code"},
		"grant_types_supported":                 {"authorization_code", "refresh_token", "client_credentials"},
		"code_challenge_methods_supported":      {"S256"},
		"id_token_signing_alg_values_supported": {"RS256"},
		"response_modes_supported":              {"query", "fragment", "form_post", "web_message"},
	}
	for key, values := range want {
		var got []string
		for _, v := range doc[key].([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, values) {
			t.Errorf("%s = %v, want %v", key, got, values)
		}
	}
	if doc["authorization_response_iss_parameter_supported"] != true {
		t.Error("RFC 9207 support not advertised")
	}
	for _, absent := range []string{"registration_endpoint", "check_session_iframe"} {
		if _, ok := doc[absent]; ok {
			t.Errorf("discovery advertises %s, which is not implemented", absent)
		}
	}

	// The JWKS holds current, next and previous public keys with distinct kids, and nothing
	// private.
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	getJSON(t, e.issuer+"/jwks", &jwks)
	keys, _ := testKeys()
	var kids []string
	for _, k := range jwks.Keys {
		kids = append(kids, k["kid"].(string))
		if _, private := k["d"]; private {
			t.Error("JWKS publishes a private key")
		}
	}
	if !slices.Equal(kids, []string{keys.Current.KeyID, keys.Next.KeyID, keys.Previous.KeyID}) {
		t.Errorf("JWKS kids = %v", kids)
	}

	if _, err := oidc.NewProvider(context.Background(), e.issuer); err != nil {
		t.Errorf("go-oidc rejects the discovery document: %v", err)
	}
}

func TestES256SignedIDTokensVerify(t *testing.T) {
	keys, err := config.NewSigningKeys("ES256")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	if err := e.srv.Apply(withAlg(e.srv.Config(), "ES256"), keys); err != nil {
		t.Fatalf("apply ES256 keys: %v", err)
	}
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	raw, _ := tok.Extra("id_token").(string)
	header, _, _ := strings.Cut(raw, ".")
	if !strings.Contains(decodeSegment(t, header), `"alg":"ES256"`) || !strings.Contains(decodeSegment(t, header), keys.Current.KeyID) {
		t.Errorf("ID token header = %s", decodeSegment(t, header))
	}
}

func TestAnAlgorithmChangeSignsWithTheCurrentKeyAndAdvertisesBoth(t *testing.T) {
	e := newEnv(t)
	rsaKeys, _ := testKeys()
	keys := *rsaKeys
	// The operator switched signing.algorithm to ES256: the new key waits in Next.
	if err := keys.Rotate("ES256"); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Apply(withAlg(e.srv.Config(), "ES256"), &keys); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var doc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	getJSON(t, e.issuer+"/.well-known/openid-configuration", &doc)
	if !slices.Equal(doc.Algs, []string{"RS256", "ES256"}) {
		t.Errorf("advertised algorithms = %v", doc.Algs)
	}
	tok, _ := e.rp("app2", "app2-secret").signIn(t, e.browser(), "alice", alicePassword)
	raw, _ := tok.Extra("id_token").(string)
	header, _, _ := strings.Cut(raw, ".")
	if h := decodeSegment(t, header); !strings.Contains(h, `"alg":"RS256"`) || !strings.Contains(h, keys.Current.KeyID) {
		t.Errorf("ID token header = %s, want RS256 with the current key", h)
	}
}

func withAlg(c *config.Config, alg string) *config.Config {
	cp := *c
	cp.Signing.Algorithm = alg
	return &cp
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
}

func decodeSegment(t *testing.T, seg string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode JWT segment: %v", err)
	}
	return string(b)
}
