package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/storage"

	"github.com/hallpass/hallpass/internal/testutil/logbuf"
	"github.com/hallpass/hallpass/internal/testutil/testclock"
)

// Users of the test config. alice's hash is argon2id, bob's bcrypt (as imported from
// another system), carol is in the second connection.
const (
	alicePassword = "correct horse battery"
	bobPassword   = "tr0ub4dor&3"
	carolPassword = "staff only please"
)

// RSA key generation is slow under the race detector: one key set serves every test.
var testKeys = sync.OnceValues(func() (*config.SigningKeys, error) {
	k, err := config.NewSigningKeys("RS256")
	if err != nil {
		return nil, err
	}
	prev, err := config.NewSigningKey("RS256")
	if err != nil {
		return nil, err
	}
	k.Previous = prev
	return k, nil
})

// argon2idHash makes a PHC hash the way the operator's users Secret holds them.
func argon2idHash(password string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, 1, 8*1024, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, 8*1024, 1, 1,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

var testHashes = sync.OnceValues(func() ([3]string, error) {
	var out [3]string
	out[0] = argon2idHash(alicePassword)
	for i, p := range []string{bobPassword, carolPassword} {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			return out, err
		}
		out[i+1] = string(h)
	}
	return out, nil
})

func testConfig(t *testing.T, issuer string) *config.Config {
	t.Helper()
	h, err := testHashes()
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) config.Duration {
		v, _ := time.ParseDuration(s)
		return config.Duration{Duration: v}
	}
	return &config.Config{
		Issuer:   issuer,
		DevMode:  true,
		Session:  config.Session{AbsoluteLifetime: d("168h"), IdleTimeout: d("72h")},
		Tokens:   config.Tokens{IDToken: d("1h"), AccessToken: d("1h"), RefreshToken: d("720h"), RefreshReuseInterval: d("3s"), AuthorizationCode: d("1m")},
		Storage:  config.Storage{Type: config.StorageSQLite, SQLitePath: "/unused/by/tests.db"},
		Signing:  config.Signing{Algorithm: "RS256"},
		Branding: config.Branding{Title: "Example Corp", PrimaryColor: "#aa3300"},
		// Test browsers name their address in X-Forwarded-For, as a proxy on loopback would.
		TrustedProxies: []string{"127.0.0.0/8", "::1/128"},
		Clients: []config.Client{
			{ID: "app1", Name: "App One", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("app1-secret")},
				RedirectURIs: []string{"https://app1.example/callback"}, PostLogoutRedirectURIs: []string{"https://app1.example/bye"},
				SingleSignOn: true, Connections: []string{"people", "staff"}},
			{ID: "app2", Name: "App Two", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("app2-secret")},
				RedirectURIs: []string{"https://app2.example/callback"}, SingleSignOn: true, Connections: []string{"people"}},
			{ID: "m2m", Name: "Batch", Type: config.ClientMachineToMachine, SecretSHA256: []string{digest.Of("m2m-secret")}},
			{ID: "nosso", Name: "No SSO", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("nosso-secret")},
				RedirectURIs: []string{"https://nosso.example/callback"}, SingleSignOn: false, Connections: []string{"people"}},
			{ID: "pkce", Name: "Strict", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("pkce-secret")},
				RedirectURIs: []string{"https://pkce.example/callback"}, RequirePKCE: true, SingleSignOn: true, Connections: []string{"people"}},
			{ID: "spa", Name: "Single Page", Type: config.ClientSinglePageApp, RedirectURIs: []string{"https://spa.example/callback"},
				WebOrigins: []string{"https://spa.example"}, SingleSignOn: true, Connections: []string{"people"}},
		},
		// The reports API lets the machine-to-machine client read and write, not administer.
		APIs: []config.API{{Identifier: reportsAPI, Name: "Reports", Scopes: []string{"reports:admin", "reports:read", "reports:write"},
			TokenFormat: config.TokenOpaque, TokenLifetime: d("10m"), Grants: []config.APIGrant{
				{ClientID: "m2m", ClientCredentials: &config.GrantedScopes{Scopes: []string{"reports:read", "reports:write"}}},
			}}},
		Connections: []config.Connection{
			{Name: "people", Type: config.ConnectionDatabase, DisplayName: "Example account", Database: &config.DatabaseConnection{
				SignupEnabled: true,
				Users: []config.DatabaseUser{
					{Username: "alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice Liddell", Groups: []string{"admins"}, PasswordHash: h[0]},
					{Username: "bob", Email: "bob@example.com", Name: "Bob", PasswordHash: h[1]},
				}}},
			{Name: "staff", Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{
				Users: []config.DatabaseUser{{Username: "carol", PasswordHash: h[2]}}}},
		},
	}
}

