package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/hallpass/hallpass/internal/config"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestBrowserEnrolsAPasskeyAtSignInUnderARequiredPolicy, in headless Chromium with the
// DevTools WebAuthn virtual authenticator: under mfa.policy Required, alice (no factor yet)
// signs in with her password, and the enrolment page offers a passkey beside the
// authenticator app; she creates one, is shown her recovery codes, and reaches App A with
// the password and the hardware key in amr. Every page with the passkey script is served
// with a Content-Security-Policy that allows that one script and no other (no inline
// script), and the browser logs no error on the way, no CSP violation among them; an
// inline script injected into such a page is blocked, and that block is what a violation
// looks like in the log.
func TestBrowserEnrolsAPasskeyAtSignInUnderARequiredPolicy(t *testing.T) {
	issuer, app, b, _ := startPasskeyWorld(t, config.MFA{Policy: config.MFARequired,
		Factors: []string{config.FactorTOTP, config.FactorWebAuthn}})
	shots := newScreenshots(t, b)
	stopConsole := b.RecordConsoleErrors()
	stopPolicies := recordPolicies(t, b, issuer)

	b.Run("open App A", chromedp.Navigate(app.url+"/login"))
	assertLoginPage(t, b, issuer, "App A")
	b.Run("sign in as alice with her password",
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="get"]`)),
		typePassword("alice", alicePassword),
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="create"], #error, #form-error`)))
	if b.Count("img.qr") != 1 || !strings.Contains(b.Text("main"), "Or create a passkey") {
		t.Fatalf("the enrolment page does not offer both an authenticator app and a passkey:\n%s", b.Text("main"))
	}
	assertOnlyThePasskeyScript(t, b, issuer)
	shots.take("1 enrolment with a passkey or an authenticator app")

	b.Run("create a passkey", chromedp.Click(chromedp.CSS(`button[data-passkey="create"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes, #form-error, #error, #passkey-status:not(:empty)`)))
	if n := b.Count("ul.codes li"); n != 10 {
		t.Fatalf("after creating the passkey: %d recovery codes shown, want 10; the page shows:\n%s", n, b.Text("main"))
	}
	shots.take("2 recovery codes after the passkey")
	b.Run("continue to App A", chromedp.Click(chromedp.CSS(`ul.codes ~ button[type="submit"]`), chromedp.NodeVisible))
	assertSignedInWith(t, b, app, "pwd hwk mfa")
	shots.take("3 App A signed in with the password and the new passkey")

	// Browsers ask every site for /favicon.ico, which Hallpass and the test app do not have.
	errs := slices.DeleteFunc(stopConsole(), func(e string) bool { return strings.HasSuffix(e, "/favicon.ico)") })
	if len(errs) > 0 {
		t.Errorf("the browser logged errors during the sign-in: %q", errs)
	}
	assertPasskeyPolicies(t, stopPolicies(), issuer)

	// The control: an inline script on a page with the passkey script is refused, and the
	// refusal is logged as the violations looked for above would have been.
	stopConsole = b.RecordConsoleErrors()
	b.Run("open the account page", chromedp.Navigate(issuer+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="create"]`)))
	ran, err := chromium.Try(b, chromium.StepTimeout, chromedp.Evaluate[bool](`(function () {
		var s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.appendChild(s);
		return window.inlineRan === true;
	})()`))
	if err != nil || ran {
		t.Fatalf("an injected inline script ran = %v (err %v), want it blocked by the page's CSP", ran, err)
	}
	if errs := stopConsole(); !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "Content Security Policy") }) {
		t.Errorf("the blocked inline script logged %q, want a Content Security Policy violation", errs)
	}
}

// assertOnlyThePasskeyScript checks that the page's only script is /assets/passkey.js.
func assertOnlyThePasskeyScript(t *testing.T, b *chromium.Browser, issuer string) {
	t.Helper()
	scripts, err := chromium.Try(b, chromium.StepTimeout, chromedp.Evaluate[[]string](
		`Array.from(document.scripts, function (s) { return s.src || "inline: " + s.textContent; })`))
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || scripts[0] != issuer+"/assets/passkey.js" {
		t.Fatalf("the page's scripts are %q, want only %s/assets/passkey.js", scripts, issuer)
	}
}

// servedPolicy is the Content-Security-Policy of one document of the issuer.
type servedPolicy struct{ url, policy string }

// recordPolicies records the Content-Security-Policy header of every document the browser
// loads from the issuer.
func recordPolicies(t *testing.T, b *chromium.Browser, issuer string) func() []servedPolicy {
	t.Helper()
	return chromium.Record(b, "responses", func(ev any) (servedPolicy, bool) {
		e, ok := ev.(*network.EventResponseReceived)
		if !ok || e.Type != network.ResourceTypeDocument || !strings.HasPrefix(e.Response.URL, issuer+"/") {
			return servedPolicy{}, false
		}
		policy, _ := e.Response.Headers["Content-Security-Policy"].(string)
		return servedPolicy{url: e.Response.URL, policy: policy}, true
	})
}

// assertPasskeyPolicies checks that every page of the issuer has a policy, that scripts are
// either refused altogether (default-src 'none' without script-src) or limited to exactly
// the passkey script, and that some pages (the login and enrolment pages) allowed it.
func assertPasskeyPolicies(t *testing.T, policies []servedPolicy, issuer string) {
	t.Helper()
	withScript := 0
	for _, p := range policies {
		directives := map[string]string{}
		for d := range strings.SplitSeq(p.policy, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		if directives["default-src"] != "'none'" {
			t.Errorf("%s: policy %q, want default-src 'none'", p.url, p.policy)
		}
		script, ok := directives["script-src"]
		if !ok {
			continue
		}
		withScript++
		if script != issuer+"/assets/passkey.js" {
			t.Errorf("%s: script-src %q, want exactly %s/assets/passkey.js", p.url, script, issuer)
		}
	}
	if withScript < 2 {
		t.Errorf("%d pages allowed the passkey script, want the login and the enrolment page at least: %v", withScript, policies)
	}
}
