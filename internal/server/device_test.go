package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

// The device authorization grant (RFC 8628) as a command-line tool sees it: x/oauth2 starts
// it from the endpoint discovery advertises, then the test polls the token endpoint by hand,
// because the server's clock is the test's and x/oauth2 would wait in real time.

const cliClient = "cli"

// withDeviceClient registers a Native client with the device code grant, as an SSOClient of
// a kubectl login would be. edit adjusts it.
func withDeviceClient(edit ...func(*config.Client)) func(*config.Config) {
	return func(cfg *config.Config) {
		c := config.Client{ID: cliClient, Name: "Cluster CLI", Type: config.ClientNative, RedirectURIs: []string{"http://127.0.0.1/callback"},
			SingleSignOn: true, Connections: []string{"people", "staff"},
			GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantDeviceCode}}
		for _, f := range edit {
			f(&c)
		}
		cfg.Clients = append(cfg.Clients, c)
		slices.SortFunc(cfg.Clients, func(a, b config.Client) int { return strings.Compare(a.ID, b.ID) })
	}
}

// device is a command-line tool signing in with the device grant.
type device struct {
	e        *env
	clientID string
	auth     *oauth2.DeviceAuthResponse
	verifier *oidc.IDTokenVerifier
}

func (e *env) startDevice(t *testing.T, clientID string, scopes ...string) *device {
	t.Helper()
	return e.startDeviceWith(t, clientID, nil, scopes...)
}

// startDeviceWith starts a device authorization with extra parameters (an API's audience).
func (e *env) startDeviceWith(t *testing.T, clientID string, params []oauth2.AuthCodeOption, scopes ...string) *device {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}
	}
	cfg := oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), Scopes: scopes}
	if cfg.Endpoint.DeviceAuthURL != e.issuer+"/oauth/device/code" {
		t.Fatalf("discovery advertises device_authorization_endpoint %q", cfg.Endpoint.DeviceAuthURL)
	}
	auth, err := cfg.DeviceAuth(context.Background(), params...)
	if err != nil {
		t.Fatalf("start device authorization: %v", err)
	}
	return &device{e: e, clientID: clientID, auth: auth, verifier: provider.Verifier(&oidc.Config{ClientID: clientID, Now: e.clock.Now})}
}

// poll asks the token endpoint once and returns the status and the answer.
func (d *device) poll(t *testing.T) (int, map[string]any) {
	t.Helper()
	return tokenRequest(t, d.e, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {d.auth.DeviceCode}, "client_id": {d.clientID}}, "", "")
}

// pollError polls and checks that the answer is the OAuth error want.
func (d *device) pollError(t *testing.T, want string) {
	t.Helper()
	status, body := d.poll(t)
	if body["error"] != want || status != http.StatusBadRequest {
		t.Fatalf("poll: status %d, %v; want 400 %s", status, body, want)
	}
}

// tokens waits one interval, polls, and verifies the ID token it gets.
func (d *device) tokens(t *testing.T) (map[string]any, *oidc.IDToken) {
	t.Helper()
	d.e.clock.Advance(5 * time.Second)
	status, body := d.poll(t)
	if status != http.StatusOK {
		t.Fatalf("poll after approval: status %d, %v", status, body)
	}
	raw, _ := body["id_token"].(string)
	idt, err := d.verifier.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verify the device's ID token: %v", err)
	}
	return body, idt
}

var userCodeFormat = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// confirmation opens the link with the code (verification_uri_complete) and returns the
// confirmation page.
func (d *device) confirmation(t *testing.T, b *browser) page {
	t.Helper()
	p := b.get(d.auth.VerificationURIComplete)
	if p.status != http.StatusOK || !strings.Contains(p.body, d.auth.UserCode) || !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("confirmation page: status %d:\n%s", p.status, p.body)
	}
	return p
}

// answer submits the confirmation with decision allow or deny.
func answer(t *testing.T, b *browser, confirmation page, decision string) page {
	t.Helper()
	action, form := formFields(t, confirmation)
	form.Set("decision", decision)
	return b.post(action, form)
}

