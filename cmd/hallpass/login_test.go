package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/passhash"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

const (
	kubectlClient = "kubectl"
	bobPassword   = "correct horse battery"
)

// startIssuer serves a real Hallpass server on loopback with a Native kubectl client that
// may use the browser and the device flow, and one user, bob in group sre: over https with a
// certificate of ca when ca is not nil. edit adjusts the config.
func startIssuer(t *testing.T, ca *conntest.CA, edit ...func(*config.Config)) string {
	t.Helper()
	return startIssuerBehind(t, ca, nil, edit...)
}

// startIssuerBehind is startIssuer with the server's handler wrapped by wrap (when not nil),
// to make it fail as an outage would.
func startIssuerBehind(t *testing.T, ca *conntest.CA, wrap func(http.Handler) http.Handler, edit ...func(*config.Config)) string {
	t.Helper()
	hash, err := passhash.Hash(bobPassword)
	if err != nil {
		t.Fatal(err)
	}
	// The server is made once the listener's address, its issuer, is known; the handler
	// reads it atomically, since the serving goroutines start before.
	var srv atomic.Pointer[server.Server]
	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := srv.Load(); s != nil {
			s.ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	if wrap != nil {
		handler = wrap(handler)
	}
	ts := httptest.NewUnstartedServer(handler)
	if ca != nil {
		ts.TLS = ca.TLSConfig(t)
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	cfg := minimalConfig(ts.URL, dir)
	cfg.Clients = []config.Client{{ID: kubectlClient, Name: "kubectl", Type: config.ClientNative, SingleSignOn: true,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, Connections: []string{"people"},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantDeviceCode, config.GrantRefreshToken}}}
	cfg.Connections = []config.Connection{{Name: "people", Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{
		Users: []config.DatabaseUser{{Username: "bob", Email: "bob@example.com", Groups: []string{"sre"}, PasswordHash: hash}}}}}
	for _, f := range edit {
		f(cfg)
	}
	keys, err := config.NewSigningKeys("ES256")
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "hallpass.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := server.New(cfg, keys, store, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Store(s)
	return ts.URL
}

// syncBuffer is a stderr that the test reads while the command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until re matches what the command wrote to stderr and returns the match.
func (s *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the command never wrote %s; stderr:\n%s", re, s.String())
	return nil
}

// formBrowser is a user agent without JavaScript: it follows redirects and posts forms.
type formBrowser struct {
	t *testing.T
	c *http.Client
}

func newFormBrowser(t *testing.T) *formBrowser {
	jar, _ := cookiejar.New(nil)
	return &formBrowser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

var (
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

func (b *formBrowser) get(u string) string {
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// submit posts the page's form with its hidden fields and extra.
func (b *formBrowser) submit(page string, extra url.Values) string {
	m := actionRe.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no form on the page:\n%s", page)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(h[1], strings.ReplaceAll(h[2], "&amp;", "&"))
	}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := b.c.PostForm(strings.ReplaceAll(m[1], "&amp;", "&"), form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// login runs `hallpass login` in the background and returns its result when it ends.
func login(ctx context.Context, args []string, open func(string) error) (stdout *bytes.Buffer, stderr *syncBuffer, done chan error) {
	stdout, stderr, done = new(bytes.Buffer), new(syncBuffer), make(chan error, 1)
	go func() { done <- runLogin(ctx, args, stdout, stderr, open) }()
	return stdout, stderr, done
}

func wait(t *testing.T, done chan error, stderr *syncBuffer) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hallpass login: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("hallpass login did not finish; stderr:\n%s", stderr.String())
	}
}

// credential checks an ExecCredential and returns its token, verified as an ID token of
// the kubectl client.
func credential(t *testing.T, issuer string, stdout *bytes.Buffer) (string, *oidc.IDToken) {
	t.Helper()
	var ec execCredential
	if err := json.Unmarshal(stdout.Bytes(), &ec); err != nil {
		t.Fatalf("stdout is not an ExecCredential: %v\n%s", err, stdout.String())
	}
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" {
		t.Fatalf("stdout: %s %s", ec.APIVersion, ec.Kind)
	}
	exp, err := time.Parse(time.RFC3339, ec.Status.ExpirationTimestamp)
	if err != nil || time.Until(exp) < time.Minute {
		t.Errorf("expirationTimestamp %q", ec.Status.ExpirationTimestamp)
	}
	provider, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: kubectlClient}).Verify(context.Background(), ec.Status.Token)
	if err != nil {
		t.Fatalf("the credential's token is not an ID token of the kubectl client: %v", err)
	}
	return ec.Status.Token, idt
}

