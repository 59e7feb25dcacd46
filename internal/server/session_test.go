package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

func TestSilentLogin(t *testing.T) {
	// Each condition of "Silent login" (docs/architecture.md), with the outcome when it holds
	// and when it does not. Every case starts from alice signed in to app1 through "people".
	tests := []struct {
		name      string
		client    string
		setup     func(e *env, b *browser)
		params    func(e *env, idToken string) []oauth2.AuthCodeOption
		wantError string
	}{
		{name: "a valid session answers another SSO client without a login page", client: "app2"},
		{name: "no session gives login_required", client: "app2", setup: func(e *env, b *browser) { b.c.Jar = newJar() }, wantError: "login_required"},
		{name: "a client with single sign-on off gives login_required", client: "nosso", wantError: "login_required"},
		{name: "a connection parameter naming the session's connection succeeds", client: "app1",
			params: func(*env, string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("connection", "people")}
			}},
		{name: "a connection parameter naming another connection gives interaction_required", client: "app1",
			params: func(*env, string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("connection", "staff")}
			},
			wantError: "interaction_required"},
		{name: "a session through a connection the client does not use gives interaction_required", client: "app2",
			setup: func(e *env, b *browser) {
				e.rp("app1", "app1-secret").signIn(e.t, b, "carol", carolPassword, oauthConnection("staff"), oauth2.SetAuthURLParam("prompt", "login"))
			},
			wantError: "interaction_required"},
		{name: "max_age that still holds succeeds", client: "app2", setup: func(e *env, _ *browser) { e.clock.Advance(30 * time.Second) },
			params: func(*env, string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}
			}},
		{name: "max_age that has passed gives login_required", client: "app2", setup: func(e *env, _ *browser) { e.clock.Advance(90 * time.Second) },
			params: func(*env, string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "60")}
			},
			wantError: "login_required"},
		{name: "an id_token_hint naming the signed-in user succeeds", client: "app2",
			params: func(_ *env, idToken string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("id_token_hint", idToken)}
			}},
		{name: "an id_token_hint naming another user gives login_required", client: "app2",
			setup: func(e *env, b *browser) {
				// bob signs in in this browser; the hint still names alice.
				e.rp("app2", "app2-secret").signIn(e.t, b, "bob", bobPassword, oauth2.SetAuthURLParam("prompt", "login"))
			},
			params: func(_ *env, idToken string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("id_token_hint", idToken)}
			},
			wantError: "login_required"},
		{name: "an expired id_token_hint of the signed-in user still succeeds", client: "app2",
			setup: func(e *env, _ *browser) { e.clock.Advance(2 * time.Hour) },
			params: func(_ *env, idToken string) []oauth2.AuthCodeOption {
				return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("id_token_hint", idToken)}
			}},
		{name: "a session just inside the idle timeout succeeds", client: "app2", setup: func(e *env, _ *browser) { e.clock.Advance(72*time.Hour - time.Second) }},
		{name: "a session past the idle timeout gives login_required", client: "app2", setup: func(e *env, _ *browser) { e.clock.Advance(72*time.Hour + time.Second) }, wantError: "login_required"},
		{name: "activity extends the idle timeout", client: "app2", setup: func(e *env, b *browser) {
			e.clock.Advance(48 * time.Hour)
			e.rp("app1", "app1-secret").silent(e.t, b)
			e.clock.Advance(48 * time.Hour)
		}},
		{name: "the idle timeout counts from the last use to within a minute", client: "app2", setup: func(e *env, b *browser) {
			// Activity is recorded at most once a minute (ADR 0009): the use 30 s after a
			// recorded one is not written, the one 90 s after it is, and the session lasts
			// until at least a minute before the idle limit counted from the last use.
			for _, step := range []time.Duration{48 * time.Hour, 30 * time.Second, time.Minute} {
				e.clock.Advance(step)
				if _, _, err := e.rp("app1", "app1-secret").silent(e.t, b); err != "" {
					e.t.Fatalf("silent login during the lifetime: %s", err)
				}
			}
			e.clock.Advance(72*time.Hour - time.Minute)
		}},
		{name: "activity never extends the absolute lifetime", client: "app2", setup: func(e *env, b *browser) {
			for range 3 {
				e.clock.Advance(48 * time.Hour)
				if _, _, err := e.rp("app1", "app1-secret").silent(e.t, b); err != "" {
					e.t.Fatalf("silent login during the lifetime: %s", err)
				}
			}
			// 174h after login: idle for only 30h, but past the 168h absolute lifetime.
			e.clock.Advance(30 * time.Hour)
		}, wantError: "login_required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			tok, idt := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauth2.SetAuthURLParam("connection", "people"))
			raw, _ := tok.Extra("id_token").(string)
			if tc.setup != nil {
				tc.setup(e, b)
			}
			var params []oauth2.AuthCodeOption
			if tc.params != nil {
				params = tc.params(e, raw)
			}
			secret := map[string]string{"app1": "app1-secret", "app2": "app2-secret", "nosso": "nosso-secret"}[tc.client]
			rp := e.rp(tc.client, secret)
			l, code, gotErr := rp.silent(t, b, params...)
			if gotErr != tc.wantError {
				t.Fatalf("error = %q, want %q", gotErr, tc.wantError)
			}
			if tc.wantError == "" {
				_, got := rp.exchange(t, l, code)
				if got.Subject != idt.Subject {
					t.Errorf("silent login gave sub %q, want %q", got.Subject, idt.Subject)
				}
				var c struct {
					AuthTime int64  `json:"auth_time"`
					SID      string `json:"sid"`
				}
				var first struct {
					AuthTime int64  `json:"auth_time"`
					SID      string `json:"sid"`
				}
				_ = got.Claims(&c)
				_ = idt.Claims(&first)
				if c.AuthTime != first.AuthTime || c.SID != first.SID {
					t.Errorf("silent login auth_time/sid = %d/%s, want the session's %d/%s", c.AuthTime, c.SID, first.AuthTime, first.SID)
				}
			}
		})
	}
}

