package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"html/template"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

// The host of the application oauth2-proxy protects.
const wikiHost = "wiki.test"

// TestOAuth2ProxyProtectsAnAppWithHallpass puts the real oauth2-proxy (built from its Go
// module by hack/oauth2-proxy.sh) in front of an upstream, with Hallpass as its OIDC
// provider, and drives Chromium through it: a user signed in to another Hallpass app
// reaches the upstream without a password; signing out at the proxy ends the central
// session (oauth2-proxy's backend logout with the ID token), so both the proxy and the other
// app ask for a password again; a password sign-in at the proxy reaches the upstream.
func TestOAuth2ProxyProtectsAnAppWithHallpass(t *testing.T) {
	issuer, proxyURL, appA := startWikiBehindOAuth2Proxy(t)
	b := chromium.Start(t, chromium.Options{Hosts: []string{appAHost, wikiHost}})
	shots := newScreenshots(t, b)

	// 1. Another Hallpass app: the password once.
	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	signInAsAlice(b)
	assertSignedIn(t, b, appA)

	// 2. The app behind oauth2-proxy: no page of Hallpass, the upstream sees alice.
	stop := b.RecordPages()
	b.Run("open the wiki", chromedp.Navigate(proxyURL+"/"))
	assertUpstreamSees(t, b, "alice@example.com")
	shots.take("1 the wiki without a password")
	for _, p := range stop() {
		if strings.HasPrefix(p, issuer) {
			t.Errorf("the wiki's sign-in showed a page of Hallpass: %s", p)
		}
	}

	// 3. Sign out at the proxy: its cookie goes, and its backend logout ends the session.
	b.Run("sign out of the wiki", chromedp.Navigate(proxyURL+"/oauth2/sign_out?rd=%2F"))
	assertLoginPage(t, b, issuer, "Wiki")
	shots.take("2 login page after signing out of the wiki")
	b.Run("open App A after signing out of the wiki", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")

	// 4. A password sign-in at the proxy.
	b.Run("open the wiki again", chromedp.Navigate(proxyURL+"/"))
	assertLoginPage(t, b, issuer, "Wiki")
	signInAsAlice(b)
	assertUpstreamSees(t, b, "alice@example.com")
	shots.take("3 the wiki after a password sign-in")
}

// startWikiBehindOAuth2Proxy starts Hallpass with two clients, App A and the wiki, an upstream
// (the wiki) and oauth2-proxy in front of it with the guide's flags; it returns the issuer,
// the proxy's URL and App A.
func startWikiBehindOAuth2Proxy(t *testing.T) (string, string, *relyingApp) {
	t.Helper()
	proxyBin := oauth2ProxyBinary(t)
	// The issuer is on loopback by IP, so oauth2-proxy finds it by discovery; the apps are
	// on sites of their own (.test names that only Chromium and the apps resolve).
	ssoLn := listenLoopback(t)
	issuer := "http://" + ssoLn.Addr().String()
	appA := newRelyingApp(t, "app-a", "App A", appAHost)
	proxyLn := listenLoopback(t)
	proxyAddr := proxyLn.Addr().String()
	proxyURL := "http://" + hostPort(wikiHost, proxyLn)
	// oauth2-proxy listens itself: free the port just before it starts.
	proxyLn.Close()

	cfg := testConfig(t, issuer)
	cfg.Clients = []config.Client{
		appA.client(),
		// The SSOClient of the guide's "Protect any app with oauth2-proxy".
		{ID: "wiki", Name: "Wiki", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("wiki-secret")},
			RedirectURIs: []string{proxyURL + "/oauth2/callback"}, SingleSignOn: true, Connections: []string{"people"}},
	}
	cfg.APIs = nil
	serveConfigOn(t, ssoLn, cfg)
	appA.connect(t, issuer)
	upstream := startUpstream(t)
	startOAuth2Proxy(t, proxyBin, proxyAddr, []string{
		"--provider=oidc", "--provider-display-name=Hallpass",
		"--oidc-issuer-url=" + issuer,
		"--client-id=wiki", "--client-secret=wiki-secret",
		"--redirect-url=" + proxyURL + "/oauth2/callback",
		"--upstream=" + upstream,
		"--email-domain=*",
		"--scope=openid profile email groups",
		"--code-challenge-method=S256",
		"--skip-provider-button=true",
		"--cookie-secret=" + cookieSecret(t),
		"--cookie-secure=false",
		"--backend-logout-url=" + issuer + "/oidc/logout?id_token_hint={id_token}",
	})
	return issuer, proxyURL, appA
}

