package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// phoneUserAgent is the second browser profile's User-Agent: the account page tells the
// sessions apart by the device it names ("Chrome on Android" beside headless Chromium's
// "Chrome on Linux").
const phoneUserAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"

// TestBrowserEndsOneSessionThenAllFromTheAccountPageAndTellsBothApps, in two headless
// Chromium profiles (a laptop and a phone): alice signs in to App A and App B from both,
// so she has two sessions, each in both applications. The laptop's account page lists
// both, each sign-out button naming (for a screen reader) the device and last activity of
// the session it ends, and Tab reaches the page's controls in the order they are on it.
// Ending the phone's session sends App A and App B each a back-channel logout token with
// the phone's sid, and the phone must sign in again; "Sign out everywhere" then sends each
// a token with the laptop's sid, and nothing more.
func TestBrowserEndsOneSessionThenAllFromTheAccountPageAndTellsBothApps(t *testing.T) {
	ssoLn := listenLoopback(t)
	issuer := "http://" + hostPort(ssoHost, ssoLn)
	apps := []*relyingApp{newRelyingApp(t, "app-a", "App A", appAHost), newRelyingApp(t, "app-b", "App B", appBHost)}
	receivers := map[string]*logoutReceiver{}
	cfg := testConfig(t, issuer)
	cfg.Clients, cfg.APIs = nil, nil
	for _, a := range apps {
		receivers[a.clientID] = newLogoutReceiver(t, nil)
		c := a.client()
		c.BackchannelLogoutURI = receivers[a.clientID].url
		cfg.Clients = append(cfg.Clients, c)
	}
	srv := serveConfigOn(t, ssoLn, cfg)
	for _, a := range apps {
		a.connect(t, issuer)
	}
	appA, appB := apps[0], apps[1]
	hosts := []string{ssoHost, appAHost, appBHost}
	laptop := chromium.Start(t, chromium.Options{Hosts: hosts})
	phone := chromium.Start(t, chromium.Options{Hosts: hosts, Flags: map[string]any{"user-agent": phoneUserAgent}})
	shots := newScreenshots(t, laptop)

	// signInToBoth signs b in to App A with the password, then to App B by single sign-on,
	// and returns the session's sid.
	signInToBoth := func(b *chromium.Browser) string {
		t.Helper()
		b.Run("open App A", chromedp.Navigate(appA.url+"/login"))
		assertLoginPage(t, b, issuer, "App A")
		signInAsAlice(b)
		sid := assertSignedIn(t, b, appA).sid
		b.Run("open App B", chromedp.Navigate(appB.url+"/login"))
		if got := assertSignedIn(t, b, appB).sid; got != sid {
			t.Fatalf("App B is in session %q, want App A's %q", got, sid)
		}
		return sid
	}
	laptopSID, phoneSID := signInToBoth(laptop), signInToBoth(phone)
	if laptopSID == phoneSID {
		t.Fatalf("the laptop and the phone share session %q, want one each", laptopSID)
	}

	laptop.Run("open the account page", chromedp.Navigate(issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`#sessions-heading`)))
	if n := laptop.Count(`section[aria-labelledby="sessions-heading"] li`); n != 2 {
		t.Fatalf("the account page lists %d sessions, want the laptop's and the phone's:\n%s", n, laptop.Text("main"))
	}
	shots.take("1 account page with two sessions")
	assertTabOrderFollowsTheDocument(t, laptop)
	lastActive := `last active \d{4}-\d\d-\d\d \d\d:\d\d UTC`
	assertSignOutButtonNames(t, laptop,
		regexp.MustCompile(`^Sign out of this session: Chrome on Linux \(this browser\), `+lastActive+`$`),
		regexp.MustCompile(`^Sign out of this session: Chrome on Android, `+lastActive+`$`))

	laptop.Run("sign the phone out", chromedp.Click(chromedp.CSS(`input[name="sid"][value="`+phoneSID+`"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="sid"][value="`+phoneSID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sessions-heading`)))
	if main := laptop.Text("main"); strings.Contains(main, "Android") || !strings.Contains(main, "(this browser)") {
		t.Fatalf("after signing the phone out the account page shows:\n%s", main)
	}
	shots.take("2 account page after signing the phone out")
	for _, a := range apps {
		assertLogoutTokenFor(t, a, receivers[a.clientID], phoneSID)
	}
	phone.Run("open App A on the phone", chromedp.Navigate(appA.url+"/login"))
	assertLoginPage(t, phone, issuer, "App A")
	shots.of(phone).take("3 the phone asked to sign in again")

	laptop.Run("sign out everywhere", chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions-heading`)))
	if !strings.Contains(laptop.Text("main"), "You are signed out") {
		t.Fatalf("after signing out everywhere: %q", laptop.Text("main"))
	}
	shots.take("4 signed out everywhere")
	for _, a := range apps {
		assertLogoutTokenFor(t, a, receivers[a.clientID], laptopSID)
	}
	laptop.Run("open App B on the laptop", chromedp.Navigate(appB.url+"/login"))
	assertLoginPage(t, laptop, issuer, "App B")

	// Once every delivery has an outcome, each application has had the two tokens only.
	ctx, cancel := context.WithTimeout(context.Background(), waitForDelivery)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("deliveries still pending: %v", err)
	}
	for _, a := range apps {
		if n := receivers[a.clientID].count.Load(); n != 2 {
			t.Errorf("%s received %d logout tokens, want 2 (one per ended session)", a.name, n)
		}
	}
}

