package server_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/server"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// idpHost is the upstream OpenID provider's site in the browser test.
const idpHost = "idp.test"

// TestBrowserSignsInThroughAnUpstreamOIDCProvider is issue 4's OIDC scenario in headless
// Chromium against npm's oidc-provider on its own site: App A's user picks the upstream on
// the chooser and signs in there; App B then gets a code silently with
// connection=upstream, and a silent request for another connection is answered with
// interaction_required. Finally a federated /v2/logout ends the upstream's session too
// (issue 6): choosing the upstream again asks for a password.
func TestBrowserSignsInThroughAnUpstreamOIDCProvider(t *testing.T) {
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	peer := conntest.StartOIDCProvider(t, conntest.OIDCProviderOptions{
		Host:                   idpHost,
		RedirectURIs:           []string{issuer + "/connections/upstream/callback"},
		PostLogoutRedirectURIs: []string{issuer + "/logout/federated/return"},
	})
	appA, appB := newRelyingApp(t, "app-a", "App A", appAHost), newRelyingApp(t, "app-b", "App B", appBHost)
	cfg := testConfig(t, issuer)
	cfg.Clients, cfg.APIs = nil, nil
	for _, a := range []*relyingApp{appA, appB} {
		c := a.client()
		c.Connections = append(c.Connections, "upstream")
		cfg.Clients = append(cfg.Clients, c)
	}
	cfg.Connections = append(cfg.Connections, config.Connection{Name: "upstream", Type: config.ConnectionOIDC, DisplayName: "Upstream IdP",
		OIDC: &config.OIDCConnection{Issuer: peer.Issuer, ClientID: conntest.OIDCClientID, ClientSecret: conntest.OIDCClientSecret,
			Scopes: []string{"email", "openid", "profile"}}})
	serveConfigOn(t, ssoLn, cfg, server.WithUpstreamHTTPClient(testNamesClient()))
	appA.connect(t, issuer)
	appB.connect(t, issuer)

	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, idpHost, appAHost, appBHost}})

	// 1. App A: the chooser, whose upstream button leads to the upstream's own login page.
	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	b.Run("choose the upstream IdP",
		chromedp.Click(chromedp.CSS(`button[name="connection"][value="upstream"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#upstream-username")),
	)
	if loc := b.Location(); !strings.HasPrefix(loc, peer.Issuer+"/interaction/") {
		t.Fatalf("the upstream button led to %s, want the upstream's login page", loc)
	}
	b.Run("sign in at the upstream as alice",
		chromedp.SendKeys(chromedp.CSS("#upstream-username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#upstream-password"), conntest.OIDCAlicePass),
		chromedp.Click(chromedp.CSS("#upstream-submit")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error")),
	)
	first := assertSignedInUpstream(t, b, appA)

	// 2. App B, silently with connection=upstream: a code of the same session.
	b.Run("open App B silently with connection=upstream", chromedp.Navigate(appB.authURL(oidc.ScopeOpenID, "upstream")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error")))
	if second := assertSignedInUpstream(t, b, appB); second != first {
		t.Fatalf("App B's sid %q, want App A's session %q", second, first)
	}

	// 3. Silently with another connection: the user has to interact.
	b.Run("open App B silently with connection=people", chromedp.Navigate(appB.authURL(oidc.ScopeOpenID, "people")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error")))
	if msg := b.Text("#error"); !strings.Contains(msg, "interaction_required") {
		t.Fatalf("App B shows %q, want interaction_required", msg)
	}

	// 4. Federated logout: the central session ends, the browser is sent to the upstream's
	// end-session endpoint (which asks the user to confirm, as oidc-provider does), then
	// back through Hallpass to App A's registered post-logout URI.
	// Without an id_token_hint Hallpass asks first (logout CSRF), then the upstream asks.
	b.Run("sign out of Hallpass and the upstream", chromedp.Navigate(issuer+"/v2/logout?federated&client_id="+appA.clientID+"&returnTo="+appA.url+"/signed-out"),
		chromedp.Click(chromedp.CSS(`form[action$="/v2/logout"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`button[name="logout"][value="yes"]`), chromedp.NodeVisible))
	b.WaitLocation(appA.url + "/signed-out")

	b.Run("open App B silently with connection=upstream", chromedp.Navigate(appB.authURL(oidc.ScopeOpenID, "upstream")),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error")))
	if msg := b.Text("#error"); !strings.Contains(msg, "login_required") {
		t.Fatalf("after the federated logout App B shows %q, want login_required", msg)
	}
	b.Run("choose the upstream IdP again", chromedp.Navigate(appA.url+"/login"),
		chromedp.Click(chromedp.CSS(`button[name="connection"][value="upstream"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#upstream-username, #signed-in")))
	if b.Count("#upstream-username") == 0 {
		t.Fatalf("the upstream signed the user in without a password (at %s): its session survived the federated logout", b.Location())
	}
}

// assertSignedInUpstream checks that app shows the upstream's alice and returns the sid.
func assertSignedInUpstream(t *testing.T, b *chromium.Browser, app *relyingApp) string {
	t.Helper()
	if b.Count("#error") > 0 {
		t.Fatalf("%s shows an error: %s (at %s)", app.name, b.Text("#error"), b.Location())
	}
	want := map[string]string{"#sub": "upstream|alice", "#aud": app.clientID, "#email": "alice@example.net", "#name": "Alice Upstream", "#amr": "fed"}
	for sel, v := range want {
		if got := b.Text(sel); got != v {
			t.Errorf("%s shows %s %q, want %q", app.name, sel, got, v)
		}
	}
	sid := b.Text("#sid")
	if sid == "" {
		t.Errorf("%s's ID token has no sid", app.name)
	}
	return sid
}

// authURL starts a prompt=none authorization of the app with a connection, remembering it
// as the app's own /login would.
func (a *relyingApp) authURL(scope, connection string) string {
	l := newLogin()
	a.mu.Lock()
	a.pending[l.state] = l
	a.mu.Unlock()
	return a.oauth.AuthCodeURL(l.state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce),
		oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("connection", connection), oauth2.SetAuthURLParam("scope", scope+" profile email"))
}
