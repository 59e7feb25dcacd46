package server_test

import (
	"crypto/rand"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var (
	accountCSRFRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	sessionSIDRe  = regexp.MustCompile(`name="sid" value="([^"]+)"`)
	factorIDRe    = regexp.MustCompile(`name="factor" value="([^"]+)"`)
	txRe          = regexp.MustCompile(`name="tx" value="([^"]+)"`)
)

// postAccountForm submits one of the account page's forms, as its button would.
func (b *browser) postAccountForm(p page, action, value string) page {
	b.e.t.Helper()
	m := accountCSRFRe.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("not the account page (status %d):\n%s", p.status, p.body)
	}
	form := url.Values{"csrf": {unescapeHTML(m[1])}, "action": {action}}
	switch action {
	case "end-session":
		form.Set("sid", value)
	case "remove-factor":
		form.Set("factor", value)
	}
	return b.post(b.e.issuer+"/account", form)
}

func TestAccountPage(t *testing.T) {
	app1Logouts, app2Logouts := newLogoutReceiver(t, nil), newLogoutReceiver(t, nil)
	e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": app1Logouts.url, "app2": app2Logouts.url}))
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")

	// The account page signs in like an application when the browser has no session.
	laptop := e.browser()
	p := laptop.get(e.issuer + "/account")
	tx := txRe.FindStringSubmatch(p.body)
	if tx == nil || !strings.Contains(p.body, "Choose how to sign in") {
		t.Fatalf("the account page without a session: status %d, want the login page", p.status)
	}
	p = laptop.get(e.issuer + "/login?" + url.Values{"tx": {unescapeHTML(tx[1])}, "connection": {"people"}}.Encode())
	p = laptop.submitLogin(p, "alice", alicePassword)
	if !strings.Contains(p.body, "Alice Liddell") || !strings.Contains(p.body, "alice@example.com") {
		t.Fatalf("the account page after signing in does not show the profile (status %d):\n%s", p.status, p.body)
	}
	// The same session then signs in to both applications.
	if _, _, errCode := app1.silent(t, laptop, oauthConnection("people")); errCode != "" {
		t.Fatalf("app1 after the account page: %s", errCode)
	}
	if _, _, errCode := app2.silent(t, laptop); errCode != "" {
		t.Fatalf("app2 after the account page: %s", errCode)
	}
	phone := e.browser()
	_, phoneID := app1.signIn(t, phone, "alice", alicePassword, oauthConnection("people"))

	p = laptop.get(e.issuer + "/account")
	if sids := sessionSIDRe.FindAllStringSubmatch(p.body, -1); len(sids) != 2 {
		t.Fatalf("the account page lists %d sessions, want the laptop's and the phone's", len(sids))
	}
	if !strings.Contains(p.body, "(this browser)") || !strings.Contains(p.body, "App One, App Two") {
		t.Fatalf("the sessions do not show this browser and the applications in it:\n%s", p.body)
	}

	t.Run("a form without the page's token is refused", func(t *testing.T) {
		if got := laptop.post(e.issuer+"/account", url.Values{"action": {"end-all-sessions"}}); got.status != 403 {
			t.Fatalf("status %d, want 403", got.status)
		}
		// Another session's page token does not work in this one.
		other := phone.get(e.issuer + "/account")
		csrf := unescapeHTML(accountCSRFRe.FindStringSubmatch(other.body)[1])
		if got := laptop.post(e.issuer+"/account", url.Values{"csrf": {csrf}, "action": {"end-all-sessions"}}); got.status != 403 {
			t.Fatalf("another session's token: status %d, want 403", got.status)
		}
	})

	t.Run("signing the phone out from the laptop ends only the phone's session", func(t *testing.T) {
		lt := verifyLogoutToken(t, e, func() string {
			laptop.postAccountForm(p, "end-session", sidOf(t, phoneID))
			return app1Logouts.next(t).token
		}())
		if lt.claims["sid"] != sidOf(t, phoneID) {
			t.Fatalf("app1's logout token names sid %v, want the phone's", lt.claims["sid"])
		}
		if _, _, errCode := app1.silent(t, phone, oauthConnection("people")); errCode != "login_required" {
			t.Fatalf("the phone after being signed out: %q, want login_required", errCode)
		}
		if _, _, errCode := app1.silent(t, laptop, oauthConnection("people")); errCode != "" {
			t.Fatalf("the laptop after signing the phone out: %s", errCode)
		}
	})

	t.Run("an authenticator added on the account page is listed and can be removed", func(t *testing.T) {
		enrol := laptop.postAccountForm(laptop.get(e.issuer+"/account"), "add-authenticator", "")
		secret, codes, done := enrolTOTP(t, e, laptop, enrol)
		if done.status != 200 || !strings.Contains(done.body, "Authenticator app") || !strings.Contains(done.body, "10 unused recovery codes") {
			t.Fatalf("the account page after adding an authenticator (status %d):\n%s", done.status, done.body)
		}
		regenerated := laptop.postAccountForm(done, "new-recovery-codes", "")
		if n := len(recoveryCodeRe.FindAllString(regenerated.body, -1)); n != 10 {
			t.Fatalf("new recovery codes: %d shown, want 10", n)
		}
		id := factorIDRe.FindStringSubmatch(regenerated.body)[1]
		after := laptop.postAccountForm(regenerated, "remove-factor", id)
		if after.status != 200 || strings.Contains(after.body, `name="factor"`) {
			t.Fatalf("the account page still lists the removed factor (status %d)", after.status)
		}
		assertMetric(t, e, `hallpass_second_factor_events_total{event="removed",factor="totp"}`, 1)
		alice := map[string]string{"factor": "totp", "connection": "people", "subject": "people|alice"}
		assertAudited(t, e, "enrolled", alice, 1)
		assertAudited(t, e, "removed", with(alice, "msg", "second factor removed"), 1)
		assertAudited(t, e, "recovery_codes_generated", with(alice, "factor", "recovery"), 2)
		assertLogKeeps(t, e, append([]string{secret}, recoveryCodeForms(codes)...)...)
	})

	t.Run("signing out everywhere ends every session and tells both applications", func(t *testing.T) {
		laptopSID := sessionSIDRe.FindStringSubmatch(laptop.get(e.issuer + "/account").body)[1]
		got := laptop.postAccountForm(laptop.get(e.issuer+"/account"), "end-all-sessions", "")
		if !strings.Contains(got.body, "You are signed out") {
			t.Fatalf("after signing out everywhere (status %d):\n%s", got.status, got.body)
		}
		for name, rec := range map[string]*logoutReceiver{"app1": app1Logouts, "app2": app2Logouts} {
			lt := verifyLogoutToken(t, e, rec.next(t).token)
			if lt.claims["sid"] != laptopSID || lt.claims["aud"] != name {
				t.Errorf("%s's logout token: sid %v aud %v, want the laptop's session", name, lt.claims["sid"], lt.claims["aud"])
			}
		}
		if _, _, errCode := app2.silent(t, laptop); errCode != "login_required" {
			t.Fatalf("app2 after signing out everywhere: %q, want login_required", errCode)
		}
	})
}

