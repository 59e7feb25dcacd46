package server_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// emailWorld starts Debian's aiosmtpd and configures a server at ssoHost that mails
// through it, with App A as its one client; the test serves cfg on ssoLn once its storage is
// ready.
func emailWorld(t *testing.T) (smtp *smtpServer, ssoLn net.Listener, issuer string, appA *relyingApp, cfg *config.Config) {
	t.Helper()
	smtp = startSMTPServer(t)
	ssoLn = listenLoopback(t)
	issuer = "http://" + hostPort(ssoHost, ssoLn)
	appA = newRelyingApp(t, "app-a", "App A", appAHost)
	cfg = testConfig(t, issuer)
	cfg.Email = smtp.config()
	cfg.APIs = nil // their grants name the clients replaced here
	cfg.Clients = []config.Client{appA.client()}
	return smtp, ssoLn, issuer, appA, cfg
}

// TestBrowserResetsAForgottenPasswordByEmail, in headless Chromium with Debian's aiosmtpd
// as the mail server: a signed-up user follows "Forgot password?" on App A's login page,
// gives their address, opens the link from the message the SMTP server received, sets a
// new password and signs in to App A with it.
func TestBrowserResetsAForgottenPasswordByEmail(t *testing.T) {
	smtp, ssoLn, issuer, appA, cfg := emailWorld(t)
	store := openTestStorage(t)
	// A user who signed up earlier (a fresh name: a shared PostgreSQL database keeps users).
	dora := fmt.Sprintf("dora-%d", rand.Int64())
	address := dora + "@example.com"
	if err := store.CreateUser(t.Context(), storage.User{Connection: "people", Username: dora, PasswordHash: argon2idHash("the forgotten password"),
		Claims: storage.Claims{Subject: "people|" + dora, Username: dora, Email: address}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	serveConfigWithStorage(t, ssoLn, cfg, store)
	appA.connect(t, issuer)
	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost}})
	shots := newScreenshots(t, b)

	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	shots.take("1 login page")
	b.Run("follow Forgot password?", chromedp.Click(chromedp.CSS(`a[href*="/login/forgot-password?"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	shots.take("2 forgot password")
	b.Run("ask for a link",
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), address),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`p[role="status"], #form-error`)),
	)
	if got := b.Text(`p[role="status"]`); !strings.Contains(got, "If an account with this address exists") {
		t.Fatalf("after asking for a link: %q", b.Text("main"))
	}
	shots.take("3 link sent")

	link := smtp.waitForLink(t, address, "/reset-password", 1)
	b.Run("open the link from the message", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`input[name="new-password"], #error`)))
	shots.take("4 choose a new password")
	b.Run("set the new password",
		chromedp.SendKeys(chromedp.CSS(`input[name="new-password"]`), "the remembered password"),
		chromedp.SendKeys(chromedp.CSS(`input[name="confirm-password"]`), "the remembered password"),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="new-password"]`)),
	)
	if got := b.Text("h1"); got != "Your password was changed" {
		t.Fatalf("after setting the new password: %q", b.Text("main"))
	}
	shots.take("5 password changed")

	b.Run("open App A again", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in with the new password",
		typePassword(dora, "the remembered password"),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")),
	)
	if got := b.Text("#sub"); got != "people|"+dora {
		t.Fatalf("App A after signing in with the new password shows sub %q (%s)", got, b.Text("main"))
	}
	shots.take("6 App A signed in")

	b.Run("open the link again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`input[name="new-password"], main`)))
	if b.Count(`input[name="new-password"]`) > 0 || !strings.Contains(b.Text("main"), "This link is not valid") {
		t.Fatalf("the spent link shows %q", b.Text("main"))
	}
	shots.take("7 spent link")
}

// TestBrowserSignsUpAndConfirmsTheAddressByEmail, in headless Chromium with Debian's
// aiosmtpd as the mail server: a new user follows "Create an account" on App A's login
// page and reaches App A with email_verified false; they open the link from the message the
// SMTP server received, are told the address is confirmed, and App A's next sign-in has
// email_verified true.
func TestBrowserSignsUpAndConfirmsTheAddressByEmail(t *testing.T) {
	smtp, ssoLn, issuer, appA, cfg := emailWorld(t)
	serveConfigOn(t, ssoLn, cfg)
	appA.connect(t, issuer)
	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost, appAHost}})
	shots := newScreenshots(t, b)
	// A fresh name on every run: a shared PostgreSQL database keeps users.
	erin := fmt.Sprintf("erin-%d", rand.Int64())
	address := erin + "@example.com"

	b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("follow Create an account", chromedp.Click(chromedp.CSS(`a[href*="/signup?"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	shots.take("1 create an account")
	b.Run("create the account",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), erin),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), address),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "erin's first password"),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")))
	if sub, verified := b.Text("#sub"), b.Text("#email_verified"); sub != "people|"+erin || verified != "false" {
		t.Fatalf("App A after sign-up shows sub %q email_verified %q, want people|%s not verified yet (%s)", sub, verified, erin, b.Text("main"))
	}
	shots.take("2 App A signed in with the address not confirmed")

	link := smtp.waitForLink(t, address, "/verify-email", 1)
	b.Run("open the link from the message", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`h1`)))
	if h := b.Text("h1"); h != "Your email address is confirmed" {
		t.Fatalf("the verification link shows %q", b.Text("main"))
	}
	shots.take("3 address confirmed")

	b.Run("log out of App A", chromedp.Navigate(appA.url+"/logout"), chromedp.WaitVisible(chromedp.CSS("#signed-out")))
	b.Run("open App A again", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in again",
		typePassword(erin, "erin's first password"),
		chromedp.WaitVisible(chromedp.CSS("#signed-in, #error, #form-error")))
	if got := b.Text("#email_verified"); got != "true" {
		t.Fatalf("App A's next sign-in has email_verified %q, want true (%s)", got, b.Text("main"))
	}
	shots.take("4 App A signed in with the address confirmed")
}
