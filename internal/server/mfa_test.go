package server_test

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
)

var (
	manualKeyRe    = regexp.MustCompile(`<code class="key" id="manual-key">([A-Z2-7 ]+)</code>`)
	qrRe           = regexp.MustCompile(`<img class="qr" src="data:image/png;base64,[A-Za-z0-9+/=&#;]{100,}"`)
	recoveryCodeRe = regexp.MustCompile(`<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>`)
)

// authClaims are the claims a relying party reads to know how the user signed in.
type authClaims struct {
	AMR []string `json:"amr"`
	ACR string   `json:"acr"`
	SID string   `json:"sid"`
}

func claimsOf(t *testing.T, idt *oidc.IDToken) authClaims {
	t.Helper()
	var c authClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// submitCode posts code on a second-factor page.
func (b *browser) submitCode(p page, code string) page {
	b.e.t.Helper()
	action, form := formFields(b.e.t, p)
	form.Set("code", code)
	return b.post(action, form)
}

// enrolTOTP completes the enrolment page p with a code computed from the key it shows,
// as an authenticator app would, and returns the TOTP secret, the recovery codes and the
// page after them.
func enrolTOTP(t *testing.T, e *env, b *browser, p page) (string, []string, page) {
	t.Helper()
	m := manualKeyRe.FindStringSubmatch(p.body)
	if m == nil || !qrRe.MatchString(p.body) {
		t.Fatalf("expected the enrolment page with a QR code and a manual key (status %d):\n%s", p.status, p.body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	wrong := b.submitCode(p, "000000")
	if wrong.status != 401 || !strings.Contains(wrong.body, "That code is not right") {
		t.Fatalf("a wrong enrolment code: status %d, want 401 with an error", wrong.status)
	}
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	codesPage := b.submitCode(wrong, code)
	var codes []string
	for _, c := range recoveryCodeRe.FindAllStringSubmatch(codesPage.body, -1) {
		codes = append(codes, c[1])
	}
	if len(codes) != 10 {
		t.Fatalf("expected 10 recovery codes after enrolment, got %d (status %d):\n%s", len(codes), codesPage.status, codesPage.body)
	}
	action, form := formFields(t, codesPage)
	return secret, codes, b.post(action, form)
}

func currentCode(t *testing.T, e *env, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// passwordStep signs in with a password and returns the page that follows.
func (rp *relyingParty) passwordStep(t *testing.T, b *browser, l login, username, password string, params ...oauth2.AuthCodeOption) page {
	t.Helper()
	p := b.get(rp.authURL(l, append([]oauth2.AuthCodeOption{oauthConnection("people")}, params...)...))
	if p.location != nil {
		t.Fatalf("expected the login page, was redirected to %s", p.location)
	}
	return b.submitLogin(p, username, password)
}

func TestTOTPUnderARequiredPolicy(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MFA.Policy = config.MFARequired })
	rp := e.rp("app1", "app1-secret")

	// First sign-in: the password, then the enrolment, then the application.
	b := e.browser()
	l := newLogin()
	secret, codes, done := enrolTOTP(t, e, b, rp.passwordStep(t, b, l, "alice", alicePassword))
	_, idt := rp.exchange(t, l, rp.callback(t, l, done))
	c := claimsOf(t, idt)
	if !equalSets(c.AMR, []string{"pwd", "otp", "mfa"}) || c.ACR != "urn:hallpass:acr:mfa" {
		t.Fatalf("ID token after enrolment: amr %v acr %q, want pwd, otp and mfa with the mfa acr", c.AMR, c.ACR)
	}
	assertMetric(t, e, `hallpass_second_factor_events_total{event="enrolled",factor="totp"}`, 1)
	// The enrolment's wrong first code (enrolTOTP's "000000") and the enrolment are audited
	// in the log, naming the user.
	alice := map[string]string{"factor": "totp", "connection": "people", "subject": "people|alice", "level": "INFO"}
	assertMetric(t, e, `hallpass_second_factor_events_total{event="failed",factor="totp"}`, 1)
	assertAudited(t, e, "failed", with(alice, "msg", "second factor failed"), 1)
	assertAudited(t, e, "enrolled", with(alice, "msg", "second factor enrolled"), 1)

	t.Run("the code of the enrolment cannot sign in again", func(t *testing.T) {
		b := e.browser()
		l := newLogin()
		p := rp.passwordStep(t, b, l, "alice", alicePassword)
		refused := b.submitCode(p, currentCode(t, e, secret))
		if refused.status != 401 || refused.location != nil {
			t.Fatalf("a replayed code: status %d, want 401 and no redirect", refused.status)
		}
		assertMetric(t, e, `hallpass_second_factor_events_total{event="replay_refused",factor="totp"}`, 1)
		e.clock.Advance(30 * time.Second)
		_, idt := rp.exchange(t, l, rp.callback(t, l, b.submitCode(refused, currentCode(t, e, secret))))
		if c := claimsOf(t, idt); !equalSets(c.AMR, []string{"pwd", "otp", "mfa"}) {
			t.Fatalf("amr = %v after a fresh code", c.AMR)
		}
	})

	t.Run("a recovery code signs in once", func(t *testing.T) {
		b := e.browser()
		l := newLogin()
		p := rp.passwordStep(t, b, l, "alice", alicePassword)
		rp.exchange(t, l, rp.callback(t, l, b.submitCode(p, strings.ToUpper(codes[3]))))
		assertMetric(t, e, `hallpass_second_factor_events_total{event="recovery_code_used",factor="recovery"}`, 1)

		b2 := e.browser()
		p = rp.passwordStep(t, b2, newLogin(), "alice", alicePassword)
		if again := b2.submitCode(p, codes[3]); again.status != 401 {
			t.Fatalf("a used recovery code: status %d, want 401", again.status)
		}
		// The refused recovery code is audited as one, not as an authenticator code.
		assertMetric(t, e, `hallpass_second_factor_events_total{event="failed",factor="recovery"}`, 1)
		assertMetric(t, e, `hallpass_second_factor_events_total{event="failed",factor="totp"}`, 1)
		assertAudited(t, e, "failed", with(alice, "factor", "recovery"), 1)
	})

	t.Run("wrong codes are throttled like passwords", func(t *testing.T) {
		e.clock.Advance(30 * time.Second) // a step no one used yet
		b := e.browser()
		l := newLogin()
		p := rp.passwordStep(t, b, l, "alice", alicePassword)
		for i := range 5 {
			if p = b.submitCode(p, "123456"); p.status != 401 {
				t.Fatalf("wrong code %d: status %d, want 401", i+1, p.status)
			}
		}
		if p = b.submitCode(p, "123456"); p.status != 429 {
			t.Fatalf("the sixth wrong code from one address at once: status %d, want 429", p.status)
		}
		if p = b.submitCode(p, currentCode(t, e, secret)); p.status != 429 {
			t.Fatalf("a right code while throttled: status %d, want 429 (not checked)", p.status)
		}
		assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="totp"}`, 2)
		assertMetric(t, e, `hallpass_second_factor_events_total{event="failed",factor="totp"}`, 6)
		if p = b.submitCode(p, codes[5]); p.status != 429 {
			t.Fatalf("a recovery code while throttled: status %d, want 429 (not checked)", p.status)
		}
		assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="recovery"}`, 1)
		assertAudited(t, e, "throttled", with(alice, "msg", "second factor throttled"), 2)
		assertAudited(t, e, "throttled", with(alice, "factor", "recovery"), 1)
		e.clock.Advance(30 * time.Second)
		rp.callback(t, l, b.submitCode(p, currentCode(t, e, secret)))
	})

	// The audit lines and the rest of the log carry no secret and no code a user typed.
	assertLogKeeps(t, e, append([]string{secret, "123456", "000000"}, recoveryCodeForms(codes)...)...)
}

