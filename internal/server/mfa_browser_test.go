package server_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/hallpass/hallpass/internal/config"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestBrowserStepsUpWithAnAuthenticatorAppThenSignsInAgainWithItsCode, in headless
// Chromium: a password sign-in to App A; App B requires MFA, so the user is asked (without
// the password) to set up an authenticator app from its QR code's key, sees the recovery
// codes and reaches App B with mfa in amr; the account page lists the session with both
// applications, and "Sign out everywhere" signs the user out of both. The next sign-in to
// App B asks for the password and then for the authenticator's code, and nothing else.
func TestBrowserStepsUpWithAnAuthenticatorAppThenSignsInAgainWithItsCode(t *testing.T) {
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	apps := []*relyingApp{newRelyingApp(t, "app-a", "App A", appAHost), newRelyingApp(t, "app-b", "App B", appBHost)}
	cfg := testConfig(t, issuer)
	cfg.Clients, cfg.APIs = nil, nil
	for _, a := range apps {
		c := a.client()
		c.RequireMFA = a.clientID == "app-b"
		cfg.Clients = append(cfg.Clients, c)
	}
	serveConfigOn(t, ssoLn, cfg)
	for _, a := range apps {
		a.connect(t, issuer)
	}
	appA, appB := apps[0], apps[1]
	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost, appBHost}})
	shots := newScreenshots(t, b)

	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	shots.take("1 login page")
	b.Run("sign in as alice",
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")),
	)
	first := assertSignedIn(t, b, appA)

	b.Run("open App B", chromedp.Navigate(appB.url+"/login"))
	b.Run("wait for the second-factor page", chromedp.WaitVisible(chromedp.CSS(`#manual-key, #signed-in, #error`)))
	if b.Count(`input[name="password"]`) > 0 || b.Count("#manual-key") == 0 {
		t.Fatalf("App B's step-up shows %q at %s, want the authenticator set-up without the password", b.Text("main"), b.Location())
	}
	if b.Count(`img.qr[src^="data:image/png;base64,"]`) != 1 {
		t.Error("the set-up page shows no QR code")
	}
	shots.take("2 set up an authenticator app")
	// The authenticator app: the key as typed from the page.
	secret := strings.ReplaceAll(b.Text("#manual-key"), " ", "")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.Run("enter the code",
		chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), code),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes, #form-error`)),
	)
	if n := b.Count("ul.codes li"); n != 10 {
		t.Fatalf("%d recovery codes shown, want 10 (%s)", n, b.Text("main"))
	}
	shots.take("3 recovery codes")
	b.Run("continue to App B", chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in, #error`)))
	if got := b.Text("#amr"); !regexp.MustCompile(`\bmfa\b`).MatchString(got) || !strings.Contains(got, "otp") {
		t.Fatalf("App B's ID token has amr %q, want otp and mfa", got)
	}
	if got := b.Text("#sid"); got != first.sid {
		t.Errorf("App B is in session %q, want App A's %q (a step-up raises the session)", got, first.sid)
	}
	shots.take("4 App B signed in")

	b.Run("open the account page", chromedp.Navigate(issuer+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`#sessions-heading, #manual-key, input[name="code"]`)))
	if b.Count("#sessions-heading") == 0 {
		t.Fatalf("the account page shows %q", b.Text("main"))
	}
	if main := b.Text("main"); !strings.Contains(main, "App A, App B") || !strings.Contains(main, "(this browser)") || !strings.Contains(main, "Authenticator app") {
		t.Fatalf("the account page does not list the session with both applications and the authenticator:\n%s", main)
	}
	shots.take("5 account page")
	b.Run("sign out everywhere", chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions-heading`)))
	if !strings.Contains(b.Text("main"), "You are signed out") {
		t.Fatalf("after signing out everywhere: %q", b.Text("main"))
	}
	shots.take("6 signed out")
	b.Run("open App A again", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")

	// The next sign-in: the password, then the code of the enrolled authenticator.
	b.Run("open App B again", chromedp.Navigate(appB.url+"/login"))
	assertLoginPage(t, b, issuer, "App B")
	b.Run("sign in as alice with her password",
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS(`input[name="code"], #signed-in, #error, #form-error`)))
	if b.Count(`input[name="code"]`) == 0 || b.Count("#manual-key, img.qr") > 0 {
		t.Fatalf("after the password App B's sign-in shows %q at %s, want the authenticator's code asked for", b.Text("main"), b.Location())
	}
	if main := b.Text("main"); !strings.Contains(main, "Enter the code from your authenticator app") || !strings.Contains(main, "App B") {
		t.Errorf("the code prompt says %q, want it to ask for the authenticator's code to continue to App B", main)
	}
	shots.take("7 code prompt at the next sign-in")
	// The app's next code: the one entered at enrolment may be the current one still, and a
	// code signs in once. The server accepts one step of clock skew either way.
	code, err = totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b.Run("enter the code",
		chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), code),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in, #error, #form-error`)))
	if b.Count("#form-error") > 0 {
		t.Fatalf("the code was refused: %s", b.Text("#form-error"))
	}
	if got := b.Text("#amr"); got != "pwd otp mfa" {
		t.Errorf("App B's ID token has amr %q after the password and the code, want pwd otp mfa", got)
	}
	shots.take("8 App B signed in with the code")
}

// TestBrowserPutsOffEnrolmentWithNotNowWithinTheGrace, in headless Chromium: under policy
// Required with a grace of two days, alice (no factor yet) signs in with her password and
// is offered the authenticator set-up with "Not now", which says until when she may put it
// off; Not now takes her to App A signed in with the password alone.
func TestBrowserPutsOffEnrolmentWithNotNowWithinTheGrace(t *testing.T) {
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	app := newRelyingApp(t, "app-a", "App A", appAHost)
	cfg := testConfig(t, issuer)
	cfg.MFA = config.MFA{Policy: config.MFARequired, Factors: []string{config.FactorTOTP},
		EnrolmentGrace: config.Duration{Duration: 48 * time.Hour}}
	cfg.APIs = nil // the test config grants its API to clients this test replaces
	cfg.Clients = []config.Client{app.client()}
	serveConfigOn(t, ssoLn, cfg)
	app.connect(t, issuer)
	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost}})
	shots := newScreenshots(t, b)

	b.Run("open App A", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in as alice with her password",
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS(`#manual-key, #signed-in, #error, #form-error`)))
	if b.Count("#manual-key") == 0 || b.Count(`form.later button`) != 1 {
		t.Fatalf("the first sign-in within the grace shows %q, want the authenticator set-up with Not now", b.Text("main"))
	}
	if help := b.Text("#grace-help"); !strings.Contains(help, "You can put this off until") || !strings.Contains(help, "(in 2 days)") {
		t.Errorf("the grace is explained as %q, want its end, in 2 days", help)
	}
	shots.take("1 set up an authenticator app or not now")
	b.Run("answer Not now", chromedp.Click(chromedp.CSS(`form.later button`), chromedp.NodeVisible))
	assertSignedIn(t, b, app)
	shots.take("2 App A signed in with the password")
}
