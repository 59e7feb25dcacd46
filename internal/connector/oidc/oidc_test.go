package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/connector/oidc"
)

const callbackURL = "http://127.0.0.1:1/connections/upstream/callback"

// signInAtPeer follows the upstream's pages as a browser would: the authorization
// request, the login form, and the redirects up to the callback, which it returns
// without following (nothing listens there).
func signInAtPeer(t *testing.T, loginURL, username, password string) *http.Request {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var callback *http.Request
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), callbackURL) {
			callback = req
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(loginURL)
	if err != nil {
		t.Fatalf("open the upstream login: %v", err)
	}
	body := readAll(t, resp)
	action := regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(body)
	if action == nil {
		t.Fatalf("no login form at the upstream (status %d):\n%s", resp.StatusCode, body)
	}
	target, _ := resp.Request.URL.Parse(action[1])
	resp, err = c.PostForm(target.String(), url.Values{"username": {username}, "password": {password}})
	if err != nil {
		t.Fatalf("post the upstream login: %v", err)
	}
	body = readAll(t, resp)
	if callback == nil {
		t.Fatalf("the upstream did not redirect to the callback (status %d):\n%s", resp.StatusCode, body)
	}
	return httptest.NewRequest(http.MethodGet, callback.URL.String(), nil)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestSignInThroughOIDCProvider(t *testing.T) {
	peer := conntest.StartOIDCProvider(t, conntest.OIDCProviderOptions{RedirectURIs: []string{callbackURL}})
	ctx := context.Background()
	c, err := oidc.Open(ctx, config.OIDCConnection{
		Issuer: peer.Issuer, ClientID: conntest.OIDCClientID, ClientSecret: conntest.OIDCClientSecret,
		Scopes: []string{"email", "groups", "openid", "profile"},
	}, false, connector.Options{CallbackURL: callbackURL})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	loginURL, priv, err := c.LoginURL(ctx, "state-1")
	if err != nil {
		t.Fatal(err)
	}
	q := mustParse(t, loginURL).Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") != "state-1" {
		t.Fatalf("authorization request lacks PKCE, nonce or state: %s", loginURL)
	}
	if strings.Contains(string(priv), q.Get("code_challenge")) {
		t.Fatal("the private login state holds the challenge instead of the verifier")
	}

	callback := signInAtPeer(t, loginURL, "alice", conntest.OIDCAlicePass)
	id, upstream, err := c.HandleCallback(ctx, callback, priv)
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	want := connector.Identity{UserID: "alice", Username: "alice", Name: "Alice Upstream", Email: "alice@example.net", EmailVerified: true, Groups: []string{"readers", "writers"}}
	if id.UserID != want.UserID || id.Username != want.Username || id.Name != want.Name || id.Email != want.Email || id.EmailVerified != want.EmailVerified || !slices.Equal(id.Groups, want.Groups) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	logout, err := connector.LogoutURL(upstream, "", "")
	if err != nil || !strings.HasPrefix(logout.String(), peer.Issuer+"/session/end?") || logout.Query().Get("id_token_hint") == "" {
		t.Errorf("federated logout URL = %v (err %v), want the peer's end_session_endpoint with an id_token_hint", logout, err)
	}

	t.Run("a replayed callback is refused, since the upstream redeems a code once", func(t *testing.T) {
		_, _, err := c.HandleCallback(ctx, callback, priv)
		if msg := connector.UserMessage(err); !strings.Contains(msg, "did not accept the authorization code") {
			t.Fatalf("err = %v, want a refused code", err)
		}
	})
	t.Run("the callback of another login's state is refused", func(t *testing.T) {
		_, priv2, err := c.LoginURL(ctx, "state-2")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.HandleCallback(ctx, signInAtPeer(t, loginURL, "bob", conntest.OIDCBobPass), priv2)
		if connector.UserMessage(err) == "" {
			t.Fatalf("err = %v, want a user-facing refusal (PKCE verifier and nonce of another login)", err)
		}
	})
	t.Run("an error answer of the upstream is shown", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, callbackURL+"?error=access_denied&state=state-1", nil)
		_, _, err := c.HandleCallback(ctx, r, priv)
		if msg := connector.UserMessage(err); !strings.Contains(msg, "access_denied") {
			t.Fatalf("message = %q, want one naming access_denied", msg)
		}
	})
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// issuer is a local OpenID provider whose token endpoint returns whatever ID token the
// test made, signed with go-jose, so that each defect of a token can be produced on
// purpose. It is a stand-in for the ID-token checks only; the flow itself is proven
// against oidc-provider above.
type issuer struct {
	srv     *httptest.Server
	key     *ecdsa.PrivateKey
	mu      sync.Mutex
	idToken string
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.srv.URL, "authorization_endpoint": is.srv.URL + "/auth", "token_endpoint": is.srv.URL + "/token",
			"jwks_uri": is.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "opaque", "token_type": "Bearer", "expires_in": 60, "id_token": is.idToken})
	})
	return is
}

