package ssoapp_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
	"github.com/hallpass/hallpass/pkg/ssoapp"
)

// The tests run a real Hallpass server (internal/server on SQLite) and applications that
// mount ssoapp, on loopback listeners, and drive them with a cookie-keeping HTTP client the
// way a browser would. The server listens on 127.0.0.1 and the applications on localhost,
// so their cookies are kept apart as on different sites.

const (
	password   = "correct-horse-battery"
	connection = "people"
)

type fixture struct {
	t      *testing.T
	issuer string
}

// app is one application mounting ssoapp, with a /dashboard behind RequireLogin.
type app struct {
	*ssoapp.App
	url      string
	clientID string
}

var keys = sync.OnceValues(func() (*config.SigningKeys, error) { return config.NewSigningKeys("ES256") })

func hash(p string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(p), salt, 1, 8*1024, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, 8*1024, 1, 1,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// newFixture starts the server and n applications registered with it; mutate adjusts the
// server's config before it is served.
func newFixture(t *testing.T, n int, mutate ...func(*config.Config)) (*fixture, []*app) {
	t.Helper()
	var handler sync.Map
	srvTS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := handler.Load("h")
		h.(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(srvTS.Close)
	f := &fixture{t: t, issuer: srvTS.URL}

	d := func(v time.Duration) config.Duration { return config.Duration{Duration: v} }
	cfg := &config.Config{
		Issuer:  f.issuer,
		DevMode: true,
		Session: config.Session{AbsoluteLifetime: d(168 * time.Hour), IdleTimeout: d(72 * time.Hour)},
		Tokens:  config.Tokens{IDToken: d(time.Hour), AccessToken: d(time.Hour), RefreshToken: d(720 * time.Hour), RefreshReuseInterval: d(3 * time.Second), AuthorizationCode: d(time.Minute)},
		Storage: config.Storage{Type: config.StorageSQLite, SQLitePath: "unused"},
		Signing: config.Signing{Algorithm: "ES256"},
		Connections: []config.Connection{{Name: connection, Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{
			Users: []config.DatabaseUser{{Username: "demo", Email: "demo@example.com", Name: "Demo User", PasswordHash: hash(password)}},
		}}},
	}
	var apps []*app
	for i := range n {
		mux := http.NewServeMux()
		appTS := httptest.NewServer(mux)
		t.Cleanup(appTS.Close)
		base := strings.Replace(appTS.URL, "127.0.0.1", "localhost", 1)
		id, secret := fmt.Sprintf("app%d", i+1), fmt.Sprintf("app%d-secret-0123456789abcdef0123456789", i+1)
		cfg.Clients = append(cfg.Clients, config.Client{
			ID: id, Name: id, Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of(secret)},
			RedirectURIs: []string{base + "/callback"}, PostLogoutRedirectURIs: []string{base + "/"},
			SingleSignOn: true, Connections: []string{connection},
		})
		a, err := ssoapp.New(ssoapp.Config{Issuer: f.issuer, ClientID: id, ClientSecret: secret, BaseURL: base,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		a.Mount(mux)
		mux.Handle("GET /dashboard", a.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, _ := ssoapp.UserFromContext(r.Context())
			fmt.Fprintf(w, "dashboard of %s for %s", id, u.Name)
		})))
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "home of %s", id) })
		apps = append(apps, &app{App: a, url: base, clientID: id})
	}

	for _, m := range mutate {
		m(cfg)
	}
	k, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hallpass.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := server.New(cfg, k, store, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	handler.Store("h", srv)
	return f, apps
}

// browser follows redirects and keeps cookies, like a browser with one tab.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// page is where the browser ended up and what it shows.
type page struct {
	url    *url.URL
	status int
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{url: resp.Request.URL, status: resp.StatusCode, body: string(body)}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRe   = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// isLoginPage reports whether p is the server's password form.
func (f *fixture) isLoginPage(p page) bool {
	return strings.HasPrefix(p.url.String(), f.issuer) && strings.Contains(p.body, `name="password"`)
}

// signIn fills the password form shown on p.
func (b *browser) signIn(p page) page {
	b.t.Helper()
	m := formRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no login form at %s:\n%s", p.url, p.body)
	}
	form := url.Values{"username": {"demo"}, "password": {password}}
	for _, h := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	action, _ := p.url.Parse(html.UnescapeString(m[1]))
	return b.post(action.String(), form)
}