// with is fields with one more field.
func with(fields map[string]string, key, value string) map[string]string {
	out := maps.Clone(fields)
	out[key] = value
	return out
}

// recoveryCodeForms are recovery codes as shown and as stored before hashing (no dashes).
func recoveryCodeForms(codes []string) []string {
	var out []string
	for _, c := range codes {
		out = append(out, c, strings.ReplaceAll(c, "-", ""))
	}
	return out
}

// app2RequiresMFA makes app2 a client that requires a second factor.
func app2RequiresMFA(c *config.Config) {
	for i := range c.Clients {
		if c.Clients[i].ID == "app2" {
			c.Clients[i].RequireMFA = true
		}
	}
}

func TestStepUpForAClientThatRequiresMFA(t *testing.T) {
	e := newEnv(t, app2RequiresMFA)
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")
	b := e.browser()
	_, idt := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	first := claimsOf(t, idt)
	if !equalSets(first.AMR, []string{"pwd"}) || first.ACR != "urn:hallpass:acr:password" {
		t.Fatalf("app1 without MFA: amr %v acr %q, want the password only", first.AMR, first.ACR)
	}

	if _, _, errCode := app2.silent(t, b); errCode != "interaction_required" {
		t.Fatalf("prompt=none at app2 without a second factor: error %q, want interaction_required", errCode)
	}

	// The interactive request goes straight to the second factor: no password again.
	l := newLogin()
	p := b.get(app2.authURL(l))
	if strings.Contains(p.body, `name="password"`) {
		t.Fatal("the step-up asked for the password again")
	}
	_, _, done := enrolTOTP(t, e, b, p)
	_, idt = app2.exchange(t, l, app2.callback(t, l, done))
	up := claimsOf(t, idt)
	if !equalSets(up.AMR, []string{"pwd", "otp", "mfa"}) || up.SID != first.SID {
		t.Fatalf("after the step-up: amr %v sid %q, want pwd, otp, mfa in the same session %q", up.AMR, up.SID, first.SID)
	}

	// Now the session has a second factor: silent login succeeds for app2, and app1 sees it too.
	_, code, errCode := app2.silent(t, b)
	if errCode != "" {
		t.Fatalf("prompt=none at app2 after the step-up: %s", errCode)
	}
	_ = code
	l, code, _ = app1.silent(t, b)
	_, idt = app1.exchange(t, l, code)
	if c := claimsOf(t, idt); c.ACR != "urn:hallpass:acr:mfa" {
		t.Fatalf("app1 after the step-up: acr %q, want the mfa acr", c.ACR)
	}
}

