package server_test

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestTheLoginPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	rp := e.rp("app1", "app1-secret")

	t.Run("the chooser lists only the client's connections", func(t *testing.T) {
		p := b.get(rp.authURL(newLogin()))
		if !strings.Contains(p.body, "Continue with Example account") || !strings.Contains(p.body, "Continue with staff") {
			t.Fatalf("chooser:\n%s", p.body)
		}
		p = b.get(e.rp("app2", "app2-secret").authURL(newLogin()))
		if strings.Contains(p.body, "staff") || !strings.Contains(p.body, `name="password"`) {
			t.Fatalf("app2 has one connection and should go straight to its password form:\n%s", p.body)
		}
	})
	t.Run("the connection parameter skips the chooser", func(t *testing.T) {
		p := b.get(rp.authURL(newLogin(), oauthConnection("staff")))
		if !strings.Contains(p.body, `name="password"`) || strings.Contains(p.body, "Continue with") {
			t.Fatalf("login page:\n%s", p.body)
		}
		if !strings.Contains(p.body, `<label for="username">`) || !strings.Contains(p.body, `<label for="password">`) {
			t.Error("form fields have no labels")
		}
	})
	t.Run("branding, no external assets, and strict headers", func(t *testing.T) {
		p := b.get(rp.authURL(newLogin(), oauthConnection("people")))
		if !strings.Contains(p.body, "Example Corp") {
			t.Error("branding title missing")
		}
		for _, bad := range []string{"<script", "https://cdn", "http://cdn", "style="} {
			if strings.Contains(p.body, bad) {
				t.Errorf("login page contains %q", bad)
			}
		}
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP = %q", csp)
		}
		if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("headers: XFO=%q Cache-Control=%q", p.header.Get("X-Frame-Options"), p.header.Get("Cache-Control"))
		}
		css := b.get(e.issuer + "/assets/login.css")
		if !strings.Contains(css.body, "--primary:#aa3300") {
			t.Errorf("stylesheet does not carry the branding colour")
		}
	})
	t.Run("login_hint fills in the username", func(t *testing.T) {
		p := b.get(rp.authURL(newLogin(), oauthConnection("people"), oauth2.SetAuthURLParam("login_hint", "alice")))
		if !strings.Contains(p.body, `value="alice"`) {
			t.Errorf("username not prefilled:\n%s", p.body)
		}
	})
}

func TestWrongCredentialsGiveOneErrorForUnknownUsersAndWrongPasswords(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	var bodies []string
	for _, creds := range [][2]string{{"alice", "wrong password"}, {"nobody", "wrong password"}} {
		b := e.browser()
		p := b.submitLogin(b.get(rp.authURL(newLogin())), creds[0], creds[1])
		if p.status != http.StatusUnauthorized || p.location != nil {
			t.Fatalf("%s: status %d location %v", creds[0], p.status, p.location)
		}
		i := strings.Index(p.body, `role="alert"`)
		bodies = append(bodies, p.body[i:i+80])
	}
	if bodies[0] != bodies[1] || !strings.Contains(bodies[0], "Wrong username or password") {
		t.Errorf("errors differ or are wrong:\n%s\n%s", bodies[0], bodies[1])
	}
}

func TestAFormPostWithoutTheCSRFTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	tests := []struct {
		name   string
		tamper func(b *browser, form map[string][]string)
	}{
		{"a missing csrf field", func(_ *browser, f map[string][]string) { delete(f, "csrf") }},
		{"a csrf field that is not the cookie's", func(_ *browser, f map[string][]string) { f["csrf"] = []string{strings.Repeat("A", 43)} }},
		{"a missing csrf cookie", func(b *browser, _ map[string][]string) { b.c.Jar = newJar() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			action, form := formFields(t, b.get(rp.authURL(newLogin())))
			form.Set("username", "alice")
			form.Set("password", alicePassword)
			tc.tamper(b, form)
			p := b.post(action, form)
			if p.status != http.StatusForbidden || p.location != nil {
				t.Fatalf("status %d location %v, want 403 and no redirect", p.status, p.location)
			}
			if sessionCookieValue(b) != "" {
				t.Error("a session was started")
			}
		})
	}
}

func TestATamperedLoginTransactionIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	action, form := formFields(t, b.get(e.rp("app2", "app2-secret").authURL(newLogin())))
	tx := []byte(form.Get("tx"))
	tx[len(tx)/2] ^= 1
	form.Set("tx", string(tx))
	form.Set("username", "alice")
	form.Set("password", alicePassword)
	if p := b.post(action, form); p.status != http.StatusBadRequest || p.location != nil {
		t.Fatalf("status %d location %v, want 400 and no redirect", p.status, p.location)
	}
}

func TestFailedLoginsAreThrottledWithGrowingDelays(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	attempt := func(b *browser, password string) page {
		return b.submitLogin(b.get(rp.authURL(newLogin())), "bob", password)
	}
	// Five failures from one address are free; the (user, address) key then throttles.
	b := e.browser()
	for range 5 {
		if p := attempt(b, "nope"); p.status != http.StatusUnauthorized {
			t.Fatalf("failure: status %d", p.status)
		}
	}
	p := attempt(b, bobPassword)
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Try again in 1 seconds") {
		t.Fatalf("after five failures: status %d\n%s", p.status, p.body)
	}
	e.clock.Advance(time.Second)
	if p := attempt(b, "still wrong"); p.status != http.StatusUnauthorized {
		t.Fatalf("after the delay: status %d", p.status)
	}
	p = attempt(b, bobPassword)
	if !strings.Contains(p.body, "Try again in 2 seconds") {
		t.Fatalf("the delay did not grow: status %d\n%s", p.status, p.body)
	}
	e.clock.Advance(2 * time.Second)
	if p := attempt(b, bobPassword); p.location == nil {
		t.Fatalf("the right password after the delay: status %d", p.status)
	}
	// Success resets the user's counter.
	if p := attempt(e.browser(), bobPassword); p.location == nil {
		t.Fatalf("after a success: status %d", p.status)
	}
}

func TestSignUpCreatesAUserWhoCanSignInAgain(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	l := newLogin()
	loginPage := b.get(rp.authURL(l))
	link := signupLinkRe.FindStringSubmatch(loginPage.body)
	if link == nil {
		t.Fatalf("no sign-up link:\n%s", loginPage.body)
	}
	// A fresh name on every run: a shared PostgreSQL database keeps users between runs.
	dora := "dora-" + rand.Text()[:8]
	signup := b.get(unescapeHTML(link[1]))
	action, form := formFields(t, signup)
	form.Set("username", dora)
	form.Set("email", "dora@example.com")
	form.Set("password", "short")
	if p := b.post(action, form); p.status != http.StatusBadRequest {
		t.Fatalf("a short password: status %d", p.status)
	}
	form.Set("password", "a long enough password")
	_, idt := rp.exchange(t, l, rp.callback(t, l, b.post(action, form)))
	if idt.Subject != "people|"+dora {
		t.Errorf("sub = %q", idt.Subject)
	}
	// Taken usernames are refused, imported ones included.
	for _, name := range []string{dora, "alice"} {
		b2 := e.browser()
		action, form := formFields(t, b2.get(unescapeHTML(signupLinkRe.FindStringSubmatch(b2.get(rp.authURL(newLogin())).body)[1])))
		form.Set("username", name)
		form.Set("password", "another long password")
		if p := b2.post(action, form); p.status != http.StatusConflict {
			t.Errorf("sign-up as %s: status %d, want 409", name, p.status)
		}
	}
	// And dora signs in with her password in a new browser.
	rp.signIn(t, e.browser(), dora, "a long enough password")
}
