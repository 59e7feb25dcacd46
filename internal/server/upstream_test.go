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

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
)

// upstreamEnv is a server whose app1 and app2 may also use "upstream", an OIDC connection
// to a real oidc-provider, and "directory", an LDAP connection to a real slapd.
func upstreamEnv(t *testing.T) (*env, *conntest.OIDCProvider) {
	t.Helper()
	slapd := conntest.StartSlapd(t)
	var peer *conntest.OIDCProvider
	e := newEnv(t, func(c *config.Config) {
		peer = conntest.StartOIDCProvider(t, conntest.OIDCProviderOptions{
			RedirectURIs: []string{c.Issuer + "/connections/upstream/callback"},
		})
		c.Connections = append(c.Connections,
			config.Connection{Name: "directory", Type: config.ConnectionLDAP, DisplayName: "Corporate directory", LDAP: &config.LDAPConnection{
				URL: slapd.LDAPURL, StartTLS: true, RootCA: slapd.CA.CertPEM,
				BindDN: conntest.LDAPServiceDN, BindPassword: conntest.LDAPServicePass,
				UserBaseDN: conntest.LDAPUsersDN, UserFilter: "(objectClass=inetOrgPerson)", UsernameAttr: "uid", GroupBaseDN: conntest.LDAPGroupsDN,
			}},
			config.Connection{Name: "upstream", Type: config.ConnectionOIDC, DisplayName: "Upstream IdP", OIDC: &config.OIDCConnection{
				Issuer: peer.Issuer, ClientID: conntest.OIDCClientID, ClientSecret: conntest.OIDCClientSecret,
				Scopes: []string{"email", "groups", "openid", "profile"},
			}},
		)
		slices.SortFunc(c.Connections, func(a, b config.Connection) int { return strings.Compare(a.Name, b.Name) })
		for i := range c.Clients {
			if c.Clients[i].ID == "app1" || c.Clients[i].ID == "app2" {
				c.Clients[i].Connections = []string{"directory", "people", "staff", "upstream"}
				if c.Clients[i].ID == "app2" {
					c.Clients[i].Connections = []string{"directory", "people", "upstream"}
				}
			}
		}
	})
	return e, peer
}

var upstreamFormRe = regexp.MustCompile(`action="([^"]+)"`)

// signInUpstream continues at the upstream a login that p redirected there: it signs in on
// the upstream's form in the same browser and comes back through the server's callback,
// returning the server's answer.
func (b *browser) signInUpstream(p page, username, password string) page {
	t := b.e.t
	t.Helper()
	if p.location == nil {
		t.Fatalf("expected a redirect to the upstream, got status %d:\n%s", p.status, p.body)
	}
	var back *url.URL
	up := &http.Client{Jar: b.c.Jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.e.issuer) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := up.Get(p.location.String())
	if err != nil {
		t.Fatalf("open the upstream's login page: %v", err)
	}
	body := readBody(resp)
	m := upstreamFormRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form at the upstream (status %d):\n%s", resp.StatusCode, body)
	}
	action, _ := resp.Request.URL.Parse(m[1])
	resp, err = up.PostForm(action.String(), url.Values{"username": {username}, "password": {password}})
	if err != nil {
		t.Fatalf("sign in at the upstream: %v", err)
	}
	body = readBody(resp)
	if back == nil {
		t.Fatalf("the upstream did not send the browser back (status %d):\n%s", resp.StatusCode, body)
	}
	return b.get(back.String())
}

