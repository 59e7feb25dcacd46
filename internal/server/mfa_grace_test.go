package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

const notNow = `<button type="submit" class="secondary" aria-describedby="grace-help">Not now</button>`

// putOff answers an enrolment page with "Not now".
func (b *browser) putOff(p page) page {
	b.e.t.Helper()
	action, form := formFields(b.e.t, p)
	form.Set("later", "1")
	return b.post(action, form)
}

// requiredWithGrace is policy Required with a grace of two days, and app2 requiring MFA
// itself.
func requiredWithGrace(c *config.Config) {
	c.MFA.Policy = config.MFARequired
	c.MFA.EnrolmentGrace = config.Duration{Duration: 48 * time.Hour}
	for i := range c.Clients {
		c.Clients[i].RequireMFA = c.Clients[i].ID == "app2"
	}
}

func TestEnrolmentGraceUnderARequiredPolicy(t *testing.T) {
	e := newEnv(t, requiredWithGrace)
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")
	b := e.browser()

	// Within the grace: the enrolment page offers "Not now", which signs in with the
	// password only.
	l := newLogin()
	p := app1.passwordStep(t, b, l, "alice", alicePassword)
	if !strings.Contains(p.body, notNow) || !qrRe.MatchString(p.body) {
		t.Fatalf("first sign-in within the grace: expected the enrolment page with Not now (status %d):\n%s", p.status, p.body)
	}
	ends := e.clock.Now().Add(48 * time.Hour)
	assertGraceShown(t, p, ends, "in 2 days")
	_, idt := app1.exchange(t, l, app1.callback(t, l, b.putOff(p)))
	if c := claimsOf(t, idt); !equalSets(c.AMR, []string{"pwd"}) {
		t.Fatalf("after Not now: amr %v, want the password only", c.AMR)
	}
	assertMetric(t, e, `hallpass_second_factor_events_total{event="enrolment_deferred",factor="none"}`, 1)

	// The grace does not soften a client that requires MFA itself: no Not now there.
	lacking := b.get(app2.authURL(newLogin()))
	if strings.Contains(lacking.body, notNow) || !qrRe.MatchString(lacking.body) {
		t.Fatalf("app2 requires MFA: expected the enrolment page without Not now (status %d):\n%s", lacking.status, lacking.body)
	}
	if refused := b.putOff(lacking); refused.status != 403 || refused.location != nil {
		t.Fatalf("Not now posted for app2: status %d, want 403 and no redirect", refused.status)
	}

	// A day later the grace still runs from the first ask: silent login works for app1, and
	// a new sign-in is offered the same end.
	e.clock.Advance(24 * time.Hour)
	if _, _, errCode := app1.silent(t, b); errCode != "" {
		t.Fatalf("prompt=none at app1 within the grace: %s", errCode)
	}
	b2 := e.browser()
	l = newLogin()
	p = app1.passwordStep(t, b2, l, "alice", alicePassword)
	assertGraceShown(t, p, ends, "in 1 day")
	e.clock.Advance(23*time.Hour + 30*time.Minute)
	assertGraceShown(t, app1.passwordStep(t, e.browser(), newLogin(), "alice", alicePassword), ends, "in 30 minutes")

	// After the grace: the session of the skipped enrolment no longer answers silently, the
	// page offers no Not now, a Not now posted from the last page is refused, and the
	// enrolment completes the sign-in.
	e.clock.Advance(30*time.Minute + time.Second)
	if _, _, errCode := app1.silent(t, b); errCode != "interaction_required" {
		t.Fatalf("prompt=none at app1 after the grace: error %q, want interaction_required", errCode)
	}
	l = newLogin()
	p = b.get(app1.authURL(l))
	if strings.Contains(p.body, notNow) || strings.Contains(p.body, `name="password"`) {
		t.Fatalf("after the grace: expected the enrolment page without Not now or password (status %d):\n%s", p.status, p.body)
	}
	if refused := b.putOff(p); refused.status != 403 || !strings.Contains(refused.body, "Two-step verification is required now") {
		t.Fatalf("Not now after the grace: status %d, want 403 with an explanation:\n%s", refused.status, refused.body)
	}
	_, _, done := enrolTOTP(t, e, b, p)
	_, idt = app1.exchange(t, l, app1.callback(t, l, done))
	if c := claimsOf(t, idt); !equalSets(c.AMR, []string{"pwd", "otp", "mfa"}) {
		t.Fatalf("after the enrolment: amr %v, want pwd, otp and mfa", c.AMR)
	}
}

// assertGraceShown checks that an enrolment page says when the grace ends in a way no
// reader can misread: a <time> element with the UTC instant, its text in UTC saying so,
// and how far off it is.
func assertGraceShown(t *testing.T, p page, ends time.Time, relative string) {
	t.Helper()
	want := `You can put this off until <time datetime="` + ends.UTC().Format(time.RFC3339) + `">` +
		ends.UTC().Format("2 January 2006, 15:04") + ` UTC</time> (` + relative + `).`
	if !strings.Contains(p.body, want) {
		t.Fatalf("the enrolment page does not say %q:\n%s", want, p.body)
	}
}

func TestNoGraceMeansEnrolmentAtTheFirstSignIn(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MFA.Policy = config.MFARequired })
	app1 := e.rp("app1", "app1-secret")
	b := e.browser()
	p := app1.passwordStep(t, b, newLogin(), "alice", alicePassword)
	if strings.Contains(p.body, notNow) || !qrRe.MatchString(p.body) {
		t.Fatalf("expected the enrolment page without Not now (status %d):\n%s", p.status, p.body)
	}
	if refused := b.putOff(p); refused.status != 403 || refused.location != nil {
		t.Fatalf("Not now without a grace: status %d, want 403 and no redirect", refused.status)
	}
}