func noRedirects() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestSSOEndpointRefusesWhatIsNotALocalPath(t *testing.T) {
	_, apps := newFixture(t, 1)
	a := apps[0]
	for _, tc := range []struct {
		name, query, message string
	}{
		{"a missing target_url goes to the failure page saying it is required", "connection=people", "target_url is required for this endpoint"},
		{"a missing connection goes to the failure page saying it is required", "target_url=/dashboard", "connection is required for this endpoint"},
		{"an absolute https URL is refused", "connection=people&target_url=https://evil.example/", "target_url must be a local path"},
		{"a scheme-relative //host is refused", "connection=people&target_url=//evil.example", "target_url must be a local path"},
		{"a triple slash is refused", "connection=people&target_url=///evil.example", "target_url must be a local path"},
		{"a /\\host that browsers read as another host is refused", "connection=people&target_url=/%5Cevil.example", "target_url must be a local path"},
		{"a backslash anywhere is refused", "connection=people&target_url=/a%5Cb", "target_url must be a local path"},
		{"a javascript: URL is refused", "connection=people&target_url=javascript:alert(1)", "target_url must be a local path"},
		{"a scheme without slashes is refused", "connection=people&target_url=http:evil.example", "target_url must be a local path"},
		{"a relative path is refused", "connection=people&target_url=evil.example/dashboard", "target_url must be a local path"},
		{"a tab that browsers drop is refused", "connection=people&target_url=/%09/evil.example", "target_url must be a local path"},
		{"a CR LF header injection is refused", "connection=people&target_url=/%0d%0aLocation:%20https://evil.example", "target_url must be a local path"},
		{"an encoded //host that a decoding proxy would expose is refused", "connection=people&target_url=/%252F%252Fevil.example", "target_url must be a local path"},
		{"a NUL byte is refused", "connection=people&target_url=/dashboard%00", "target_url must be a local path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirects().Get(a.url + "/auth/sso?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if err != nil || resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, location %v: want a redirect to the failure page", resp.StatusCode, err)
			}
			if loc.Host != strings.TrimPrefix(a.url, "http://") || loc.Path != "/auth/failure" || !strings.Contains(loc.Query().Get("message"), tc.message) {
				t.Errorf("redirect to %s, want this app's /auth/failure saying %q", loc, tc.message)
			}
			p := newBrowser(t).get(loc.String())
			if !strings.Contains(p.body, html.EscapeString(tc.message)) {
				t.Errorf("the failure page does not say %q:\n%s", tc.message, p.body)
			}
		})
	}
}