var verificationRe = regexp.MustCompile(`\(or open (\S+)\)`)

// expireCachedToken makes the cached ID token look expired, as it will after its lifetime.
func expireCachedToken(t *testing.T, cacheDir, issuer string) *cachedToken {
	t.Helper()
	path, err := tokenCachePath(cacheDir, issuer, kubectlClient)
	if err != nil {
		t.Fatal(err)
	}
	c, err := readTokenCache(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Expiry = time.Now().Add(-time.Minute)
	if err := writeTokenCache(path, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// noBrowser is the browser of a machine that has none, for the device flow.
func noBrowser(string) error { return errors.New("the device flow must not open a browser") }

// deviceSignIn runs `hallpass login --device` with args and signs bob in on b, as a user
// typing the code on another device would; it returns the command's output.
func deviceSignIn(t *testing.T, b *formBrowser, args []string) (*bytes.Buffer, *syncBuffer) {
	t.Helper()
	stdout, stderr, done := login(context.Background(), args, noBrowser)
	link := stderr.waitFor(t, verificationRe)[1]
	loginPage := b.submit(b.get(link), url.Values{"decision": {"allow"}})
	if page := b.submit(loginPage, url.Values{"username": {"bob"}, "password": {bobPassword}}); !strings.Contains(page, "Your device is signed in") {
		t.Fatalf("after signing in on the device page:\n%s", page)
	}
	wait(t, done, stderr)
	return stdout, stderr
}

func TestLoginWithTheDeviceFlowCachesRefreshesAndAsksAgainAfterSignOut(t *testing.T) {
	issuer := startIssuer(t, nil)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	args := []string{"--issuer", issuer, "--client-id", kubectlClient, "--device", "--cache-dir", cacheDir}

	b := newFormBrowser(t)
	stdout, stderr := deviceSignIn(t, b, args)
	token, idt := credential(t, issuer, stdout)
	if idt.Subject != "people|bob" {
		t.Errorf("signed in as %q", idt.Subject)
	}
	if strings.Contains(stderr.String(), token) {
		t.Error("the token was written to stderr")
	}

	path, _ := tokenCachePath(cacheDir, issuer, kubectlClient)
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %o", p, info.Mode().Perm(), err, want)
		}
	}

	// The next kubectl call gets the cached token without a word on stderr.
	stdout, stderr, done := login(context.Background(), args, noBrowser)
	wait(t, done, stderr)
	if again, _ := credential(t, issuer, stdout); again != token || stderr.String() != "" {
		t.Errorf("a second call did not reuse the cache (stderr %q)", stderr.String())
	}

	// Once the ID token has expired, the refresh token gets a new one, and rotates.
	before := expireCachedToken(t, cacheDir, issuer)
	stdout, stderr, done = login(context.Background(), args, noBrowser)
	wait(t, done, stderr)
	credential(t, issuer, stdout)
	after, _ := readTokenCache(path)
	if after.RefreshToken == before.RefreshToken || time.Until(after.Expiry) < time.Minute || stderr.String() != "" {
		t.Errorf("the refresh did not rotate the refresh token or renew the ID token (stderr %q)", stderr.String())
	}

	// Signing out everywhere ends the refresh token: the next call asks to sign in again.
	if page := b.submit(b.get(issuer+"/v2/logout"), nil); !strings.Contains(page, "signed out") {
		t.Fatalf("signing out:\n%s", page)
	}
	expireCachedToken(t, cacheDir, issuer)
	ctx, cancel := context.WithCancel(context.Background())
	_, stderr, done = login(ctx, args, noBrowser)
	stderr.waitFor(t, verificationRe)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled sign-in succeeded")
	}
	if !strings.Contains(stderr.String(), "no longer valid") {
		t.Errorf("stderr does not say why it asks again:\n%s", stderr.String())
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused sign-in is still cached: %v", err)
	}
}