func TestADeviceSignsInWithTheBrowsersCentralSessionWithoutAPassword(t *testing.T) {
	e := newEnv(t, withDeviceClient())
	b := e.browser()
	_, appToken := e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	var appClaims struct {
		SID string `json:"sid"`
	}
	_ = appToken.Claims(&appClaims)

	d := e.startDevice(t, cliClient)
	if !userCodeFormat.MatchString(d.auth.UserCode) || d.auth.VerificationURI != e.issuer+"/activate" || d.auth.Interval != 5 {
		t.Fatalf("device authorization: user code %q, verification URI %q, interval %d", d.auth.UserCode, d.auth.VerificationURI, d.auth.Interval)
	}
	d.pollError(t, "authorization_pending")

	p := d.confirmation(t, b)
	for _, want := range []string{"Cluster CLI", "alice@example.com", ">Allow<"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the confirmation does not show %q:\n%s", want, p.body)
		}
	}
	if done := answer(t, b, p, "allow"); !strings.Contains(done.body, "Your device is signed in") {
		t.Fatalf("after allowing: status %d:\n%s", done.status, done.body)
	}

	body, idt := d.tokens(t)
	var claims struct {
		SID    string   `json:"sid"`
		Groups []string `json:"groups"`
		Email  string   `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "people|alice" || claims.SID != appClaims.SID || !slices.Equal(claims.Groups, []string{"admins"}) {
		t.Errorf("device ID token: sub %q sid %q groups %v; want alice in the app's session %q with her groups", idt.Subject, claims.SID, claims.Groups, appClaims.SID)
	}
	accessToken, _ := body["access_token"].(string)
	if body["refresh_token"] == nil || userinfoStatus(t, e, accessToken) != http.StatusOK {
		t.Errorf("the device got no refresh token or an access token userinfo refuses: %v", body)
	}

	// The device code is single use: presented again it is refused and what it gave is revoked.
	e.clock.Advance(5 * time.Second)
	d.pollError(t, "invalid_grant")
	if status := userinfoStatus(t, e, accessToken); status != http.StatusUnauthorized {
		t.Errorf("access token of a replayed device code: userinfo status %d, want 401", status)
	}
}

func TestADeviceSignInWithoutASessionGoesThroughTheLoginPageAndStartsOne(t *testing.T) {
	e := newEnv(t, withDeviceClient())
	d := e.startDevice(t, cliClient)
	b := e.browser()

	// The user types the code, in lower case and without the dash, into the plain form.
	entry := b.get(e.issuer + "/activate")
	action, form := formFields(t, entry)
	form.Set("user_code", strings.ToLower(strings.ReplaceAll(d.auth.UserCode, "-", "")))
	p := b.post(action, form)
	if !strings.Contains(p.body, d.auth.UserCode) || !strings.Contains(p.body, "Continue to sign in") {
		t.Fatalf("confirmation without a session: status %d:\n%s", p.status, p.body)
	}
	// The client has two connections: the chooser, then the password form of staff.
	chooser := answer(t, b, p, "allow")
	if !strings.Contains(chooser.body, "Cluster CLI") || !strings.Contains(chooser.body, `value="staff"`) {
		t.Fatalf("allowing without a session did not show the login page: status %d:\n%s", chooser.status, chooser.body)
	}
	tx := regexp.MustCompile(`name="tx" value="([^"]+)"`).FindStringSubmatch(chooser.body)[1]
	login := b.get(e.issuer + "/login?" + url.Values{"tx": {tx}, "connection": {"staff"}}.Encode())
	if !strings.Contains(login.body, `name="password"`) {
		t.Fatalf("allowing without a session did not show the login page: status %d:\n%s", login.status, login.body)
	}
	if done := b.submitLogin(login, "carol", carolPassword); !strings.Contains(done.body, "Your device is signed in") {
		t.Fatalf("after the login: status %d:\n%s", done.status, done.body)
	}
	if _, idt := d.tokens(t); idt.Subject != "staff|carol" {
		t.Errorf("device signed in as %q, want staff|carol", idt.Subject)
	}
	// The login started a central session that the user's applications reuse.
	if _, _, errCode := e.rp("app1", "app1-secret").silent(t, b); errCode != "" {
		t.Errorf("silent login after the device's login: %s", errCode)
	}
}