func TestPromptLoginForcesANewLoginWithALaterAuthTime(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rp := e.rp("app2", "app2-secret")
	_, first := rp.signIn(t, b, "alice", alicePassword)
	e.clock.Advance(time.Minute)
	_, second := rp.signIn(t, b, "alice", alicePassword, oauth2.SetAuthURLParam("prompt", "login"))
	var a, c struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = first.Claims(&a)
	_ = second.Claims(&c)
	if c.AuthTime <= a.AuthTime {
		t.Errorf("auth_time after prompt=login = %d, want later than %d", c.AuthTime, a.AuthTime)
	}
}

func TestAClientWithSSOOffNeverReusesAndNeverSharesASession(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	nosso := e.rp("nosso", "nosso-secret")

	// Its login creates a session that app2 may not reuse.
	nosso.signIn(t, b, "alice", alicePassword)
	if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
		t.Errorf("app2 after a login through an SSO-off client: %q, want login_required", err)
	}
	// And it always shows the login page, even with a session from an SSO client.
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	l := newLogin()
	p := b.get(nosso.authURL(l))
	if p.location != nil || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("SSO-off client was not shown the login page: %d %v", p.status, p.location)
	}
	// Logging in there does not end the SSO session the other applications use.
	nosso.exchange(t, l, nosso.callback(t, l, b.submitLogin(p, "alice", alicePassword)))
	if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
		t.Errorf("app2 lost its SSO session after a login to an SSO-off client: %s", err)
	}
}

func TestTheSessionCookie(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rp := e.rp("app2", "app2-secret")
	l := newLogin()
	login := b.get(rp.authURL(l))
	before := sessionCookieValue(b)
	action, form := formFields(t, login)
	form.Set("username", "alice")
	form.Set("password", alicePassword)
	req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := b.do(req)
	c := cookieNamed((&http.Response{Header: p.header}).Cookies(), "hallpass_session")
	if c == nil {
		t.Fatal("login set no session cookie")
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie attributes: %+v", c)
	}
	if len(c.Value) < 22 { // 128 bits in base64url
		t.Errorf("cookie value has %d characters, want at least 128 random bits", len(c.Value))
	}
	// Loopback http in dev mode is the one case without Secure.
	if c.Secure {
		t.Error("cookie is Secure on a loopback http dev issuer; the browser would drop it")
	}
	if before != "" {
		t.Errorf("a session cookie existed before login")
	}
	// A second login rotates the ID.
	rp.signIn(t, b, "alice", alicePassword, oauth2.SetAuthURLParam("prompt", "login"))
	if after := sessionCookieValue(b); after == c.Value || after == "" {
		t.Error("the session ID was not rotated by a new login")
	}
}