// assertLogoutTokenFor waits for the next logout token rec received and checks it as app
// would: signed by the issuer, for app, of alice's session sid, a back-channel logout event.
func assertLogoutTokenFor(t *testing.T, app *relyingApp, rec *logoutReceiver, sid string) {
	t.Helper()
	raw := rec.next(t).token
	// An ID token verifier checks what a logout token shares with one: the issuer's
	// signature, iss, aud and exp.
	tok, err := app.verifier.Verify(app.ctx, raw)
	if err != nil {
		t.Fatalf("%s: verify the logout token: %v", app.name, err)
	}
	var claims struct {
		SID    string                     `json:"sid"`
		Nonce  *string                    `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := tok.Claims(&claims); err != nil {
		t.Fatalf("%s: read the logout token's claims: %v", app.name, err)
	}
	if _, ok := claims.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || claims.Nonce != nil {
		t.Errorf("%s: logout token events %v nonce %v, want the back-channel logout event and no nonce", app.name, claims.Events, claims.Nonce)
	}
	if claims.SID != sid || tok.Subject != "people|alice" {
		t.Errorf("%s: logout token for sid %q sub %q, want the ended session %q of people|alice", app.name, claims.SID, tok.Subject, sid)
	}
}

// assertSignOutButtonNames checks the accessible names Chromium computes (what a screen
// reader says) for the account page's "Sign out of this session" buttons, in page order.
func assertSignOutButtonNames(t *testing.T, b *chromium.Browser, want ...*regexp.Regexp) {
	t.Helper()
	tree, err := chromium.Try(b, chromium.StepTimeout, chromedp.Action[accessibility.GetFullAXTreeResult](
		func(ctx context.Context, _ *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
			return chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		}))
	if err != nil {
		t.Fatalf("read the accessibility tree: %v", err)
	}
	var names []string
	for _, n := range tree.Nodes {
		if n.Ignored || n.Role == nil || n.Name == nil || axString(n.Role.Value) != "button" {
			continue
		}
		if name := axString(n.Name.Value); strings.HasPrefix(name, "Sign out of this session") {
			names = append(names, name)
		}
	}
	if len(names) != len(want) {
		t.Fatalf("the sign-out buttons are named %q, want %d of them", names, len(want))
	}
	for i, re := range want {
		if !re.MatchString(names[i]) {
			t.Errorf("sign-out button %d is named %q, want it to match %s", i+1, names[i], re)
		}
	}
}

// axString is an accessibility value that is a string, or "" when it is not one.
func axString(v []byte) string {
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// assertTabOrderFollowsTheDocument presses Tab from the top of a freshly loaded page and
// checks that focus visits every control a keyboard can reach (visible links, buttons and
// form fields) once, in the order they appear on the page.
func assertTabOrderFollowsTheDocument(t *testing.T, b *chromium.Browser) {
	t.Helper()
	controls, err := chromium.Try(b, chromium.StepTimeout, chromedp.Evaluate[[]string](`(function () {
		var all = document.querySelectorAll("a[href], button, input, select, textarea, [tabindex]");
		var reachable = Array.from(all).filter(function (e) {
			return e.tabIndex >= 0 && !e.disabled && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
		});
		return reachable.map(function (e, i) {
			e.dataset.tabStop = String(i);
			return e.tagName.toLowerCase() + " " + (e.textContent.trim() || e.name || e.id);
		});
	})()`))
	if err != nil {
		t.Fatalf("list the page's controls: %v", err)
	}
	if len(controls) == 0 {
		t.Fatal("the page has no control a keyboard reaches")
	}
	for i, control := range controls {
		b.Run("press Tab", chromedp.KeyEvent(kb.Tab))
		got, err := chromium.Try(b, chromium.StepTimeout, chromedp.Evaluate[string](
			`(document.activeElement && document.activeElement.dataset.tabStop) || ("not a control: " + (document.activeElement ? document.activeElement.outerHTML.slice(0, 80) : "none"))`))
		if err != nil {
			t.Fatalf("read the focused element: %v", err)
		}
		if got != strconv.Itoa(i) {
			t.Fatalf("Tab number %d focuses %s, want %q; the controls in page order: %s", i+1, describeTabStop(got, controls), control, strings.Join(controls, "; "))
		}
	}
}

// describeTabStop names the control a tab-stop index (or another element) stands for.
func describeTabStop(got string, controls []string) string {
	if i, err := strconv.Atoi(got); err == nil && i >= 0 && i < len(controls) {
		return fmt.Sprintf("%q (control %d)", controls[i], i+1)
	}
	return got
}