// signInAsAlice fills the login page shown.
func signInAsAlice(b *chromium.Browser) {
	b.Run("sign in as alice",
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #upstream, #error, #form-error")),
	)
}

// assertUpstreamSees checks that the browser shows the upstream's page with the user
// oauth2-proxy passed on.
func assertUpstreamSees(t *testing.T, b *chromium.Browser, email string) {
	t.Helper()
	b.Run("wait for the upstream", chromedp.WaitVisible(chromedp.CSS(`#upstream, input[name="password"], #form-error`)))
	if b.Count("#upstream") == 0 {
		t.Fatalf("the browser shows %q at %s, want the upstream's page", b.Text("main"), b.Location())
	}
	if got := b.Text("#email"); got != email {
		t.Errorf("the upstream got X-Forwarded-Email %q, want %q", got, email)
	}
	if got := b.Text("#user"); got != "people|alice" {
		t.Errorf("the upstream got X-Forwarded-User %q, want alice's subject", got)
	}
	if got := b.Text("#groups"); !strings.Contains(got, "admins") {
		t.Errorf("the upstream got X-Forwarded-Groups %q, want alice's admins", got)
	}
}

var upstreamPage = template.Must(template.New("upstream").Parse(`<!doctype html>
<html><head><title>Wiki</title></head><body><main>
<h1 id="upstream">The wiki</h1>
<dl><dt>user</dt><dd id="user">{{.User}}</dd><dt>email</dt><dd id="email">{{.Email}}</dd>
<dt>groups</dt><dd id="groups">{{.Groups}}</dd></dl>
</main></body></html>
`))

// startUpstream serves the protected app, which shows the user oauth2-proxy names in its
// headers, and returns its URL.
func startUpstream(t *testing.T) string {
	t.Helper()
	ln := listenLoopback(t)
	serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = upstreamPage.Execute(w, map[string]string{
			"User": r.Header.Get("X-Forwarded-User"), "Email": r.Header.Get("X-Forwarded-Email"),
			"Groups": r.Header.Get("X-Forwarded-Groups"),
		})
	}))
	return "http://" + ln.Addr().String() + "/"
}

// oauth2ProxyBinary is $HALLPASS_OAUTH2_PROXY (make test builds it), or the binary
// hack/oauth2-proxy.sh builds once into the cache.
func oauth2ProxyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds oauth2-proxy and starts Chromium")
	}
	if p := os.Getenv("HALLPASS_OAUTH2_PROXY"); p != "" {
		return p
	}
	script, err := filepath.Abs("../../hack/oauth2-proxy.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), script).Output()
	if err != nil {
		t.Fatalf("build oauth2-proxy with %s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// startOAuth2Proxy runs oauth2-proxy on addr until the test ends and waits until it answers
// /ping.
func startOAuth2Proxy(t *testing.T, bin, addr string, args []string) {
	t.Helper()
	args = append(args, "--http-address="+addr)
	ctx, cancel := context.WithCancel(context.Background())
	var logs logbuf.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start oauth2-proxy: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oauth2-proxy's output:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("oauth2-proxy did not answer on %s within 30s:\n%s", addr, logs.String())
}

// cookieSecret is a random secret of 32 characters (an AES-256 key) for oauth2-proxy's
// cookies.
func cookieSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
