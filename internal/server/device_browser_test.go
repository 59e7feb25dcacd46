package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestBrowserAnswersTwoDeviceSignInsTheSecondWithoutAPassword is the device grant with the
// user's real browser: headless Chromium types the code of a first device sign-in, signs in
// on the login page and allows it; a second device then only needs Allow, answered from the
// central session the first one started. The devices are the test's own x/oauth2 clients.
func TestBrowserAnswersTwoDeviceSignInsTheSecondWithoutAPassword(t *testing.T) {
	ln := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ln)
	cfg := testConfig(t, issuer)
	withDeviceClient(func(c *config.Client) { c.Connections = []string{"people"} })(cfg)
	serveConfigOn(t, ln, cfg)
	ctx := oidc.ClientContext(context.Background(), testNamesClient())
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	cli := oauth2.Config{ClientID: cliClient, Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "groups"}}
	verifier := provider.Verifier(&oidc.Config{ClientID: cliClient})
	// collect polls once: the user has answered, so the first poll gets the tokens.
	collect := func(auth *oauth2.DeviceAuthResponse) *oidc.IDToken {
		t.Helper()
		tok, err := cli.DeviceAccessToken(ctx, auth)
		if err != nil {
			t.Fatalf("collect the device's tokens: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify the device's ID token: %v", err)
		}
		return idt
	}

	b := chromium.Start(t, chromium.Options{Hosts: []string{ssoHost}})
	shots := newScreenshots(t, b)

	first, err := cli.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Run("open the device page", chromedp.Navigate(first.VerificationURI), chromedp.WaitVisible(chromedp.CSS(`#user_code`)))
	shots.take("1 enter the device code")
	b.Run("type the code",
		chromedp.SendKeys(chromedp.CSS(`#user_code`), strings.ToLower(first.UserCode)),
		chromedp.Click(chromedp.CSS(`#continue`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#user-code`)),
	)
	if got := b.Text("#user-code"); got != first.UserCode {
		t.Fatalf("the confirmation shows code %q, want %q", got, first.UserCode)
	}
	shots.take("2 confirm the device")
	b.Run("continue to sign in",
		chromedp.Click(chromedp.CSS(`#allow`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		typePassword("alice", alicePassword),
		// The login page has a heading too: wait for the page after it.
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`h1`)),
	)
	if h := b.Text("h1"); h != "Your device is signed in" {
		t.Fatalf("after the login the page says %q", h)
	}
	shots.take("3 device signed in")
	firstToken := collect(first)

	second, err := cli.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(second.VerificationURIComplete); u.Query().Get("user_code") != second.UserCode {
		t.Fatalf("verification_uri_complete %q does not carry the code", second.VerificationURIComplete)
	}
	b.Run("open the link with the second code", chromedp.Navigate(second.VerificationURIComplete), chromedp.WaitVisible(chromedp.CSS(`#allow`)))
	if allow := b.Text("#allow"); allow != "Allow" || b.Count(`input[name="password"]`) != 0 {
		t.Fatalf("the signed-in browser is asked %q (password fields: %d), want Allow alone", allow, b.Count(`input[name="password"]`))
	}
	shots.take("4 second device asked to allow only")
	b.Run("allow", chromedp.Click(chromedp.CSS(`#allow`), chromedp.NodeVisible), chromedp.WaitNotPresent(chromedp.CSS(`#allow`)))
	if h := b.Text("h1"); h != "Your device is signed in" {
		t.Fatalf("after allowing the page says %q", h)
	}
	secondToken := collect(second)

	var a, c struct {
		SID string `json:"sid"`
	}
	_ = firstToken.Claims(&a)
	_ = secondToken.Claims(&c)
	if secondToken.Subject != "people|alice" || c.SID == "" || c.SID != a.SID {
		t.Errorf("second device: sub %q sid %q, want alice in the first device's session %q", secondToken.Subject, c.SID, a.SID)
	}
}