// A server that cannot answer a refresh (down, or its storage is) is not a refused
// sign-in: the cached one is kept, kubectl gets an error that says so, and once the server
// is back the next call refreshes without asking the user to sign in.
func TestLoginKeepsTheSavedSignInWhileTheServerCannotAnswer(t *testing.T) {
	// outage answers the token endpoint in place of the server while it is set.
	var outage atomic.Pointer[func(http.ResponseWriter)]
	issuer := startIssuerBehind(t, nil, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if answer := outage.Load(); answer != nil && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
				(*answer)(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	cacheDir := filepath.Join(t.TempDir(), "cache")
	args := []string{"--issuer", issuer, "--client-id", kubectlClient, "--device", "--cache-dir", cacheDir}
	deviceSignIn(t, newFormBrowser(t), args)
	saved := expireCachedToken(t, cacheDir, issuer)
	path, _ := tokenCachePath(cacheDir, issuer, kubectlClient)

	for name, answer := range map[string]func(http.ResponseWriter){
		"the server is unavailable": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
		},
		"a proxy in front of it answers with a page of its own": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<html><body>Maintenance</body></html>`))
		},
	} {
		outage.Store(&answer)
		_, stderr, done := login(context.Background(), args, noBrowser)
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "kept for the next try") {
				t.Errorf("%s: err = %v, want one saying the saved sign-in is kept", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: hallpass login asked for a new sign-in; stderr:\n%s", name, stderr.String())
		}
		if kept, err := readTokenCache(path); err != nil || kept.RefreshToken != saved.RefreshToken {
			t.Fatalf("%s: the saved sign-in was not kept: %v", name, err)
		}
	}

	outage.Store(nil)
	stdout, stderr, done := login(context.Background(), args, noBrowser)
	wait(t, done, stderr)
	credential(t, issuer, stdout)
	if stderr.String() != "" {
		t.Errorf("after the outage the refresh said %q, want nothing", stderr.String())
	}
}

func TestEachIssuerAndClientHasItsOwnTokenCache(t *testing.T) {
	dir := t.TempDir()
	paths := map[string]bool{}
	for _, ic := range [][2]string{
		{"https://sso.example.com", "kubectl"},
		{"https://sso.example.com", "kubectl-prod"},
		{"https://sso.example.org", "kubectl"},
		{"https://sso.example.com/tenant", "kubectl"},
	} {
		p, err := tokenCachePath(dir, ic[0], ic[1])
		if err != nil {
			t.Fatal(err)
		}
		if paths[p] {
			t.Errorf("issuer %s and client %s share a cache file with another pair", ic[0], ic[1])
		}
		paths[p] = true
		if again, _ := tokenCachePath(dir, ic[0], ic[1]); again != p {
			t.Errorf("issuer %s and client %s: cache file %s, then %s", ic[0], ic[1], p, again)
		}
	}
}

// TestLoginOpensTheBrowserAndTakesTheCodeOnALoopbackRedirect is the browser sign-in with
// headless Chromium as the user's browser: `hallpass login` "opens" the URL in it, the user
// signs in, and the server sends the browser back to the command's loopback listener.
func TestLoginOpensTheBrowserAndTakesTheCodeOnALoopbackRedirect(t *testing.T) {
	issuer := startIssuer(t, nil)
	br := chromium.Start(t, chromium.Options{})
	opened := make(chan string, 1)
	open := func(u string) error { opened <- u; return nil }
	stdout, stderr, done := login(context.Background(), []string{"--issuer", issuer, "--client-id", kubectlClient, "--cache-dir", t.TempDir()}, open)
	var authURL string
	select {
	case authURL = <-opened:
	case <-time.After(20 * time.Second):
		t.Fatalf("no browser was opened; stderr:\n%s", stderr.String())
	}
	if u, _ := url.Parse(authURL); u.Query().Get("code_challenge_method") != "S256" || !strings.HasPrefix(u.Query().Get("redirect_uri"), "http://127.0.0.1:") {
		t.Fatalf("the authorization request lacks PKCE or a loopback redirect: %s", authURL)
	}
	br.Run("sign in",
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), bobPassword),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#result`)),
	)
	if got := br.Text("#result"); !strings.Contains(got, "You are signed in") {
		t.Errorf("the loopback page says %q", got)
	}
	wait(t, done, stderr)
	if _, idt := credential(t, issuer, stdout); idt.Subject != "people|bob" {
		t.Errorf("signed in as %q", idt.Subject)
	}
}
