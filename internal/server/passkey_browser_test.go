package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestBrowserEnrolsAPasskeyAndSignsInWithItWithoutAUsername, in headless Chromium with the
// DevTools WebAuthn virtual authenticator (a platform authenticator: CTAP2, internal
// transport, resident keys, user verification; it stands in for a phone's or laptop's
// passkey store, which cannot run here): alice signs in with her password, adds a passkey
// on the account page, signs out everywhere, and signs in to the application again with
// the passkey alone, typing no username; the application's ID token names the hardware key
// and mfa in amr.
func TestBrowserEnrolsAPasskeyAndSignsInWithItWithoutAUsername(t *testing.T) {
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	app := newRelyingApp(t, "app-a", "App A", appAHost)
	cfg := testConfig(t, issuer)
	cfg.MFA = config.MFA{Policy: config.MFAOptional, Factors: []string{config.FactorTOTP, config.FactorWebAuthn}}
	cfg.Clients = []config.Client{{
		ID: app.clientID, Name: app.name, Type: config.ClientRegularWebApp,
		SecretSHA256: []string{config.SecretDigest(app.secret)},
		RedirectURIs: []string{app.url + "/callback"}, PostLogoutRedirectURIs: []string{app.url + "/signed-out"},
		SingleSignOn: true, Connections: []string{"people"},
	}}
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, keys, openTestStorage(t), server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	serveOn(t, ssoLn, srv)
	app.connect(t, issuer)
	// WebAuthn runs only in secure contexts; the test's issuer is plain HTTP on loopback
	// under a test host name, which this flag lets Chromium treat as the HTTPS origin it is
	// in production.
	var b *chromium.Browser
	b = chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost},
		Flags:     map[string]any{"unsafely-treat-insecure-origin-as-secure": issuer},
		OnFailure: func(string) { t.Logf("the page shows:\n%s", b.Text("main")) }})
	shots := newScreenshots(t, b)
	b.Run("add a virtual platform authenticator", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		return err
	}))

	b.Run("open App A", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("wait for the passkey button", chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="get"]`)))
	b.Run("sign in as alice with her password",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), alicePassword),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")),
	)
	assertSignedIn(t, b, app)

	b.Run("open the account page", chromedp.Navigate(issuer+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="create"]`)))
	shots.take("1 account page without a passkey")
	b.Run("add a passkey", chromedp.Click(chromedp.CSS(`button[data-passkey="create"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[value="remove-factor"] ~ button, #error, #passkey-status:not(:empty)`)))
	if main := b.Text("main"); !strings.Contains(main, "Remove Passkey") {
		t.Fatalf("after adding a passkey the account page shows:\n%s", main)
	}
	shots.take("2 account page with the passkey")
	b.Run("sign out everywhere", chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions-heading`)))

	b.Run("open App A again", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	shots.take("3 login page with the passkey button")
	b.Run("sign in with the passkey, no username typed",
		chromedp.Click(chromedp.CSS(`button[data-passkey="get"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error, #passkey-status:not(:empty)")))
	// The virtual authenticator's credential is not backup eligible: a hardware-bound key.
	assertSignedInWith(t, b, app, "hwk mfa")
	shots.take("4 App A signed in with the passkey")
}
