package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/config"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestBrowserEnrolsAPasskeyAndSignsInWithItWithoutAUsername, in headless Chromium with the
// DevTools WebAuthn virtual authenticator (a platform authenticator: CTAP2, internal
// transport, resident keys, user verification; it stands in for a phone's or laptop's
// passkey store, which cannot run here): alice signs in with her password, adds a passkey
// on the account page, signs out everywhere, and signs in to the application again with
// the passkey alone, typing no username; the application's ID token names the hardware key
// and mfa in amr. A later password sign-in asks for the passkey as the second factor; a
// copy of the passkey whose counter went back is refused.
func TestBrowserEnrolsAPasskeyAndSignsInWithItWithoutAUsername(t *testing.T) {
	issuer, app, b, authenticator := startPasskeyWorld(t, config.MFA{Policy: config.MFAOptional,
		Factors: []string{config.FactorTOTP, config.FactorWebAuthn}})
	shots := newScreenshots(t, b)

	b.Run("open App A", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("wait for the passkey button", chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="get"]`)))
	b.Run("sign in as alice with her password",
		typePassword("alice", alicePassword),
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

	// The passkey as the second factor of a password sign-in.
	b.Run("sign out everywhere", chromedp.Navigate(issuer+"/account"),
		chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions-heading`)))
	b.Run("open App A with the password in mind", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in as alice with her password",
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="get"]`)),
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS(`form[aria-label="Use a passkey"] button[data-passkey="get"], #signed-in, #error, #form-error`)))
	if b.Count(`input[name="password"]`) > 0 || b.Count(`form[aria-label="Use a passkey"]`) != 1 {
		t.Fatalf("after the password the sign-in shows %q at %s, want the second-factor page offering the passkey", b.Text("main"), b.Location())
	}
	if main := b.Text("main"); !strings.Contains(main, "Use your passkey") || strings.Contains(main, "authenticator app") {
		t.Errorf("the second-factor page of a user with a passkey only says %q, want it to ask for the passkey, not an app's code", main)
	}
	shots.take("5 second factor with the passkey")
	b.Run("use the passkey as the second factor",
		chromedp.Click(chromedp.CSS(`form[aria-label="Use a passkey"] button[data-passkey="get"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error, #passkey-status:not(:empty)")))
	assertSignedInWith(t, b, app, "pwd hwk mfa")
	shots.take("6 App A signed in with the password and the passkey")

	// A copy of the passkey whose signature counter is behind the server's (a cloned
	// authenticator) signs no one in.
	b.Run("sign out everywhere again", chromedp.Navigate(issuer+"/account"),
		chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions-heading`)))
	b.Run("wind the passkey's counter back", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		got, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
		if err != nil {
			return err
		}
		if len(got.Credentials) != 1 {
			return fmt.Errorf("the authenticator holds %d credentials, want the one passkey", len(got.Credentials))
		}
		c := got.Credentials[0]
		if _, err := chromedp.Call(ctx, webauthn.ClearCredentials, webauthn.ClearCredentialsParams{AuthenticatorID: authenticator}); err != nil {
			return err
		}
		// The same key with its counter at 0. Sent as plain fields: cdproto's Credential
		// always carries the credential-trust-group flag, which this Chromium refuses.
		addCredential := cdp.Command[map[string]any, cdp.Empty]{Method: webauthn.CommandAddCredential}
		_, err = chromedp.Call(ctx, addCredential, map[string]any{"authenticatorId": authenticator, "credential": map[string]any{
			"credentialId": c.CredentialID, "isResidentCredential": true, "rpId": c.RpID, "privateKey": c.PrivateKey,
			"userHandle": c.UserHandle, "signCount": 0}})
		return err
	}))
	b.Run("open App A once more", chromedp.Navigate(app.url+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="get"]`)))
	b.Run("sign in with the cloned passkey",
		chromedp.Click(chromedp.CSS(`button[data-passkey="get"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")))
	if b.Count("#form-error") == 0 || !strings.Contains(b.Text("#form-error"), "passkey could not be used") {
		t.Fatalf("a passkey with a counter gone back shows %q, want it refused on the login page", b.Text("main"))
	}
	shots.take("7 cloned passkey refused")
}

// startPasskeyWorld serves Hallpass with the MFA policy mfa for one application (App A) and
// starts Chromium with a DevTools WebAuthn virtual platform authenticator (CTAP2, internal
// transport, resident keys, user verification; it stands in for a phone's or laptop's
// passkey store, which cannot run here).
func startPasskeyWorld(t *testing.T, mfa config.MFA) (string, *relyingApp, *chromium.Browser, webauthn.AuthenticatorID) {
	t.Helper()
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	app := newRelyingApp(t, "app-a", "App A", appAHost)
	cfg := testConfig(t, issuer)
	cfg.MFA = mfa
	cfg.APIs = nil // the test config grants its API to clients this test replaces
	cfg.Clients = []config.Client{app.client()}
	serveConfigOn(t, ssoLn, cfg)
	app.connect(t, issuer)
	// WebAuthn runs only in secure contexts; the test's issuer is plain HTTP on loopback
	// under a test host name, which this flag lets Chromium treat as the HTTPS origin it is
	// in production.
	var b *chromium.Browser
	b = chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost},
		Flags:     map[string]any{"unsafely-treat-insecure-origin-as-secure": issuer},
		OnFailure: func(string) { t.Logf("the page shows:\n%s", b.Text("main")) }})
	var authenticator webauthn.AuthenticatorID
	b.Run("add a virtual platform authenticator", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		added, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		authenticator = added.AuthenticatorID
		return err
	}))

	return issuer, app, b, authenticator
}