func (is *issuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (is *issuer) serve(token string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.idToken = token
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestIDTokensAreVerified(t *testing.T) {
	is := newIssuer(t)
	ctx := context.Background()
	now := time.Now()
	open := func(t *testing.T, google bool, hd string) *oidc.Connector {
		c, err := oidc.Open(ctx, config.OIDCConnection{Issuer: is.srv.URL, ClientID: "hallpass", ClientSecret: "s", HostedDomain: hd,
			ClaimMapping: map[string]string{"groups": "roles"}}, google, connector.Options{CallbackURL: callbackURL, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	base := func(nonce string) map[string]any {
		return map[string]any{"iss": is.srv.URL, "sub": "u-42", "aud": "hallpass", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nonce": nonce, "email": "u@corp.example", "email_verified": "true", "roles": []string{"ops"}, "hd": "corp.example"}
	}
	cases := []struct {
		name   string
		google bool
		hd     string
		token  func(claims map[string]any) string
		want   string // user-facing message; "" means accepted
	}{
		{name: "a valid token is accepted and its claims mapped", token: func(c map[string]any) string { return is.sign(t, c) }},
		{name: "a token whose payload was altered after signing is refused", want: "invalid signature", token: func(c map[string]any) string {
			good := is.sign(t, c)
			c["sub"] = "admin"
			return tamper(good, c)
		}},
		{name: "a token for another client is refused", want: "wrong audience", token: func(c map[string]any) string { c["aud"] = "someone-else"; return is.sign(t, c) }},
		{name: "a token with several audiences and another authorized party is refused", want: "wrong authorized party", token: func(c map[string]any) string {
			c["aud"], c["azp"] = []string{"hallpass", "other"}, "other"
			return is.sign(t, c)
		}},
		{name: "a token of another login (wrong nonce) is refused", want: "wrong nonce", token: func(c map[string]any) string { c["nonce"] = "replayed"; return is.sign(t, c) }},
		{name: "an expired token is refused", want: "expired", token: func(c map[string]any) string {
			c["exp"] = now.Add(-10 * time.Minute).Unix()
			return is.sign(t, c)
		}},
		{name: "a token from another issuer is refused", want: "another identity provider", token: func(c map[string]any) string { c["iss"] = "https://evil.example"; return is.sign(t, c) }},
		{name: "a token without a subject is refused", want: "did not say who you are", token: func(c map[string]any) string { delete(c, "sub"); return is.sign(t, c) }},
		{name: "the Google preset accepts its hosted domain", google: true, hd: "corp.example", token: func(c map[string]any) string { return is.sign(t, c) }},
		{name: "the Google preset refuses another hosted domain", google: true, hd: "other.example", want: "Sign in with an account of other.example", token: func(c map[string]any) string { return is.sign(t, c) }},
		{name: "the Google preset refuses a personal account without hd", google: true, hd: "corp.example", want: "Sign in with an account of corp.example", token: func(c map[string]any) string { delete(c, "hd"); return is.sign(t, c) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, tc.google, tc.hd)
			loginURL, priv, err := c.LoginURL(ctx, "st")
			if err != nil {
				t.Fatal(err)
			}
			u := mustParse(t, loginURL)
			if tc.google && tc.hd != "" && u.Query().Get("hd") != tc.hd {
				t.Errorf("the Google preset should send hd=%s, sent %q", tc.hd, u.Query().Get("hd"))
			}
			is.serve(tc.token(base(u.Query().Get("nonce"))))
			id, _, err := c.HandleCallback(ctx, httptest.NewRequest(http.MethodGet, callbackURL+"?code=abc&state=st", nil), priv)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused a valid token: %v", err)
				}
				if id.UserID != "u-42" || id.Email != "u@corp.example" || !id.EmailVerified || !slices.Equal(id.Groups, []string{"ops"}) {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			if msg := connector.UserMessage(err); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %v has message %q, want one containing %q", err, msg, tc.want)
			}
		})
	}
}