func TestCookiesAreSecureOnHTTPSIssuers(t *testing.T) {
	// Only the config decides; the loopback listener still speaks http, so the cookies are
	// read from the headers and sent back by hand, as a browser would over https.
	e := newEnv(t, func(c *config.Config) {
		c.DevMode = false
		c.Issuer = strings.Replace(c.Issuer, "http://", "https://", 1)
	})
	base := strings.Replace(e.issuer, "http://", "https://", 1)
	q := url.Values{"client_id": {"app2"}, "redirect_uri": {"https://app2.example/callback"}, "response_type": {"code"}, "scope": {"openid"}}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.issuer + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csrf := cookieNamed(resp.Cookies(), "__Host-hallpass_csrf")
	if csrf == nil || !csrf.Secure || !csrf.HttpOnly {
		t.Fatalf("CSRF cookie = %+v, want Secure and HttpOnly", csrf)
	}
	loginURL := strings.Replace(resp.Header.Get("Location"), base, e.issuer, 1)
	resp, err = client.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action, form := formFields(t, page{status: resp.StatusCode, body: string(body)})
	form.Set("username", "alice")
	form.Set("password", alicePassword)
	req, _ := http.NewRequest(http.MethodPost, strings.Replace(action, base, e.issuer, 1), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sess := cookieNamed(resp.Cookies(), "__Host-hallpass_session")
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie = %+v, want Secure, HttpOnly, SameSite=Lax", sess)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts == "" {
		t.Error("no Strict-Transport-Security on an https issuer")
	}
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func newJar() http.CookieJar {
	j, _ := cookiejar.New(nil)
	return j
}

func sessionCookieValue(b *browser) string {
	u, _ := url.Parse(b.e.issuer)
	if c := cookieNamed(b.c.Jar.Cookies(u), "hallpass_session"); c != nil {
		return c.Value
	}
	return ""
}

func TestAConfigReloadKeepsSessionsAndServesNewClients(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))

	cfg := *e.srv.Config()
	cfg.Clients = append([]config.Client{}, cfg.Clients...)
	cfg.Clients = append(cfg.Clients, config.Client{ID: "zeta", Name: "Zeta", Type: config.ClientRegularWebApp,
		SecretSHA256: []string{digest.Of("zeta-secret")}, RedirectURIs: []string{"https://zeta.example/callback"},
		SingleSignOn: true, Connections: []string{"people"}})
	keys, _ := testKeys()
	if err := e.srv.Apply(&cfg, keys); err != nil {
		t.Fatalf("apply: %v", err)
	}
	rp := e.rp("zeta", "zeta-secret")
	l, code, err := rp.silent(t, b)
	if err != "" {
		t.Fatalf("a client added by a reload could not use the existing session: %s", err)
	}
	if _, idt := rp.exchange(t, l, code); idt.Subject != "people|alice" {
		t.Errorf("sub = %q", idt.Subject)
	}
}

func TestGarbageCollectionRemovesEndedSessions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	u, _ := url.Parse(e.issuer)
	var cookie string
	if c := cookieNamed(b.c.Jar.Cookies(u), "hallpass_session"); c != nil {
		cookie = c.Value
	}
	if _, err := e.store.GetSession(context.Background(), digest.Of(cookie)); err != nil {
		t.Fatalf("the session is not stored: %v", err)
	}
	e.clock.Advance(73 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.srv.RunGarbageCollection(ctx, 10*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.store.GetSession(context.Background(), digest.Of(cookie))
		if errors.Is(err, storage.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle-expired session was not collected: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
