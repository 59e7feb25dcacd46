package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	testbrowser "github.com/hallpass/hallpass/internal/testutil/browser"
)

// Bounds of every browser wait.
const (
	stepTimeout        = 30 * time.Second
	propagationTimeout = 20 * time.Second
)

// browser is one headless Chromium with a fresh profile, with the scenario's own steps.
type browser struct {
	*testbrowser.Browser
	t *testing.T
}

var shotCounter atomic.Int32

// newBrowser starts Chromium. Every name the pages use resolves to loopback and any other
// name fails to resolve, so a test can never reach the network (evil.example included).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	// Pages on http://app1.test are not secure contexts, so they would lack crypto.subtle,
	// which oidc-client-ts needs for PKCE. In production the apps are https; in the demo
	// they are on localhost, which browsers trust. Here the test names the app origins as
	// trustworthy, the way a developer would for a local host name.
	trusted := strings.Join([]string{app1URL(), app2URL(), app3URL()}, ",")
	b := &browser{t: t}
	b.Browser = testbrowser.Start(t, testbrowser.Options{
		Hosts:     []string{app1Host, app2Host, app3Host},
		Flags:     map[string]any{"unsafely-treat-insecure-origin-as-secure": trusted},
		OnFailure: func(what string) { b.shot("failed-" + what) },
	})
	return b
}

// try runs an action with a bound and returns its value, or the error instead of failing
// the test.
func try[T any](b *browser, timeout time.Duration, action chromedp.Action[T]) (T, error) {
	return testbrowser.Try(b.Browser, timeout, action)
}

func (b *browser) open(u string) {
	b.t.Helper()
	b.Run("open "+u, chromedp.Navigate(u))
}

// waitText waits until the element sel shows text containing want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	var s string
	for time.Now().Before(deadline) {
		var err error
		if s, err = try(b, 2*time.Second, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)); err == nil && strings.Contains(s, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.shot("failed-wait-" + strings.Trim(sel, "#."))
	b.t.Fatalf("%s shows %q, want it to contain %q (at %s)", sel, s, want, b.Location())
}

// waitLocation waits until the page's URL, without query, is want.
func (b *browser) waitLocation(want string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	var loc string
	for time.Now().Before(deadline) {
		loc = b.Location()
		if stripQuery(loc) == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.shot("failed-location")
	b.t.Fatalf("the browser is at %s, want %s", loc, want)
}

func stripQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// onLoginPage reports whether the browser shows the SSO server's password form.
func (b *browser) onLoginPage() bool {
	n, err := try(b, 5*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('input[name="password"]').length`))
	return err == nil && n > 0 && strings.HasPrefix(b.Location(), issuer()+"/")
}

// shot saves a screenshot of the page as test/e2e/artifacts/NN-name.png.
func (b *browser) shot(name string) {
	png, err := try(b, 10*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := "artifacts"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", shotCounter.Add(1), name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// forgetApp deletes the browser's cookies of one app: its application session ends while
// the central session on the server stays, as when the app's own session expires.
func (b *browser) forgetApp(appURL string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), stepTimeout)
	defer cancel()
	for _, name := range []string{"ssoapp_session", "ssoapp_session_login"} {
		if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: appURL + "/"}); err != nil {
			b.t.Fatalf("delete cookie %s of %s: %v", name, appURL, err)
		}
	}
}

// signInOnServer fills the server's password form with the demo user.
func (b *browser) signInOnServer() {
	b.t.Helper()
	b.Run("sign in on the SSO server",
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "demo"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
	)
	b.shot("server-login-filled")
	b.Run("submit the login form", click(`form[method="post"] button[type="submit"]`))
}

func ssoLink(base, target string) string {
	return base + "/auth/sso?" + url.Values{"connection": {"username-password"}, "target_url": {target}}.Encode()
}

func click(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)
}
