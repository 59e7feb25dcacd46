package server_test

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/storage"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// The browser test's host names. Chromium resolves them to loopback (and nothing else to
// anything), and the applications' Go HTTP client does the same, so the provider and each
// application are on a site of their own, as in production: the session cookie is the
// provider's alone and reaches it only on top-level navigations (SameSite=Lax).
const (
	ssoHost  = "sso.test"
	appAHost = "app-a.test"
	appBHost = "app-b.test"
	appCHost = "app-c.test"
)

// TestBrowserSignsInOnceForEveryClientWithSingleSignOnUntilLogout is issue 3's browser
// scenario in headless Chromium: a password login to App A, then App B on another site gets
// a code without the login page, App C (single sign-on off) shows the login page, and after
// logging out of App A both App A and App B show the login page again.
func TestBrowserSignsInOnceForEveryClientWithSingleSignOnUntilLogout(t *testing.T) {
	// The issuer is plain http on a .test name in dev mode, where the server leaves the
	// session cookie's Secure flag off: a Secure cookie from an http origin would be dropped
	// by Chromium, and a loopback IP issuer would not show cross-site behaviour.
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	apps := []*relyingApp{
		newRelyingApp(t, "app-a", "App A", appAHost),
		newRelyingApp(t, "app-b", "App B", appBHost),
		newRelyingApp(t, "app-c", "App C", appCHost),
	}
	cfg := testConfig(t, issuer)
	cfg.Clients, cfg.APIs = nil, nil
	for _, a := range apps {
		c := a.client()
		c.SingleSignOn = a.clientID != "app-c"
		cfg.Clients = append(cfg.Clients, c)
	}
	serveConfigOn(t, ssoLn, cfg)
	for _, a := range apps {
		a.connect(t, issuer)
	}
	appA, appB, appC := apps[0], apps[1], apps[2]

	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost, appBHost, appCHost}})

	// 1. App A: the login page of the SSO server, then App A's page with the user's claims.
	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in as alice",
		typePassword("alice", alicePassword),
		// The next page: App A's, or the login page again with an error.
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")),
	)
	first := assertSignedIn(t, b, appA)

	// 2. App B, on another site: a code and an ID token of the same session, and no page of
	// the SSO server in between.
	stop := b.RecordPages()
	b.Run("open App B", chromedp.Navigate(appB.url+"/login"))
	second := assertSignedIn(t, b, appB)
	pages := stop()
	for _, p := range pages {
		if strings.HasPrefix(p, issuer) {
			t.Errorf("App B's sign-in showed a page of the SSO server: %s (pages shown: %v)", p, pages)
		}
	}
	if second.sid != first.sid || second.authTime != first.authTime {
		t.Errorf("App B's ID token has sid %q and auth_time %s, want App A's session %q of %s", second.sid, second.authTime, first.sid, first.authTime)
	}

	// 3. App C has single sign-on off: the login page, although the session is valid.
	b.Run("open App C", chromedp.Navigate(appC.url+"/login"))
	assertLoginPage(t, b, issuer, "App C")

	// 4. Logging out of App A ends the central session.
	b.Run("log out of App A", chromedp.Navigate(appA.url+"/logout"))
	b.Run("wait for App A's signed-out page", chromedp.WaitVisible(chromedp.CSS("#signed-out")))
	if loc := b.Location(); stripQuery(loc) != appA.url+"/signed-out" {
		t.Fatalf("after logout the browser is at %s, want App A's registered post-logout page", loc)
	}

	// 5. Both single sign-on applications need a login again.
	for _, a := range []*relyingApp{appA, appB} {
		b.Run("open "+a.name+" after logout", chromedp.Navigate(a.url+"/login"))
		assertLoginPage(t, b, issuer, a.name)
	}
}

// screenshots saves what the browser shows, one PNG per page, named in order by the test.
// make test (hack/test.sh) sets $HALLPASS_ARTIFACTS to a directory in the work tree and
// keeps them there, one directory per test; without it they go to the test's temporary
// directory, which go test removes.
type screenshots struct {
	t   *testing.T
	b   *chromium.Browser
	dir string
}

func newScreenshots(t *testing.T, b *chromium.Browser) *screenshots {
	t.Helper()
	dir := t.TempDir()
	if root := os.Getenv("HALLPASS_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, t.Name())
		// A test's directory holds the pages of its latest run only.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatalf("empty the screenshot directory: %v", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("make the screenshot directory: %v", err)
		}
	}
	t.Logf("screenshots of each page are written to %s", dir)
	return &screenshots{t: t, b: b, dir: dir}
}

// of is s for another browser of the same test: its pages go to the same directory.
func (s *screenshots) of(b *chromium.Browser) *screenshots {
	other := *s
	other.b = b
	return &other
}

// take saves the page the browser shows as name.png (spaces become dashes).
func (s *screenshots) take(name string) {
	s.t.Helper()
	png, err := chromium.Try(s.b, chromium.StepTimeout, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, strings.ReplaceAll(name, " ", "-")+".png"), png, 0o644); err != nil {
		s.t.Fatalf("save screenshot %s: %v", name, err)
	}
}