func TestACRValuesAskForASecondFactor(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app1", "app1-secret")
	b := e.browser()
	l := newLogin()
	acr := oauth2.SetAuthURLParam("acr_values", "urn:hallpass:acr:mfa")
	_, _, done := enrolTOTP(t, e, b, rp.passwordStep(t, b, l, "alice", alicePassword, acr))
	_, idt := rp.exchange(t, l, rp.callback(t, l, done))
	if c := claimsOf(t, idt); c.ACR != "urn:hallpass:acr:mfa" {
		t.Fatalf("acr = %q, want the requested mfa acr", c.ACR)
	}
	// Without acr_values and with the policy Off, the enrolled user is not asked.
	_, idt = rp.signIn(t, e.browser(), "alice", alicePassword, oauthConnection("people"))
	if c := claimsOf(t, idt); !equalSets(c.AMR, []string{"pwd"}) {
		t.Fatalf("amr = %v without acr_values under policy Off, want the password only", c.AMR)
	}
}

func TestOptionalPolicyAsksOnlyUsersWithAFactor(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.MFA.Policy = config.MFAOptional })
	rp := e.rp("app1", "app1-secret")
	// bob has no factor: the password is enough.
	if _, idt := rp.signIn(t, e.browser(), "bob", bobPassword, oauthConnection("people")); !equalSets(claimsOf(t, idt).AMR, []string{"pwd"}) {
		t.Fatal("a user without a factor was asked for one under the Optional policy")
	}
	// alice enrols (asked by acr_values), and from then on is asked at every sign-in.
	b := e.browser()
	enrolTOTP(t, e, b, rp.passwordStep(t, b, newLogin(), "alice", alicePassword, oauth2.SetAuthURLParam("acr_values", "urn:hallpass:acr:mfa")))
	p := rp.passwordStep(t, e.browser(), newLogin(), "alice", alicePassword)
	if p.location != nil || !strings.Contains(p.body, `autocomplete="one-time-code"`) {
		t.Fatalf("an enrolled user under the Optional policy was not asked for a code (status %d)", p.status)
	}
}