func readBody(resp *http.Response) string {
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

func TestUpstreamConnections(t *testing.T) {
	e, peer := upstreamEnv(t)
	app1, app2 := e.rp("app1", "app1-secret"), e.rp("app2", "app2-secret")

	t.Run("a user signs in through the OIDC upstream and a second application then signs in silently", func(t *testing.T) {
		b := e.browser()
		l := newLogin()
		p := b.get(app1.authURL(l, oauthConnection("upstream")))
		if p.location == nil || !strings.HasPrefix(p.location.String(), peer.Issuer+"/auth?") {
			t.Fatalf("connection=upstream should go straight to the upstream, got status %d location %v", p.status, p.location)
		}
		_, idt := app1.exchange(t, l, app1.callback(t, l, b.signInUpstream(p, "alice", conntest.OIDCAlicePass)))
		var claims struct {
			Email  string   `json:"email"`
			Groups []string `json:"groups"`
			AMR    []string `json:"amr"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "upstream|alice" || claims.Email != "alice@example.net" || !slices.Equal(claims.Groups, []string{"readers", "writers"}) || !slices.Equal(claims.AMR, []string{"fed"}) {
			t.Fatalf("app1's ID token: sub=%q claims=%+v", idt.Subject, claims)
		}

		sl, code, errCode := app2.silent(t, b, oauthConnection("upstream"))
		if errCode != "" {
			t.Fatalf("app2's silent login with connection=upstream: %s", errCode)
		}
		if _, idt2 := app2.exchange(t, sl, code); idt2.Subject != idt.Subject {
			t.Fatalf("app2 got subject %q, app1 %q", idt2.Subject, idt.Subject)
		}
		if _, _, errCode := app2.silent(t, b, oauthConnection("people")); errCode != "interaction_required" {
			t.Fatalf("a silent login with another connection gave %q, want interaction_required", errCode)
		}
		if _, _, errCode := app2.silent(t, e.browser(), oauthConnection("upstream")); errCode != "login_required" {
			t.Fatalf("a browser without a session gave %q, want login_required", errCode)
		}

		sessions, err := e.store.ListSessionsBySubject(context.Background(), "upstream", "upstream|alice")
		if err != nil || len(sessions) != 1 {
			t.Fatalf("sessions of upstream|alice: %d, %v", len(sessions), err)
		}
		var up struct{ EndSessionURL, IDTokenHint string }
		if err := json.Unmarshal(sessions[0].Upstream, &up); err != nil || up.EndSessionURL != peer.Issuer+"/session/end" || up.IDTokenHint == "" {
			t.Fatalf("the session keeps no upstream logout information for federated logout: %v", err)
		}
	})

	t.Run("the chooser allows its form to redirect to the upstream", func(t *testing.T) {
		b := e.browser()
		p := b.get(app1.authURL(newLogin()))
		if !strings.Contains(p.body, `value="upstream"`) {
			t.Fatalf("the chooser does not offer the upstream:\n%s", p.body)
		}
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, peer.Issuer) {
			t.Fatalf("CSP %q does not allow the redirect to %s", csp, peer.Issuer)
		}
	})

	t.Run("an upstream that refuses the sign-in shows a clear error page", func(t *testing.T) {
		b := e.browser()
		p := b.get(app1.authURL(newLogin(), oauthConnection("upstream")))
		state := p.location.Query().Get("state")
		p = b.get(e.issuer + "/connections/upstream/callback?error=access_denied&state=" + url.QueryEscape(state))
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Signing in with Upstream IdP failed. The identity provider did not sign you in (access_denied).") {
			t.Fatalf("status %d:\n%s", p.status, p.body)
		}
	})

	t.Run("a callback in a browser that did not start the login is refused", func(t *testing.T) {
		b := e.browser()
		p := b.get(app1.authURL(newLogin(), oauthConnection("upstream")))
		other := e.browser()
		p = other.get(e.issuer + "/connections/upstream/callback?code=x&state=" + url.QueryEscape(p.location.Query().Get("state")))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "started in another browser") {
			t.Fatalf("status %d:\n%s", p.status, p.body)
		}
	})

	t.Run("a user signs in with the directory's password form", func(t *testing.T) {
		b := e.browser()
		for _, bad := range []struct{ username, password string }{
			{"alice", "wrong"}, {"nobody", conntest.LDAPAlicePass}, {"al*", conntest.LDAPAlicePass}, {"alice)(uid=*", conntest.LDAPAlicePass}, {`alice\`, conntest.LDAPAlicePass},
		} {
			p := b.get(app1.authURL(newLogin(), oauthConnection("directory")))
			if !strings.Contains(p.body, "Corporate directory") {
				t.Fatalf("connection=directory should show its password form:\n%s", p.body)
			}
			p = b.submitLogin(p, bad.username, bad.password)
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong username or password.") {
				t.Fatalf("login as %q: status %d, want the credentials error:\n%s", bad.username, p.status, p.body)
			}
		}
		_, idt := app1.signIn(t, b, "alice", conntest.LDAPAlicePass, oauthConnection("directory"))
		var claims struct {
			Groups []string `json:"groups"`
			AMR    []string `json:"amr"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "directory|alice" || !slices.Equal(claims.Groups, []string{"admins", "devs"}) || !slices.Equal(claims.AMR, []string{"pwd"}) {
			t.Fatalf("sub=%q claims=%+v", idt.Subject, claims)
		}
		if _, _, errCode := app2.silent(t, b, oauthConnection("directory")); errCode != "" {
			t.Fatalf("app2's silent login with connection=directory: %s", errCode)
		}
	})
}
