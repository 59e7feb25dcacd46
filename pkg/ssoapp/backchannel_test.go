package ssoapp_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/pkg/ssoapp"
)

const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// withBackchannelURIs registers each application's /backchannel-logout with the server.
func withBackchannelURIs(c *config.Config) {
	for i := range c.Clients {
		base := strings.TrimSuffix(c.Clients[i].RedirectURIs[0], "/callback")
		c.Clients[i].BackchannelLogoutURI = base + "/backchannel-logout"
	}
}

// appUser is the application session the browser has at a, if any.
func (b *browser) appUser(a *app) (*ssoapp.User, bool) {
	return a.userOf(b.appCookie(a))
}

// appCookie is the browser's application session cookie for a. The test applications
// all listen on localhost, where cookies do not tell ports apart: the value is only a's
// until another application sets its own.
func (b *browser) appCookie(a *app) string {
	u, _ := url.Parse(a.url)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == ssoapp.DefaultCookieName {
			return c.Value
		}
	}
	return ""
}

// userOf is the user of the application session with this cookie value, if any.
func (a *app) userOf(cookie string) (*ssoapp.User, bool) {
	req := httptest.NewRequest(http.MethodGet, a.url+"/", nil)
	req.AddCookie(&http.Cookie{Name: ssoapp.DefaultCookieName, Value: cookie})
	return a.CurrentUser(req)
}

// signedInBrowser signs a new browser in to a through the server's login page.
func signedInBrowser(t *testing.T, f *fixture, a *app) (*browser, *ssoapp.User) {
	t.Helper()
	b := newBrowser(t)
	p := b.get(a.url + "/dashboard")
	if !f.isLoginPage(p) {
		t.Fatalf("expected the login page, got %s", p.url)
	}
	b.signIn(p)
	u, ok := b.appUser(a)
	if !ok || u.SessionID == "" {
		t.Fatalf("no application session with a sid after signing in")
	}
	return b, u
}