func equalSets(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestTrustedUpstreamMFAIsNotAskedAgain(t *testing.T) {
	e, _ := upstreamEnv(t)
	cfg := *e.srv.Config()
	cfg.Clients = slices.Clone(cfg.Clients)
	cfg.Connections = slices.Clone(cfg.Connections)
	for i := range cfg.Clients {
		cfg.Clients[i].RequireMFA = cfg.Clients[i].ID == "app2"
	}
	for i := range cfg.Connections {
		cfg.Connections[i].TrustUpstreamMFA = cfg.Connections[i].Name == "upstream"
	}
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Apply(&cfg, keys); err != nil {
		t.Fatal(err)
	}
	app2 := e.rp("app2", "app2-secret")

	// bob's upstream sign-in reports otp in its amr: no second factor here.
	b := e.browser()
	l := newLogin()
	_, idt := app2.exchange(t, l, app2.callback(t, l, b.signInUpstream(b.get(app2.authURL(l, oauthConnection("upstream"))), "bob", conntest.OIDCBobPass)))
	if c := claimsOf(t, idt); !equalSets(c.AMR, []string{"fed", "mfa"}) || c.ACR != "urn:hallpass:acr:mfa" {
		t.Fatalf("bob through an upstream that did MFA: amr %v acr %q, want fed and mfa", c.AMR, c.ACR)
	}

	// alice's reports the password only: she is asked to enrol.
	b = e.browser()
	p := b.signInUpstream(b.get(app2.authURL(newLogin(), oauthConnection("upstream"))), "alice", conntest.OIDCAlicePass)
	if !manualKeyRe.MatchString(p.body) {
		t.Fatalf("alice through an upstream without MFA was not asked to enrol a second factor (status %d)", p.status)
	}
}

// max_age asks for a fresh sign-in; for a client that requires MFA a fresh sign-in is both
// factors again: the second factor of the older sign-in does not carry over.
func TestMaxAgeOfAnMFAClientAsksForBothFactorsAgain(t *testing.T) {
	e := newEnv(t, app2RequiresMFA)
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")
	b := e.browser()
	app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	l := newLogin()
	secret, _, done := enrolTOTP(t, e, b, b.get(app2.authURL(l)))
	app2.exchange(t, l, app2.callback(t, l, done))

	e.clock.Advance(2 * time.Minute)
	maxAge := oauth2.SetAuthURLParam("max_age", "60")
	if _, _, errCode := app2.silent(t, b, maxAge); errCode != "login_required" {
		t.Fatalf("prompt=none with max_age past: %q, want login_required", errCode)
	}
	l = newLogin()
	codePage := app2.passwordStep(t, b, l, "alice", alicePassword, maxAge)
	if !strings.Contains(codePage.body, `name="code"`) || codePage.location != nil {
		t.Fatalf("after the password of a max_age sign-in: status %d, want the second-factor page, not a sign-in on the older factor", codePage.status)
	}
	e.clock.Advance(30 * time.Second) // the next TOTP step: the enrolment's code is spent
	_, idt := app2.exchange(t, l, app2.callback(t, l, b.submitCode(codePage, currentCode(t, e, secret))))
	var c struct {
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if !equalSets(c.AMR, []string{"pwd", "otp", "mfa"}) || e.clock.Now().Unix()-c.AuthTime > 60 {
		t.Errorf("after a max_age sign-in: amr %v auth_time %d s ago, want pwd, otp, mfa and a fresh auth_time", c.AMR, e.clock.Now().Unix()-c.AuthTime)
	}
}