// assertLoginPage checks that the browser shows the SSO server's password form for client.
func assertLoginPage(t *testing.T, b *chromium.Browser, issuer, client string) {
	t.Helper()
	b.Run("wait for the login page of "+client, chromedp.WaitVisible(chromedp.CSS(`input[name="password"], #signed-in, #error`)))
	if b.Count(`input[name="password"]`) == 0 {
		t.Fatalf("%s shows %s instead of the login page (at %s)", client, b.Text("main"), b.Location())
	}
	if loc := b.Location(); !strings.HasPrefix(loc, issuer+"/") {
		t.Fatalf("the password form is at %s, want a page of the SSO server %s", loc, issuer)
	}
	if got := b.Text("main strong"); got != client {
		t.Errorf("the login page continues to %q, want %q", got, client)
	}
}

// signedIn is what an application page showed of the ID token it received.
type signedIn struct {
	sid, authTime string
}

// assertSignedIn waits for app's signed-in page and checks the claims it shows, of a
// password sign-in.
func assertSignedIn(t *testing.T, b *chromium.Browser, app *relyingApp) signedIn {
	t.Helper()
	return assertSignedInWith(t, b, app, "pwd")
}

// assertSignedInWith is assertSignedIn of a sign-in whose ID token has amr (space-separated).
func assertSignedInWith(t *testing.T, b *chromium.Browser, app *relyingApp, amr string) signedIn {
	t.Helper()
	b.Run("wait for "+app.name+"'s signed-in page", chromedp.WaitVisible(chromedp.CSS(`#signed-in, #error, input[name="password"]`)))
	if b.Count(`input[name="password"]`) > 0 {
		msg := "no error shown"
		if b.Count("#form-error") > 0 {
			msg = "error: " + b.Text("#form-error")
		}
		t.Fatalf("%s shows the login page (%s) at %s, want the application signed in", app.name, msg, b.Location())
	}
	if b.Count("#error") > 0 {
		t.Fatalf("%s shows an error: %s", app.name, b.Text("#error"))
	}
	if loc := b.Location(); stripQuery(loc) != app.url+"/callback" {
		t.Fatalf("the signed-in page is at %s, want %s/callback", loc, app.url)
	}
	want := map[string]string{"#sub": "people|alice", "#aud": app.clientID, "#email": "alice@example.com", "#name": "Alice Liddell", "#amr": amr}
	for sel, v := range want {
		if got := b.Text(sel); got != v {
			t.Errorf("%s shows %s %q, want %q", app.name, sel, got, v)
		}
	}
	s := signedIn{sid: b.Text("#sid"), authTime: b.Text("#auth_time")}
	if s.sid == "" {
		t.Errorf("%s's ID token has no sid", app.name)
	}
	return s
}

func stripQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	return ln
}

func hostPort(host string, ln net.Listener) string {
	return net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}

// serveConfigOn starts a server of cfg, with the test keys and fresh test storage, and serves
// it on ln until t ends.
func serveConfigOn(t *testing.T, ln net.Listener, cfg *config.Config, opts ...server.Option) *server.Server {
	t.Helper()
	return serveConfigWithStorage(t, ln, cfg, openTestStorage(t), opts...)
}

// serveConfigWithStorage is serveConfigOn with storage the test prepared.
func serveConfigWithStorage(t *testing.T, ln net.Listener, cfg *config.Config, store storage.Storage, opts ...server.Option) *server.Server {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, keys, store, append([]server.Option{server.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	serveOn(t, ln, srv)
	return srv
}

func serveOn(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
}

// testNamesClient is the applications' HTTP client: it dials every .test name on loopback,
// as Chromium's resolver rules do, and loopback addresses as they are; every other name and
// address is refused.
func testNamesClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return d.DialContext(ctx, network, addr)
			}
			if !strings.HasSuffix(host, ".test") {
				return nil, fmt.Errorf("dial %s: only .test names resolve in this test", addr)
			}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}},
	}
}

// relyingApp is a tiny regular web application using go-oidc and x/oauth2: /login starts an
// authorization code flow with PKCE, /callback exchanges the code and shows the verified ID
// token's claims, /logout starts RP-initiated logout. It keeps no session of its own, so every
// /login asks the SSO server.
type relyingApp struct {
	clientID, name, secret, url string
	ln                          net.Listener

	ctx        context.Context // carries the HTTP client for go-oidc and x/oauth2
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string

	mu      sync.Mutex
	pending map[string]login // by state
	idToken string           // the last ID token, the hint of logout
}

func newRelyingApp(t *testing.T, clientID, name, host string) *relyingApp {
	t.Helper()
	ln := listenLoopback(t)
	return &relyingApp{clientID: clientID, name: name, secret: clientID + "-secret", url: "http://" + hostPort(host, ln), ln: ln, pending: map[string]login{}}
}

// typePassword fills the login page's username and password and submits the form; the
// step that runs it waits for the page it expects next.
func typePassword(username, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		return chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), username),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
			chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible))
	})
}