// mintLogoutToken signs claims the way the provider does, with typ in the header ("" for
// none), by key (the provider's current key unless another is given).
func mintLogoutToken(t *testing.T, claims map[string]any, typ string, key *jose.JSONWebKey) string {
	t.Helper()
	if key == nil {
		k, err := keys()
		if err != nil {
			t.Fatal(err)
		}
		key = k.Current
	}
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func postLogoutToken(t *testing.T, a *app, form url.Values) int {
	t.Helper()
	resp, err := http.PostForm(a.url+"/backchannel-logout", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return resp.StatusCode
}

func TestTheBackChannelReceiverRefusesTokensThatBreakARule(t *testing.T) {
	f, apps := newFixture(t, 1)
	a := apps[0]
	b, user := signedInBrowser(t, f, a)
	now := time.Now()
	jtis := 0
	valid := func() map[string]any {
		jtis++
		return map[string]any{
			"iss": f.issuer, "aud": a.clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
			"jti": fmt.Sprintf("jti-%d", jtis), "sid": user.SessionID, "sub": user.Subject,
			"events": map[string]any{logoutEvent: map[string]any{}},
		}
	}
	with := func(change func(c map[string]any)) func(t *testing.T) string {
		return func(t *testing.T) string {
			c := valid()
			change(c)
			return mintLogoutToken(t, c, "logout+jwt", nil)
		}
	}
	foreign, err := config.NewSigningKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keys()
	foreign.KeyID = k.Current.KeyID

	tests := []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"a request without logout_token is refused", func(*testing.T) string { return "" }},
		{"a token signed by a key that is not the provider's is refused", func(t *testing.T) string {
			return mintLogoutToken(t, valid(), "logout+jwt", foreign)
		}},
		{"an unsigned token is refused", func(t *testing.T) string {
			payload, _ := json.Marshal(valid())
			return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"logout+jwt"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
		}},
		{"a token from another issuer is refused", with(func(c map[string]any) { c["iss"] = "https://evil.example" })},
		{"a token for another application is refused", with(func(c map[string]any) { c["aud"] = "app2" })},
		{"a token issued in the future is refused", with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(10*time.Minute).Unix(), now.Add(12*time.Minute).Unix()
		})},
		{"a token issued an hour ago is refused even before its exp", with(func(c map[string]any) { c["iat"] = now.Add(-time.Hour).Unix() })},
		{"an expired token is refused", with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-6*time.Minute).Unix(), now.Add(-4*time.Minute).Unix()
		})},
		{"a token without exp is refused", with(func(c map[string]any) { delete(c, "exp") })},
		{"a token without iat is refused", with(func(c map[string]any) { delete(c, "iat") })},
		{"a token without jti is refused", with(func(c map[string]any) { delete(c, "jti") })},
		{"a token without events is refused", with(func(c map[string]any) { delete(c, "events") })},
		{"a token with another event is refused", with(func(c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/other": map[string]any{}}
		})},
		{"a token with a second event is refused", with(func(c map[string]any) {
			c["events"] = map[string]any{logoutEvent: map[string]any{}, "urn:example:event": map[string]any{}}
		})},
		{"a token whose event is not a JSON object is refused", with(func(c map[string]any) { c["events"] = map[string]any{logoutEvent: "yes"} })},
		{"a token with a nonce is refused", with(func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" })},
		{"a token with neither sid nor sub is refused", with(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") })},
		{"a token typed as another kind of JWT is refused", func(t *testing.T) string { return mintLogoutToken(t, valid(), "at+jwt", nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			if tok := tc.token(t); tok != "" {
				form.Set("logout_token", tok)
			}
			if status := postLogoutToken(t, a, form); status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", status)
			}
			if _, ok := b.appUser(a); !ok {
				t.Fatal("a refused token ended the application session")
			}
		})
	}

	t.Run("a token for another session leaves this one alone", func(t *testing.T) {
		c := valid()
		c["sid"] = "some-other-session"
		if status := postLogoutToken(t, a, url.Values{"logout_token": {mintLogoutToken(t, c, "logout+jwt", nil)}}); status != http.StatusOK {
			t.Errorf("status %d, want 200", status)
		}
		if _, ok := b.appUser(a); !ok {
			t.Fatal("another session's logout ended this one")
		}
	})
	t.Run("a valid token ends the session and cannot be replayed", func(t *testing.T) {
		tok := mintLogoutToken(t, valid(), "logout+jwt", nil)
		if status := postLogoutToken(t, a, url.Values{"logout_token": {tok}}); status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		if _, ok := b.appUser(a); ok {
			t.Fatal("the application session survived a valid logout token")
		}
		if status := postLogoutToken(t, a, url.Values{"logout_token": {tok}}); status != http.StatusBadRequest {
			t.Errorf("a replayed token: status %d, want 400", status)
		}
	})
}

func TestALogoutTokenWithOnlySubEndsEverySessionOfTheUser(t *testing.T) {
	f, apps := newFixture(t, 1)
	a := apps[0]
	b1, user := signedInBrowser(t, f, a)
	b2, _ := signedInBrowser(t, f, a)
	now := time.Now()
	tok := mintLogoutToken(t, map[string]any{
		"iss": f.issuer, "aud": a.clientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "sub-only-1",
		"sub": user.Subject, "events": map[string]any{logoutEvent: map[string]any{}},
	}, "", nil)
	if status := postLogoutToken(t, a, url.Values{"logout_token": {tok}}); status != http.StatusOK {
		t.Fatalf("status %d, want 200", status)
	}
	for i, b := range []*browser{b1, b2} {
		if _, ok := b.appUser(a); ok {
			t.Errorf("browser %d is still signed in", i+1)
		}
	}
}

func TestSigningOutOfOneAppEndsTheOtherAppsSessionByBackChannel(t *testing.T) {
	f, apps := newFixture(t, 2, withBackchannelURIs)
	b := newBrowser(t)
	b.signIn(b.get(apps[0].url + "/dashboard"))
	app1Cookie := b.appCookie(apps[0])
	if p := b.get(apps[1].url + "/dashboard"); !strings.Contains(p.body, "dashboard of app2") {
		t.Fatalf("app2 should sign in through the central session, got %s", p.url)
	}
	if _, ok := apps[0].userOf(app1Cookie); !ok {
		t.Fatal("app1 has no session")
	}

	if p := b.post(apps[1].url+"/logout", nil); p.url.String() != apps[1].url+"/" {
		t.Fatalf("logout should end on app2's home page, got %s", p.url)
	}
	// Delivery is asynchronous: wait, boundedly, for the server's logout token to reach app1.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok := apps[0].userOf(app1Cookie); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("app1's session survived the central logout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The central session is gone too: a new sign-in needs the password.
	if p := b.get(apps[0].url + "/auth/login?target_url=/dashboard"); !f.isLoginPage(p) {
		t.Errorf("after single logout a new sign-in on app1 should show the login page, got %s", p.url)
	}
}