// reportsAPI is the identifier of the test config's API.
const reportsAPI = "urn:example:reports"

// withAPI adds an API to the config.
func withAPI(api config.API) func(*config.Config) {
	return func(c *config.Config) {
		c.APIs = append(c.APIs, api)
		slices.SortFunc(c.APIs, func(a, b config.API) int { return strings.Compare(a.Identifier, b.Identifier) })
	}
}

// env is one server on a loopback httptest listener, with real storage.
type env struct {
	t      *testing.T
	srv    *server.Server
	ts     *httptest.Server
	clock  *testclock.Clock
	store  storage.Storage
	issuer string
	reg    *prometheus.Registry
	// logs is the server's log, JSON lines as it writes them in production (unless the
	// test gave a logger of its own).
	logs *logbuf.Buffer
	// transport, when set, is the browsers' (a host-named issuer's dialler).
	transport http.RoundTripper
}

// newEnv starts a server; mutate adjusts the config before it is served.
func newEnv(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	return newEnvWithOptions(t, nil, mutate...)
}

// newEnvWithOptions is newEnv with extra server options. The server's background work
// (back-channel deliveries) is shut down when the test ends.
func newEnvWithOptions(t *testing.T, opts []server.Option, mutate ...func(*config.Config)) *env {
	t.Helper()
	return startEnv(t, "", opts, mutate...)
}

// newEnvOnHost is newEnv with an issuer named host (on loopback), as passkeys need: WebAuthn
// scopes credentials to a domain name, never an IP address. Its browsers reach it; its
// relying parties (env.rp) do not.
func newEnvOnHost(t *testing.T, host string, mutate ...func(*config.Config)) *env {
	t.Helper()
	return startEnv(t, host, nil, mutate...)
}