// client is the application's SSOClient as the browser tests register it: a regular web
// app with single sign-on on the people connection, its callback and signed-out page
// registered. Tests change what they are about.
func (a *relyingApp) client() config.Client {
	return config.Client{
		ID: a.clientID, Name: a.name, Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of(a.secret)},
		RedirectURIs: []string{a.url + "/callback"}, PostLogoutRedirectURIs: []string{a.url + "/signed-out"},
		SingleSignOn: true, Connections: []string{"people"},
	}
}

// connect discovers the provider and starts serving the application.
func (a *relyingApp) connect(t *testing.T, issuer string) {
	t.Helper()
	a.ctx = oidc.ClientContext(context.Background(), testNamesClient())
	provider, err := oidc.NewProvider(a.ctx, issuer)
	if err != nil {
		t.Fatalf("%s: discover provider: %v", a.name, err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("%s: discovery has no end_session_endpoint (%v)", a.name, err)
	}
	a.endSession = meta.EndSession
	a.verifier = provider.Verifier(&oidc.Config{ClientID: a.clientID})
	a.oauth = oauth2.Config{
		ClientID: a.clientID, ClientSecret: a.secret, Endpoint: provider.Endpoint(),
		RedirectURL: a.url + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.handleLogin)
	mux.HandleFunc("GET /callback", a.handleCallback)
	mux.HandleFunc("GET /logout", a.handleLogout)
	mux.HandleFunc("GET /signed-out", func(w http.ResponseWriter, _ *http.Request) {
		_ = appPage.Execute(w, map[string]any{"App": a.name, "SignedOut": true})
	})
	serveOn(t, a.ln, mux)
}

func (a *relyingApp) handleLogin(w http.ResponseWriter, r *http.Request) {
	l := newLogin()
	a.mu.Lock()
	a.pending[l.state] = l
	a.mu.Unlock()
	http.Redirect(w, r, a.oauth.AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce)), http.StatusFound)
}

func (a *relyingApp) handleCallback(w http.ResponseWriter, r *http.Request) {
	claims, err := a.finishLogin(r)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = appPage.Execute(w, map[string]any{"App": a.name, "Error": err.Error()})
		return
	}
	_ = appPage.Execute(w, map[string]any{"App": a.name, "Claims": claims})
}

// idClaims are the ID token claims the application shows.
type idClaims struct {
	Subject  string   `json:"sub"`
	Audience string   `json:"-"`
	Email    string   `json:"email"`
	Verified bool     `json:"email_verified"`
	Name     string   `json:"name"`
	SID      string   `json:"sid"`
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
}

func (a *relyingApp) finishLogin(r *http.Request) (*idClaims, error) {
	q := r.URL.Query()
	a.mu.Lock()
	l, ok := a.pending[q.Get("state")]
	delete(a.pending, q.Get("state"))
	a.mu.Unlock()
	if !ok {
		return nil, errors.New("unknown state")
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("authorization failed: %s (%s)", e, q.Get("error_description"))
	}
	tok, err := a.oauth.Exchange(a.ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(a.ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verify ID token: %w", err)
	}
	if idt.Nonce != l.nonce {
		return nil, fmt.Errorf("verify ID token: nonce %q, want %q", idt.Nonce, l.nonce)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return nil, fmt.Errorf("read ID token claims: %w", err)
	}
	c.Audience = strings.Join(idt.Audience, " ")
	a.mu.Lock()
	a.idToken = raw
	a.mu.Unlock()
	return &c, nil
}

func (a *relyingApp) handleLogout(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	hint := a.idToken
	a.mu.Unlock()
	u := a.endSession + "?" + url.Values{"id_token_hint": {hint}, "client_id": {a.clientID}, "post_logout_redirect_uri": {a.url + "/signed-out"}}.Encode()
	http.Redirect(w, r, u, http.StatusFound)
}

var appPage = template.Must(template.New("app").Parse(`<!doctype html>
<html><head><title>{{.App}}</title></head><body><main>
{{if .Error}}<p id="error">{{.Error}}</p>
{{else if .SignedOut}}<h1 id="signed-out">Signed out of {{.App}}</h1>
{{else}}<h1 id="signed-in">Signed in to {{.App}}</h1>
<dl>
<dt>sub</dt><dd id="sub">{{.Claims.Subject}}</dd>
<dt>aud</dt><dd id="aud">{{.Claims.Audience}}</dd>
<dt>email</dt><dd id="email">{{.Claims.Email}}</dd>
<dt>email_verified</dt><dd id="email_verified">{{.Claims.Verified}}</dd>
<dt>name</dt><dd id="name">{{.Claims.Name}}</dd>
<dt>sid</dt><dd id="sid">{{.Claims.SID}}</dd>
<dt>auth_time</dt><dd id="auth_time">{{.Claims.AuthTime}}</dd>
<dt>amr</dt><dd id="amr">{{range $i, $m := .Claims.AMR}}{{if $i}} {{end}}{{$m}}{{end}}</dd>
</dl>
{{end}}</main></body></html>
`))