func TestSSOEndpointSendsAUserWithoutSessionToAuthorizeWithTheConnection(t *testing.T) {
	f, apps := newFixture(t, 1)
	resp, err := noRedirects().Get(apps[0].url + "/auth/sso?connection=people&target_url=/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	q := loc.Query()
	for _, tc := range []struct {
		name      string
		got, want string
	}{
		{"it goes to the issuer's authorization endpoint", loc.Scheme + "://" + loc.Host + loc.Path, f.issuer + "/authorize"},
		{"it passes the connection", q.Get("connection"), connection},
		{"it uses PKCE with S256", q.Get("code_challenge_method"), "S256"},
		{"it asks for a code", q.Get("response_type"), "code"},
		{"it names this app's callback", q.Get("redirect_uri"), apps[0].url + "/callback"},
		{"it names this app", q.Get("client_id"), apps[0].clientID},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if q.Get("state") == "" || q.Get("nonce") == "" || q.Get("code_challenge") == "" {
		t.Errorf("state, nonce and code_challenge must all be set: %s", loc)
	}
}

func TestSecondAppSignsInThroughTheCentralSessionWithoutALoginPage(t *testing.T) {
	f, apps := newFixture(t, 2)
	b := newBrowser(t)

	p := b.get(apps[0].url + "/auth/sso?connection=people&target_url=/dashboard")
	if !f.isLoginPage(p) {
		t.Fatalf("the first app should show the login page, got %s:\n%s", p.url, p.body)
	}
	p = b.signIn(p)
	if p.url.String() != apps[0].url+"/dashboard" || !strings.Contains(p.body, "dashboard of app1 for Demo User") {
		t.Fatalf("after signing in the user should land on app1's /dashboard, got %s: %s", p.url, p.body)
	}

	p = b.get(apps[1].url + "/auth/sso?connection=people&target_url=/dashboard")
	if p.url.String() != apps[1].url+"/dashboard" || !strings.Contains(p.body, "dashboard of app2 for Demo User") {
		t.Fatalf("app2 should sign in silently and land on /dashboard, got %s: %s", p.url, p.body)
	}

	// With an application session, /auth/sso goes straight to the target without the server.
	resp, err := func() (*http.Response, error) {
		c := *b.c
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c.Get(apps[1].url + "/auth/sso?connection=people&target_url=/dashboard?tab=2")
	}()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/dashboard?tab=2" {
		t.Errorf("a signed-in user should be redirected to the target directly, got %q", loc)
	}
}

func TestRequireLoginSendsToSignInAndBackToThePage(t *testing.T) {
	f, apps := newFixture(t, 1)
	b := newBrowser(t)
	p := b.get(apps[0].url + "/dashboard")
	if !f.isLoginPage(p) {
		t.Fatalf("a protected page should lead to the login page, got %s", p.url)
	}
	if p = b.signIn(p); p.url.Path != "/dashboard" {
		t.Errorf("after signing in the user should be back on /dashboard, got %s", p.url)
	}
}

func TestLogoutEndsBothSessionsAndReturnsHome(t *testing.T) {
	f, apps := newFixture(t, 2)
	b := newBrowser(t)
	b.signIn(b.get(apps[0].url + "/dashboard"))
	b.get(apps[1].url + "/dashboard")

	p := b.post(apps[1].url+"/logout", nil)
	if p.url.String() != apps[1].url+"/" || !strings.Contains(p.body, "home of app2") {
		t.Fatalf("logout should end on app2's home page, got %s: %s", p.url, p.body)
	}
	if p = b.get(apps[1].url + "/dashboard"); !f.isLoginPage(p) {
		t.Errorf("after logout app2's dashboard should ask to sign in, got %s", p.url)
	}
	// The central session is gone too: app1 has its own session still (it has no
	// back-channel URI here), but a new sign-in through the server needs the password.
	p = b.get(apps[0].url + "/auth/login?target_url=/dashboard")
	if !f.isLoginPage(p) {
		t.Errorf("after logout a new sign-in on app1 should show the login page, got %s", p.url)
	}
}

func TestCallbackRefusesALoginThisBrowserDidNotStart(t *testing.T) {
	_, apps := newFixture(t, 1)
	for _, tc := range []struct{ name, query, message string }{
		{"a callback without the login cookie is refused", "code=x&state=y", "not started in this browser"},
		{"an error from the server is shown", "error=login_required&state=y", "not started in this browser"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newBrowser(t).get(apps[0].url + "/callback?" + tc.query)
			if p.url.Path != "/auth/failure" || !strings.Contains(p.body, tc.message) {
				t.Errorf("got %s: %s", p.url, p.body)
			}
		})
	}
}

func TestCallbackShowsTheServersRefusal(t *testing.T) {
	f, apps := newFixture(t, 1)
	b := newBrowser(t)
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(apps[0].url + "/auth/sso?connection=people&target_url=/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	p := b.get(apps[0].url + "/callback?error=access_denied&error_description=nope&iss=" + url.QueryEscape(f.issuer) + "&state=" + url.QueryEscape(loc.Query().Get("state")))
	if p.url.Path != "/auth/failure" || !strings.Contains(p.body, "access_denied") {
		t.Errorf("got %s: %s", p.url, p.body)
	}
}

func TestCallbackRequiresTheIssuer(t *testing.T) {
	f, apps := newFixture(t, 1)
	for _, tc := range []struct{ name, iss, message string }{
		{"a response without iss is refused", "", "unexpected server"},
		{"a response from another issuer is refused", "https://evil.example", "unexpected server"},
		{"a response from the issuer goes on to the server's answer", f.issuer, "access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			c := *b.c
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := c.Get(apps[0].url + "/auth/sso?connection=people&target_url=/dashboard")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			q := url.Values{"error": {"access_denied"}, "state": {loc.Query().Get("state")}}
			if tc.iss != "" {
				q.Set("iss", tc.iss)
			}
			p := b.get(apps[0].url + "/callback?" + q.Encode())
			if p.url.Path != "/auth/failure" || !strings.Contains(p.body, tc.message) {
				t.Errorf("got %s: %s", p.url, p.body)
			}
		})
	}
}