func TestTheClientsRulesDecideWhetherTheSessionMayAnswer(t *testing.T) {
	for name, tc := range map[string]struct {
		edit       func(*config.Client)
		signInWith string // the app1 login before the device asks: alice (people) or carol (staff)
	}{
		"a client with single sign-on off asks for the password": {
			edit: func(c *config.Client) { c.SingleSignOn = false }, signInWith: "alice"},
		"a client that does not use the session's connection asks for a login": {
			edit: func(c *config.Client) { c.Connections = []string{"people"} }, signInWith: "carol"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withDeviceClient(tc.edit))
			b := e.browser()
			password := map[string]string{"alice": alicePassword, "carol": carolPassword}[tc.signInWith]
			conn := map[string]string{"alice": "people", "carol": "staff"}[tc.signInWith]
			e.rp("app1", "app1-secret").signIn(t, b, tc.signInWith, password, oauthConnection(conn))
			d := e.startDevice(t, cliClient)
			p := d.confirmation(t, b)
			if strings.Contains(p.body, "You will be signed in there as") {
				t.Errorf("the confirmation offers the session it may not use:\n%s", p.body)
			}
			if login := answer(t, b, p, "allow"); !strings.Contains(login.body, `name="password"`) && !strings.Contains(login.body, "Choose how to sign in") {
				t.Fatalf("allowing did not ask for a login: status %d:\n%s", login.status, login.body)
			}
			d.pollError(t, "authorization_pending")
		})
	}
}

func TestDevicePollingAnswers(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, e *env, d *device)
	}{
		{"polling faster than the interval is told to slow down, and the interval grows by 5 seconds", func(t *testing.T, e *env, d *device) {
			d.pollError(t, "authorization_pending")
			d.pollError(t, "slow_down")
			e.clock.Advance(5 * time.Second) // the interval is 10 seconds now
			d.pollError(t, "slow_down")
			e.clock.Advance(15 * time.Second)
			d.pollError(t, "authorization_pending")
		}},
		{"a denied sign-in gives access_denied", func(t *testing.T, e *env, d *device) {
			b := e.browser()
			e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
			if p := answer(t, b, d.confirmation(t, b), "deny"); !strings.Contains(p.body, "Sign-in denied") {
				t.Fatalf("after denying: status %d:\n%s", p.status, p.body)
			}
			d.pollError(t, "access_denied")
			// A denied code cannot be allowed afterwards.
			if p := b.get(d.auth.VerificationURIComplete); !strings.Contains(p.body, "has been used already") {
				t.Errorf("a denied code shows: status %d:\n%s", p.status, p.body)
			}
		}},
		{"an expired code gives expired_token and cannot be allowed", func(t *testing.T, e *env, d *device) {
			e.clock.Advance(10 * time.Minute)
			d.pollError(t, "expired_token")
			if p := e.browser().get(d.auth.VerificationURIComplete); !strings.Contains(p.body, "has expired") {
				t.Errorf("an expired code shows: status %d:\n%s", p.status, p.body)
			}
		}},
		{"a sign-out before the device collects its tokens refuses them", func(t *testing.T, e *env, d *device) {
			b := e.browser()
			e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
			answer(t, b, d.confirmation(t, b), "allow")
			b.signOut(e.issuer + "/v2/logout")
			e.clock.Advance(5 * time.Second)
			d.pollError(t, "invalid_grant")
		}},
		{"another client cannot collect the code", func(t *testing.T, e *env, d *device) {
			d.clientID = "cli2"
			d.pollError(t, "invalid_grant")
		}},
		{"an unknown device code is an invalid grant", func(t *testing.T, e *env, d *device) {
			d.auth.DeviceCode = "not-a-device-code"
			d.pollError(t, "invalid_grant")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withDeviceClient(), withDeviceClient(func(c *config.Client) { c.ID = "cli2" }))
			tc.run(t, e, e.startDevice(t, cliClient))
		})
	}
}

func TestOnlyClientsDeclaringTheDeviceGrantMayUseIt(t *testing.T) {
	e := newEnv(t, withDeviceClient(func(c *config.Client) {
		c.GrantTypes = []string{config.GrantAuthorizationCode}
	}))
	for _, tc := range []struct{ client, secret string }{{"cli", ""}, {"spa", ""}, {"app1", "app1-secret"}} {
		form := url.Values{"client_id": {tc.client}, "scope": {"openid"}}
		if tc.secret != "" {
			form.Set("client_secret", tc.secret)
		}
		resp, err := http.PostForm(e.issuer+"/oauth/device/code", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s started a device authorization: status %d", tc.client, resp.StatusCode)
		}
		status, body := tokenRequest(t, e, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {"x"}, "client_id": {tc.client}, "client_secret": {tc.secret}}, "", "")
		if status != http.StatusBadRequest || body["error"] != "unauthorized_client" {
			t.Errorf("%s polled: status %d %v, want unauthorized_client", tc.client, status, body)
		}
	}
}