func startEnv(t *testing.T, host string, opts []server.Option, mutate ...func(*config.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(time.Now().Truncate(time.Second)), reg: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	var handler atomic.Pointer[http.Handler]
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(e.ts.Close)
	e.issuer = e.ts.URL
	if host != "" {
		addr := e.ts.Listener.Addr().String()
		e.issuer = "http://" + hostPort(host, e.ts.Listener)
		e.transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	}
	e.store = openTestStorage(t)
	cfg := testConfig(t, e.issuer)
	for _, m := range mutate {
		m(cfg)
	}
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	all := append([]server.Option{server.WithClock(e.clock.Now), server.WithMetricsRegisterer(e.reg),
		server.WithLogger(slog.New(slog.NewJSONHandler(e.logs, nil)))}, opts...)
	e.srv, err = server.New(cfg, keys, e.store, all...)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
	var h http.Handler = e.srv
	handler.Store(&h)
	return e
}

// browser is a user agent with its own cookie jar and client address. It follows
// redirects within the issuer and stops at the first one that leaves it (to an
// application), which it returns.
type browser struct {
	e  *env
	c  *http.Client
	ip string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	issuerHost := strings.TrimPrefix(e.issuer, "http://")
	return &browser{e: e, ip: randomIP(), c: &http.Client{Jar: jar, Transport: e.transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != issuerHost {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

// randomIP gives every browser its own documentation-range IPv6 address, so per-address
// throttling of one test never affects another, even on a shared PostgreSQL database.
func randomIP() string {
	ip := make(net.IP, net.IPv6len)
	copy(ip, []byte{0x20, 0x01, 0x0d, 0xb8})
	_, _ = rand.Read(ip[4:])
	return ip.String()
}

// page is a response as the browser saw it.
type page struct {
	status   int
	header   http.Header
	body     string
	location *url.URL // set when the response redirects to an application
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	req.Header.Set("X-Forwarded-For", b.ip)
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		p.location, _ = resp.Location()
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([A-Za-z_]+)" value="([^"]*)">`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// formFields returns the hidden inputs and the action of the page's post form.
func formFields(t *testing.T, p page) (string, url.Values) {
	t.Helper()
	m := actionRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no login form on the page (status %d):\n%s", p.status, p.body)
	}
	v := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], unescapeHTML(h[2]))
	}
	return unescapeHTML(m[1]), v
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// submitLogin fills the password form on p.
func (b *browser) submitLogin(p page, username, password string) page {
	b.e.t.Helper()
	action, form := formFields(b.e.t, p)
	form.Set("username", username)
	form.Set("password", password)
	return b.post(action, form)
}

// relyingParty is an application using go-oidc and x/oauth2, as a real one would.
type relyingParty struct {
	e        *env
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	provider *oidc.Provider
}

func (e *env) rp(clientID, secret string, scopes ...string) *relyingParty {
	e.t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("discover provider: %v", err)
	}
	client, ok := e.srv.Config().Client(clientID)
	if !ok {
		e.t.Fatalf("no client %q", clientID)
	}
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}
	}
	return &relyingParty{
		e:        e,
		provider: provider,
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID, Now: e.clock.Now}),
		oauth: oauth2.Config{
			ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(),
			RedirectURL: client.RedirectURIs[0], Scopes: scopes,
		},
	}
}

// login is one authorization as the application sees it.
type login struct {
	verifier string
	nonce    string
	state    string
}

func newLogin() login {
	return login{verifier: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier()[:20], state: oauth2.GenerateVerifier()[:24]}
}

func (rp *relyingParty) authURL(l login, params ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce)}, params...)
	return rp.oauth.AuthCodeURL(l.state, opts...)
}

// callback checks the authorization response the browser was sent to and returns its code.
func (rp *relyingParty) callback(t *testing.T, l login, p page) string {
	t.Helper()
	if p.location == nil {
		t.Fatalf("expected a redirect to the application, got status %d:\n%s", p.status, p.body)
	}
	q := p.location.Query()
	if got := p.location.Scheme + "://" + p.location.Host + p.location.Path; got != rp.oauth.RedirectURL {
		t.Fatalf("redirected to %s, want %s", got, rp.oauth.RedirectURL)
	}
	if q.Get("state") != l.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), l.state)
	}
	if q.Get("iss") != rp.e.issuer {
		t.Fatalf("iss = %q, want %q", q.Get("iss"), rp.e.issuer)
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in the response: error=%s (%s)", q.Get("error"), q.Get("error_description"))
	}
	return q.Get("code")
}

// authError returns the error of an authorization response after checking state and iss.
func (rp *relyingParty) authError(t *testing.T, l login, p page) string {
	t.Helper()
	if p.location == nil {
		t.Fatalf("expected a redirect to the application, got status %d:\n%s", p.status, p.body)
	}
	q := p.location.Query()
	if q.Get("state") != l.state || q.Get("iss") != rp.e.issuer {
		t.Fatalf("error response state=%q iss=%q, want %q and %q", q.Get("state"), q.Get("iss"), l.state, rp.e.issuer)
	}
	return q.Get("error")
}

func (rp *relyingParty) exchange(t *testing.T, l login, code string) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	tok, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
	if err != nil {
		t.Fatalf("exchange code: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != l.nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, l.nonce)
	}
	return tok, idt
}

// signIn runs a full interactive login of user through rp in browser b.
func (rp *relyingParty) signIn(t *testing.T, b *browser, username, password string, params ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken) {
	t.Helper()
	l, code := rp.loginCode(t, b, username, password, params...)
	return rp.exchange(t, l, code)
}

// loginCode signs in through the login page and returns the authorization and its code,
// not yet redeemed.
func (rp *relyingParty) loginCode(t *testing.T, b *browser, username, password string, params ...oauth2.AuthCodeOption) (login, string) {
	t.Helper()
	l := newLogin()
	p := b.get(rp.authURL(l, params...))
	if p.location != nil {
		t.Fatalf("expected the login page, was redirected to %s", p.location)
	}
	return l, rp.callback(t, l, b.submitLogin(p, username, password))
}

// silent runs a prompt=none authorization and returns the code or the error.
func (rp *relyingParty) silent(t *testing.T, b *browser, params ...oauth2.AuthCodeOption) (login, string, string) {
	t.Helper()
	l := newLogin()
	p := b.get(rp.authURL(l, append([]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}, params...)...))
	if p.location == nil {
		t.Fatalf("prompt=none must answer with a redirect, got status %d:\n%s", p.status, p.body)
	}
	if e := p.location.Query().Get("error"); e != "" {
		return l, "", rp.authError(t, l, p)
	}
	return l, rp.callback(t, l, p), ""
}

func oauthConnection(name string) oauth2.AuthCodeOption {
	return oauth2.SetAuthURLParam("connection", name)
}

var signupLinkRe = regexp.MustCompile(`<a href="([^"]*/signup\?[^"]*)">`)

// metricValue reads one counter of the server's registry ("name{label=\"v\"}").
func metricValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			if mf.GetName()+"{"+strings.Join(labels, ",")+"}" == name {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func assertMetric(t *testing.T, e *env, name string, want float64) {
	t.Helper()
	if got := metricValue(t, e, name); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// logLines are the server's log lines so far, each decoded from its JSON.
func logLines(t *testing.T, e *env) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(e.logs.String()) {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("a server log line is not JSON (%v): %s", err, line)
		}
		out = append(out, fields)
	}
	return out
}

// assertAudited checks that the server logged the audit event with want among its fields, as
// many times as count.
func assertAudited(t *testing.T, e *env, event string, want map[string]string, count int) {
	t.Helper()
	var matched int
	var lines []string
	for _, fields := range logLines(t, e) {
		if fields["audit"] == nil {
			continue
		}
		lines = append(lines, fmt.Sprint(fields))
		if fields["audit"] != event {
			continue
		}
		if hasFields(fields, want) {
			matched++
		}
	}
	if matched != count {
		t.Errorf("%d audit lines %s with %v, want %d; the audit lines:\n%s", matched, event, want, count, strings.Join(lines, "\n"))
	}
}

func hasFields(fields map[string]any, want map[string]string) bool {
	for k, v := range want {
		if fields[k] != v {
			return false
		}
	}
	return true
}

// assertLogKeeps checks that no log line carries any of secrets in a field other than its
// time (where six digits may well appear).
func assertLogKeeps(t *testing.T, e *env, secrets ...string) {
	t.Helper()
	for _, fields := range logLines(t, e) {
		for k, v := range fields {
			// A secret would be logged as text; numbers (durations in nanoseconds) are
			// not looked at, so that "000000" cannot match one.
			text, isText := v.(string)
			if !isText || k == "time" {
				continue
			}
			for _, secret := range secrets {
				if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
					t.Errorf("the log line %v carries a secret in %s", fields, k)
				}
			}
		}
	}
}

// revokeToken posts token to the revocation endpoint (RFC 7009) as the client user and
// returns the status.
func revokeToken(t *testing.T, e *env, user, pass, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// signOut opens a logout URL and, when the server asks the user to confirm (a logout
// without an id_token_hint for the browser's session), confirms as the user would.
func (b *browser) signOut(u string) page {
	b.e.t.Helper()
	p := b.get(u)
	if p.location == nil && strings.Contains(p.body, "Sign out?") {
		action, form := formFields(b.e.t, p)
		p = b.post(action, form)
	}
	return p
}

// introspect asks the introspection endpoint, as app1, about token and returns its answer.
func (e *env) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app1", "app1-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("introspection answer: %v", err)
	}
	return body
}

// withdrawGrant applies the server's config without clientID's grant on the API, as the
// operator does when an SSOAPI stops granting a client.
func (e *env) withdrawGrant(t *testing.T, api, clientID string) {
	t.Helper()
	cfg := *e.srv.Config()
	cfg.APIs = slices.Clone(cfg.APIs)
	for i := range cfg.APIs {
		if cfg.APIs[i].Identifier == api {
			cfg.APIs[i].Grants = slices.DeleteFunc(slices.Clone(cfg.APIs[i].Grants), func(g config.APIGrant) bool { return g.ClientID == clientID })
		}
	}
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Apply(&cfg, keys); err != nil {
		t.Fatal(err)
	}
}