func TestSessionCookieIsHttpOnlyAndLax(t *testing.T) {
	f, apps := newFixture(t, 1)
	b := newBrowser(t)
	c := *b.c
	var setCookie []string
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		// req.Response is the redirect that led here.
		if req.Response != nil && req.Response.Request.URL.Path == "/callback" {
			setCookie = req.Response.Header.Values("Set-Cookie")
		}
		return nil
	}
	b.c = &c
	p := b.get(apps[0].url + "/dashboard")
	if !f.isLoginPage(p) {
		t.Fatal("expected the login page")
	}
	b.signIn(p)
	var session string
	for _, sc := range setCookie {
		if strings.HasPrefix(sc, ssoapp.DefaultCookieName+"=") {
			session = sc
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(session, want) {
			t.Errorf("session cookie %q lacks %s", session, want)
		}
	}
	if strings.Contains(session, "Secure") {
		t.Errorf("session cookie %q is Secure on http loopback, where browsers would drop it", session)
	}
}

func TestNewRefusesPlainHTTPOnARealHost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     ssoapp.Config
		wantErr bool
	}{
		{"http on a real host is refused", ssoapp.Config{Issuer: "https://sso.example.com", ClientID: "a", BaseURL: "http://app.example.com"}, true},
		{"http on a real host is allowed for development when asked", ssoapp.Config{Issuer: "https://sso.example.com", ClientID: "a", BaseURL: "http://app.test", AllowInsecureHTTP: true}, false},
		{"http on loopback is allowed", ssoapp.Config{Issuer: "https://sso.example.com", ClientID: "a", BaseURL: "http://localhost:3002"}, false},
		{"https is allowed", ssoapp.Config{Issuer: "https://sso.example.com", ClientID: "a", BaseURL: "https://app.example.com"}, false},
		{"a base URL with a query is refused", ssoapp.Config{Issuer: "https://sso.example.com", ClientID: "a", BaseURL: "https://app.example.com/?x=1"}, true},
		{"a missing client ID is refused", ssoapp.Config{Issuer: "https://sso.example.com", BaseURL: "https://app.example.com"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ssoapp.New(tc.cfg); (err != nil) != tc.wantErr {
				t.Errorf("New: err = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

// TestPendingSignInsLiveInTheBrowser checks that a sign-in in progress is carried, sealed,
// by the browser that started it: anonymous sign-in starts by the thousand cost the app no
// state and cannot push out a real user's sign-in, and a login cookie the app did not seal
// unaltered is refused.
func TestPendingSignInsLiveInTheBrowser(t *testing.T) {
	f, apps := newFixture(t, 1)
	a := apps[0]

	t.Run("a user's sign-in survives a flood of anonymous sign-in starts", func(t *testing.T) {
		b := newBrowser(t)
		loginPage := b.get(a.url + "/dashboard")
		if !f.isLoginPage(loginPage) {
			t.Fatalf("a protected page should lead to the login page, got %s", loginPage.url)
		}
		flood := noRedirects()
		for i := range 12_000 {
			resp, err := flood.Get(a.url + "/auth/login")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("anonymous sign-in start %d: status %d", i, resp.StatusCode)
			}
		}
		if p := b.signIn(loginPage); p.url.Path != "/dashboard" {
			t.Fatalf("after the flood the user's sign-in should still land on /dashboard, got %s: %s", p.url, p.body)
		}
	})

	t.Run("an altered login cookie is refused", func(t *testing.T) {
		b := newBrowser(t)
		loginPage := b.get(a.url + "/dashboard")
		u, _ := url.Parse(a.url)
		var altered []*http.Cookie
		for _, c := range b.c.Jar.Cookies(u) {
			if strings.HasSuffix(c.Name, "_login") {
				v := []byte(c.Value)
				v[len(v)/2] ^= 1
				altered = append(altered, &http.Cookie{Name: c.Name, Value: string(v), Path: "/"})
			}
		}
		if len(altered) != 1 {
			t.Fatalf("want one login cookie, have %d", len(altered))
		}
		b.c.Jar.SetCookies(u, altered)
		if p := b.signIn(loginPage); p.url.Path != "/auth/failure" || !strings.Contains(p.body, "not started in this browser") {
			t.Fatalf("a sign-in with an altered login cookie should fail, got %s: %s", p.url, p.body)
		}
	})
}