func TestTheDevicePageRefusesFormsOfOtherSitesAndThrottlesGuessing(t *testing.T) {
	e := newEnv(t, withDeviceClient())
	d := e.startDevice(t, cliClient)
	b := e.browser()
	p := d.confirmation(t, b)
	action, form := formFields(t, p)
	form.Set("decision", "allow")
	form.Set("csrf", "forged")
	if got := b.post(action, form); got.status != http.StatusForbidden {
		t.Errorf("a forged form: status %d, want 403", got.status)
	}
	d.pollError(t, "authorization_pending")

	entry := b.get(e.issuer + "/activate")
	action, form = formFields(t, entry)
	form.Set("user_code", "BBBB-BBBB")
	if got := b.post(action, form); got.status != http.StatusBadRequest || !strings.Contains(got.body, "not valid") {
		t.Fatalf("a wrong code: status %d:\n%s", got.status, got.body)
	}
	var last page
	for range 40 {
		if last = b.post(action, form); last.status == http.StatusTooManyRequests {
			break
		}
	}
	if last.status != http.StatusTooManyRequests || !strings.Contains(last.body, "Too many codes") {
		t.Fatalf("40 wrong codes from one address: last status %d, want 429", last.status)
	}
	// The right code is refused too while the address waits: the guess does not leak.
	form.Set("user_code", d.auth.UserCode)
	if got := b.post(action, form); got.status != http.StatusTooManyRequests {
		t.Errorf("the right code while throttled: status %d, want 429", got.status)
	}
	// Another address is not affected.
	if other := e.browser(); !strings.Contains(other.get(d.auth.VerificationURIComplete).body, d.auth.UserCode) {
		t.Error("another address cannot use the code")
	}
}

func TestAClientWithoutTheRefreshGrantGetsNoRefreshToken(t *testing.T) {
	e := newEnv(t, withDeviceClient(func(c *config.Client) {
		c.GrantTypes = []string{config.GrantDeviceCode}
	}))
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	d := e.startDevice(t, cliClient)
	answer(t, b, d.confirmation(t, b), "allow")
	body, _ := d.tokens(t)
	if body["refresh_token"] != nil || strings.Contains(body["scope"].(string), "offline_access") {
		t.Errorf("a client without refresh_token got %v", body)
	}
}

func TestADeviceOfAClientThatRequiresMFAStepsTheSessionUpFirst(t *testing.T) {
	e := newEnv(t, withDeviceClient(func(c *config.Client) { c.RequireMFA = true }))
	b := e.browser()
	e.rp("app2", "app2-secret").signIn(t, b, "alice", alicePassword)
	d := e.startDevice(t, cliClient)

	// Allow leads to the second factor, not to the password and not to the approval.
	p := answer(t, b, d.confirmation(t, b), "allow")
	if strings.Contains(p.body, `name="password"`) || strings.Contains(p.body, "Your device is signed in") {
		t.Fatalf("allowing from a session without a second factor: status %d:\n%s", p.status, p.body)
	}
	d.pollError(t, "authorization_pending")
	_, _, done := enrolTOTP(t, e, b, p)
	if !strings.Contains(done.body, "Your device is signed in") {
		t.Fatalf("after the second factor: status %d:\n%s", done.status, done.body)
	}
	if _, idt := d.tokens(t); !equalSets(claimsOf(t, idt).AMR, []string{"pwd", "otp", "mfa"}) {
		t.Errorf("the device's ID token has amr %v, want the stepped-up session's", claimsOf(t, idt).AMR)
	}
}

// Every device authorization is a row in storage: one address that starts them without end
// is told to slow down (RFC 8628's slow_down, with Retry-After) before it fills storage.
func TestOneAddressCannotStartDeviceAuthorizationsWithoutEnd(t *testing.T) {
	e := newEnv(t, withDeviceClient())
	start := func() (int, string, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(e.issuer+"/oauth/device/code", url.Values{"client_id": {cliClient}, "scope": {"openid"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), body
	}
	started := 0
	for range 100 {
		status, retryAfter, body := start()
		if status == http.StatusOK {
			started++
			continue
		}
		if status != http.StatusTooManyRequests || body["error"] != "slow_down" || retryAfter == "" {
			t.Fatalf("after %d device authorizations: status %d Retry-After %q body %v, want 429 slow_down with Retry-After", started, status, retryAfter, body)
		}
		break
	}
	if started < 60 || started >= 100 {
		t.Errorf("one address started %d device authorizations before being slowed down, want 60", started)
	}
}
