package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
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
		"end_session_endpoint": http.MethodGet, "device_authorization_endpoint": http.MethodPost,
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
		"grant_types_supported":                 {"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"code_challenge_methods_supported":      {"S256"},
		"id_token_signing_alg_values_supported": {"RS256", "ES256"},
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

	// The JWKS holds current, next and previous public keys of both algorithms with
	// distinct kids, and nothing private.
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
	var published []string
	for _, k := range keys.Public() {
		published = append(published, k.KeyID)
	}
	if len(published) < 5 || !slices.Equal(kids, published) {
		t.Errorf("JWKS kids = %v", kids)
	}

	if _, err := oidc.NewProvider(context.Background(), e.issuer); err != nil {
		t.Errorf("go-oidc rejects the discovery document: %v", err)
	}
}

// TestEachClientPicksItsIDTokenAlgorithm serves RS256 and ES256 side by side: the
// server's signing.algorithm is the default and a client's idTokenSigningAlgorithm picks
// its own, for its ID tokens and its logout tokens, both verifiable with the JWKS.
func TestEachClientPicksItsIDTokenAlgorithm(t *testing.T) {
	tests := []struct {
		name, server, client, want string
	}{
		{"an ES256 server signs a client's ID tokens ES256 by default", "ES256", "", "ES256"},
		{"an ES256 server signs RS256 for a client that picks RS256", "ES256", "RS256", "RS256"},
		{"an RS256 server signs ES256 for a client that picks ES256", "RS256", "ES256", "ES256"},
		{"an RS256 server signs a client's ID tokens RS256 by default", "RS256", "", "RS256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newLogoutReceiver(t, nil)
			e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app2": rec.url}), func(c *config.Config) {
				c.Signing.Algorithm = tc.server
				for i := range c.Clients {
					if c.Clients[i].ID == "app2" {
						c.Clients[i].IDTokenSigningAlgorithm = tc.client
					}
				}
			})
			rp := e.rp("app2", "app2-secret")
			rp.verifier = rp.provider.Verifier(&oidc.Config{ClientID: "app2", Now: e.clock.Now, SupportedSigningAlgs: []string{tc.want}})
			b := e.browser()
			tok, _ := rp.signIn(t, b, "alice", alicePassword)
			raw, _ := tok.Extra("id_token").(string)
			header, _, _ := strings.Cut(raw, ".")
			if h := decodeSegment(t, header); !strings.Contains(h, `"alg":"`+tc.want+`"`) {
				t.Errorf("ID token header = %s, want alg %s", h, tc.want)
			}
			b.get(e.issuer + "/oidc/logout?id_token_hint=" + url.QueryEscape(raw))
			if lt := verifyLogoutToken(t, e, rec.next(t).token); lt.header.Algorithm != tc.want {
				t.Errorf("logout token alg = %s, want %s", lt.header.Algorithm, tc.want)
			}
		})
	}
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