func TestTheAccountPageAsksForTheSecondFactorOfAUserWhoHasOne(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	secret, _, _ := enrolTOTP(t, e, b, rp.passwordStep(t, b, newLogin(), "alice", alicePassword,
		oauth2.SetAuthURLParam("acr_values", "urn:hallpass:acr:mfa")))

	// Under policy Off, app2 signs her in with the password alone; the account page then
	// asks for the code before it shows anything.
	fresh := e.browser()
	rp.signIn(t, fresh, "alice", alicePassword)
	p := fresh.get(e.issuer + "/account")
	if !strings.Contains(p.body, `autocomplete="one-time-code"`) || strings.Contains(p.body, "Where you are signed in") {
		t.Fatalf("the account page of a user with a second factor was shown without it (status %d)", p.status)
	}
	e.clock.Advance(30 * time.Second)
	p = fresh.submitCode(p, currentCode(t, e, secret))
	if !strings.Contains(p.body, "Where you are signed in") {
		t.Fatalf("the account page after the code (status %d):\n%s", p.status, p.body)
	}
}

func TestASignedUpUserChangesTheirPasswordOnTheAccountPage(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	// A fresh name on every run: a shared PostgreSQL database keeps users between runs.
	dora := "dora-" + rand.Text()[:8]
	l := newLogin()
	action, form := formFields(t, b.get(unescapeHTML(signupLinkRe.FindStringSubmatch(b.get(rp.authURL(l)).body)[1])))
	form.Set("username", dora)
	form.Set("password", "a long enough password")
	rp.callback(t, l, b.post(action, form))

	change := func(current, next, confirm string) page {
		p := b.get(e.issuer + "/account")
		csrf := unescapeHTML(accountCSRFRe.FindStringSubmatch(p.body)[1])
		return b.post(e.issuer+"/account", url.Values{"csrf": {csrf}, "action": {"change-password"},
			"current-password": {current}, "new-password": {next}, "confirm-password": {confirm}})
	}
	for _, tc := range []struct {
		name, current, next, confirm string
		status                       int
		message                      string
	}{
		{"a wrong current password is refused", "not my password", "a new long password", "a new long password", 401, "Your current password is not right."},
		{"a short new password is refused", "a long enough password", "short", "short", 400, "Choose a new password of at least 8 characters."},
		{"a confirmation that differs is refused", "a long enough password", "a new long password", "a new long passwore", 400, "The new password and its confirmation differ."},
		{"the right current password changes it", "a long enough password", "a new long password", "a new long password", 200, "Your password was changed."},
	} {
		p := change(tc.current, tc.next, tc.confirm)
		if p.status != tc.status || !strings.Contains(p.body, tc.message) {
			t.Fatalf("%s: status %d, want %d with %q", tc.name, p.status, tc.status, tc.message)
		}
	}
	// The old password no longer signs in; the new one does.
	if p := rp.passwordStep(t, e.browser(), newLogin(), dora, "a long enough password"); p.status != 401 {
		t.Fatalf("the old password: status %d, want 401", p.status)
	}
	rp.signIn(t, e.browser(), dora, "a new long password")

	// A user imported from the connection's users Secret has no password form.
	alice := e.browser()
	rp.signIn(t, alice, "alice", alicePassword)
	if p := alice.get(e.issuer + "/account"); strings.Contains(p.body, "change-password") {
		t.Fatal("the account page offers a password change to a user of the administrator's users Secret")
	}
}
