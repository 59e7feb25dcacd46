package server

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

// fuzzConfig has one client of each kind that the authorization endpoint serves.
var fuzzConfig = &config.Config{
	Clients: []config.Client{
		{ID: "native", Type: config.ClientNative, RedirectURIs: []string{"http://127.0.0.1/cb", "com.example.app:/cb"}, Connections: []string{"db"}},
		{ID: "spa", Type: config.ClientSinglePageApp, RedirectURIs: []string{"https://spa.example/cb"}, WebOrigins: []string{"https://spa.example"}, Connections: []string{"db"}},
		{ID: "web", Type: config.ClientRegularWebApp, SecretSHA256: []string{"00"}, RedirectURIs: []string{"https://web.example/cb", "https://web.example/cb2"}, Connections: []string{"db"}},
		{ID: "web-pkce", Type: config.ClientRegularWebApp, SecretSHA256: []string{"00"}, RedirectURIs: []string{"https://web.example/cb"}, RequirePKCE: true, Connections: []string{"db"}},
	},
	Connections: []config.Connection{{Name: "db", Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{}}},
}

// FuzzParseAuthorizeRequest checks the parser's security invariants on arbitrary query
// strings: it never panics, never accepts a redirect URI that is not registered, and never
// lets a request through that breaks the PKCE, response_mode or connection rules.
func FuzzParseAuthorizeRequest(f *testing.F) {
	f.Add("client_id=web&redirect_uri=https%3A%2F%2Fweb.example%2Fcb&response_type=code&scope=openid")
	f.Add("client_id=spa&redirect_uri=https%3A%2F%2Fspa.example%2Fcb&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&response_mode=web_message&prompt=none")
	f.Add("client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcb&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&max_age=0&connection=db")
	f.Add("client_id=web&client_id=spa&redirect_uri=https%3A%2F%2Fevil.example%2F")
	f.Add("client_id=web&response_type=code&prompt=none+login&state=%00")
	f.Fuzz(func(t *testing.T, raw string) {
		form, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, client, err := parseAuthorizeRequest(fuzzConfig, form)
		var pe *pageError
		var re *redirectError
		switch {
		case errors.As(err, &pe):
			return
		case errors.As(err, &re):
			if !matchRedirectURI(client.RedirectURIs, re.req.RedirectURI, client.Type == config.ClientNative) {
				t.Fatalf("error redirected to unregistered %q", re.req.RedirectURI)
			}
			if re.req.ResponseMode == modeWebMessage && !slices.Contains(client.WebOrigins, origin(re.req.RedirectURI)) {
				t.Fatalf("web_message error to unregistered origin")
			}
			return
		case err != nil:
			t.Fatalf("unexpected error type %T", err)
		}
		if !matchRedirectURI(client.RedirectURIs, req.RedirectURI, client.Type == config.ClientNative) {
			t.Fatalf("accepted unregistered redirect %q", req.RedirectURI)
		}
		if (client.Public() || client.RequirePKCE) && (req.CodeChallenge == "" || req.CodeChallengeMethod != "S256") {
			t.Fatalf("public client without S256 PKCE accepted")
		}
		if req.CodeChallenge != "" && !validChallenge(req.CodeChallenge) {
			t.Fatalf("malformed challenge accepted: %q", req.CodeChallenge)
		}
		if !slices.Contains([]string{modeQuery, modeFragment, modeFormPost, modeWebMessage}, req.ResponseMode) {
			t.Fatalf("response mode %q accepted", req.ResponseMode)
		}
		if req.ResponseMode == modeWebMessage && !slices.Contains(client.WebOrigins, origin(req.RedirectURI)) {
			t.Fatalf("web_message accepted for an unregistered origin")
		}
		if req.Connection != "" && !slices.Contains(client.Connections, req.Connection) {
			t.Fatalf("connection %q accepted", req.Connection)
		}
		if req.PromptNone && req.PromptLogin {
			t.Fatalf("prompt=none combined with login accepted")
		}
		if form.Get("response_type") != "code" {
			t.Fatalf("response_type %q accepted", form.Get("response_type"))
		}
	})
}

// FuzzMatchRedirectURI checks that a match is either the exact registered string or, for
// native clients only, the same http loopback URI with another port.
func FuzzMatchRedirectURI(f *testing.F) {
	f.Add("https://app.example/cb", "https://app.example/cb", false)
	f.Add("https://app.example/cb", "https://app.example/cb/", false)
	f.Add("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb", true)
	f.Add("http://127.0.0.1/cb", "http://127.0.0.1:51000/cb", false)
	f.Add("http://localhost/cb", "http://localhost.evil.example:80/cb", true)
	f.Add("http://[::1]/cb", "http://[::1]:8080/cb?x=1", true)
	f.Add("http://127.0.0.1/cb", "http://user@127.0.0.1:1/cb", true)
	f.Fuzz(func(t *testing.T, registered, requested string, native bool) {
		if !matchRedirectURI([]string{registered}, requested, native) {
			return
		}
		if requested == registered {
			return
		}
		if !native {
			t.Fatalf("non-native client matched %q against %q", requested, registered)
		}
		reg, ok1 := parseLoopback(registered)
		req, ok2 := parseLoopback(requested)
		if !ok1 || !ok2 {
			t.Fatalf("port exception applied to non-loopback %q / %q", registered, requested)
		}
		if reg.Hostname() != req.Hostname() || reg.EscapedPath() != req.EscapedPath() || reg.RawQuery != req.RawQuery ||
			req.User != nil || strings.Contains(requested, "#") {
			t.Fatalf("%q matched %q with more than a port change", requested, registered)
		}
	})
}
