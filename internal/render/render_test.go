package render

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

const hash = "$argon2id$v=19$m=19456,t=2,p=1$aGFsbHBhc3MtZGVtby1zYQ$jdYK97oOgib4lBTl/s+JFaRwPQYPEl6Yn1+HpnmStUI"

func server() *hallpassv1.SSOServer {
	return &hallpassv1.SSOServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sso", Name: "main"},
		Spec:       hallpassv1.SSOServerSpec{Issuer: "https://sso.example.com"},
	}
}

func client(name, id string, typ hallpassv1.ClientType, created int64) Client {
	c := &hallpassv1.SSOClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, CreationTimestamp: metav1.Unix(created, 0)},
		Spec: hallpassv1.SSOClientSpec{
			Type:         typ,
			RedirectURIs: []string{"https://" + name + ".example.com/b", "https://" + name + ".example.com/a"},
		},
	}
	out := Client{Client: c, ID: id}
	if !typ.Public() {
		out.SecretDigests = []string{digest.Of("secret-of-" + name)}
	}
	return out
}

func database(name, secret string) *hallpassv1.IdentityConnection {
	return &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sso", Name: name},
		Spec: hallpassv1.IdentityConnectionSpec{
			Type:     hallpassv1.ConnectionDatabase,
			Database: &hallpassv1.DatabaseConnection{UsersSecretRef: &hallpassv1.SecretKeyReference{Name: secret, Key: "users.yaml"}},
		},
	}
}

func users(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString("- username: " + n + "\n  passwordHash: " + hash + "\n")
	}
	return b.String()
}

func TestRender(t *testing.T) {
	values := Values{
		{Kind: KindSecret, Namespace: "sso", Name: "staff-users", Key: "users.yaml"}:    users("zoe", "adam"),
		{Kind: KindSecret, Namespace: "sso", Name: "customer-users", Key: "users.yaml"}: users("carol"),
		{Kind: KindSecret, Namespace: "sso", Name: "pg", Key: "dsn"}:                    "postgres://db/sso",
		{Kind: KindSecret, Namespace: "sso", Name: "smtp", Key: "password"}:             "mail-secret",
		{Kind: KindSecret, Namespace: "sso", Name: "smtp", Key: "ca.crt"}:               relayCAPEM,
	}
	cases := map[string]struct {
		in    func() Input
		check func(t *testing.T, out *Output)
		err   string
	}{
		"an empty server gets the documented defaults": {
			in: func() Input { return Input{Server: server()} },
			check: func(t *testing.T, out *Output) {
				c := out.Config
				expect(t, c.Session.AbsoluteLifetime.Duration == 168*time.Hour && c.Session.IdleTimeout.Duration == 72*time.Hour, "session defaults: %+v", c.Session)
				expect(t, c.Tokens.RefreshReuseInterval.Duration == 3*time.Second && c.Tokens.AuthorizationCode.Duration == time.Minute, "token defaults: %+v", c.Tokens)
				expect(t, c.Storage == config.Storage{Type: config.StorageSQLite, SQLitePath: SQLitePath}, "storage: %+v", c.Storage)
				expect(t, c.Signing.Algorithm == "RS256", "algorithm %q", c.Signing.Algorithm)
			},
		},
		"the second-factor policy, a client's requireMFA and a connection's trust in the upstream's amr reach the config": {
			in: func() Input {
				srv := server()
				srv.Spec.MFA = hallpassv1.MFA{Policy: hallpassv1.MFARequired, Factors: []hallpassv1.FactorKind{hallpassv1.FactorTOTP},
					EnrolmentGrace: "336h"}
				strict := client("strict", "strict-id", hallpassv1.RegularWebApp, 1)
				strict.Client.Spec.RequireMFA = true
				corp := &hallpassv1.IdentityConnection{
					ObjectMeta: metav1.ObjectMeta{Namespace: "sso", Name: "corp"},
					Spec: hallpassv1.IdentityConnectionSpec{Type: hallpassv1.ConnectionOIDC, TrustUpstreamMFA: true,
						OIDC: &hallpassv1.OIDCConnection{Issuer: "https://idp.example.com",
							ClientIDRef:     hallpassv1.SecretKeyReference{Name: "corp-oidc", Key: "id"},
							ClientSecretRef: hallpassv1.SecretKeyReference{Name: "corp-oidc", Key: "secret"}}},
				}
				return Input{Server: srv, Clients: []Client{strict}, Connections: []*hallpassv1.IdentityConnection{corp},
					Values: Values{
						{Kind: KindSecret, Namespace: "sso", Name: "corp-oidc", Key: "id"}:     "hp",
						{Kind: KindSecret, Namespace: "sso", Name: "corp-oidc", Key: "secret"}: "s3cret",
					}}
			},
			check: func(t *testing.T, out *Output) {
				c := out.Config
				expect(t, c.MFA.Policy == config.MFARequired && len(c.MFA.Factors) == 1 && c.MFA.Allows(config.FactorTOTP) &&
					c.MFA.EnrolmentGrace.Duration == 14*24*time.Hour, "mfa: %+v", c.MFA)
				expect(t, len(c.Clients) == 1 && c.Clients[0].RequireMFA, "clients: %+v", c.Clients)
				expect(t, len(c.Connections) == 1 && c.Connections[0].TrustUpstreamMFA, "connections: %+v", c.Connections)
			},
		},
		"clients and connections come out sorted, whatever the input order": {
			in: func() Input {
				return Input{
					Server:      server(),
					Connections: []*hallpassv1.IdentityConnection{database("staff", "staff-users"), database("customers", "customer-users")},
					Clients:     []Client{client("web", "zz", hallpassv1.RegularWebApp, 1), client("spa", "aa", hallpassv1.SinglePageApp, 2)},
					Values:      values,
				}
			},
			check: func(t *testing.T, out *Output) {
				c := out.Config
				expect(t, c.Clients[0].ID == "aa" && c.Clients[1].ID == "zz", "clients %v", c.Clients)
				expect(t, c.Connections[0].Name == "customers" && c.Connections[1].Name == "staff", "connections %v", c.Connections)
				web, _ := c.Client("zz")
				expect(t, web.RedirectURIs[0] == "https://web.example.com/a", "redirect URIs sorted: %v", web.RedirectURIs)
				expect(t, strings.Join(web.Connections, ",") == "customers,staff", "a client without a list may use every connection: %v", web.Connections)
				staff, _ := c.Connection("staff")
				expect(t, staff.Database.Users[0].Username == "adam", "users sorted: %v", staff.Database.Users)
			},
		},
		"a client listing connections gets only those the server serves": {
			in: func() Input {
				c := client("web", "id", hallpassv1.RegularWebApp, 1)
				c.Client.Spec.Connections = []string{"staff", "gone"}
				return Input{Server: server(), Connections: []*hallpassv1.IdentityConnection{database("staff", "staff-users")}, Clients: []Client{c}, Values: values}
			},
			check: func(t *testing.T, out *Output) {
				web, _ := out.Config.Client("id")
				expect(t, strings.Join(web.Connections, ",") == "staff", "connections %v", web.Connections)
			},
		},
		"a connection whose Secret does not resolve is left out and named, the rest is served": {
			in: func() Input {
				return Input{Server: server(), Connections: []*hallpassv1.IdentityConnection{database("staff", "staff-users"), database("broken", "missing")}, Values: values}
			},
			check: func(t *testing.T, out *Output) {
				expect(t, len(out.Config.Connections) == 1 && out.Config.Connections[0].Name == "staff", "connections %v", out.Config.Connections)
				expect(t, strings.Join(out.SkippedConnections, ",") == "broken", "skipped %v", out.SkippedConnections)
			},
		},
		"a client's grant types are served sorted, and none declared stays none (its type's defaults)": {
			in: func() Input {
				c := client("cli", "cli", hallpassv1.Native, 1)
				c.Client.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantDeviceCode, hallpassv1.GrantAuthorizationCode, hallpassv1.GrantRefreshToken}
				return Input{Server: server(), Clients: []Client{c, client("web", "web", hallpassv1.RegularWebApp, 2)}}
			},
			check: func(t *testing.T, out *Output) {
				cli, _ := out.Config.Client("cli")
				web, _ := out.Config.Client("web")
				want := []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantDeviceCode}
				expect(t, slices.Equal(cli.GrantTypes, want), "grant types %v, want %v", cli.GrantTypes, want)
				expect(t, cli.AllowsGrant(config.GrantDeviceCode), "the device grant is not allowed")
				expect(t, web.GrantTypes == nil && web.AllowsGrant(config.GrantAuthorizationCode) && !web.AllowsGrant(config.GrantDeviceCode),
					"a client declaring none: grant types %v", web.GrantTypes)
			},
		},
		"a client in a secret rotation overlap accepts both secrets, in a stable order": {
			in: func() Input {
				c := client("web", "id", hallpassv1.RegularWebApp, 1)
				c.SecretDigests = []string{digest.Of("new-secret"), digest.Of("old-secret")}
				return Input{Server: server(), Clients: []Client{c}}
			},
			check: func(t *testing.T, out *Output) {
				web, _ := out.Config.Client("id")
				want := []string{digest.Of("new-secret"), digest.Of("old-secret")}
				if want[0] > want[1] {
					want[0], want[1] = want[1], want[0]
				}
				expect(t, len(web.SecretSHA256) == 2 && web.SecretSHA256[0] == want[0] && web.SecretSHA256[1] == want[1], "digests %v", web.SecretSHA256)
				expect(t, !bytes.Contains(out.Bytes, []byte("new-secret")) && !bytes.Contains(out.Bytes, []byte("old-secret")), "the config holds digests only")
			},
		},
		"of two clients with one client ID neither is served, and both are named with the reason": {
			in: func() Input {
				return Input{Server: server(), Clients: []Client{client("copy", "same", hallpassv1.RegularWebApp, 20), client("original", "same", hallpassv1.RegularWebApp, 10), client("other", "b", hallpassv1.RegularWebApp, 10)}}
			},
			check: func(t *testing.T, out *Output) {
				expect(t, len(out.Config.Clients) == 1 && out.Config.Clients[0].Name == "other", "clients %v", out.Config.Clients)
				var names []string
				for _, l := range out.LeftOut {
					expect(t, l.Reason == ReasonDuplicateClientID, "reason %q", l.Reason)
					names = append(names, l.Client.Name)
				}
				expect(t, strings.Join(names, ",") == "copy,original", "left out %v", names)
			},
		},
		"a single-page app is public and must use PKCE, a regular web app keeps only a digest": {
			in: func() Input {
				return Input{Server: server(), Clients: []Client{client("spa", "a", hallpassv1.SinglePageApp, 1), client("web", "b", hallpassv1.RegularWebApp, 1)}}
			},
			check: func(t *testing.T, out *Output) {
				spa, _ := out.Config.Client("a")
				web, _ := out.Config.Client("b")
				expect(t, spa.RequirePKCE && len(spa.SecretSHA256) == 0 && spa.SingleSignOn, "spa %+v", spa)
				expect(t, len(web.SecretSHA256) == 1 && len(web.SecretSHA256[0]) == 64, "web %+v", web)
				expect(t, !bytes.Contains(out.Bytes, []byte("secret-of-web")), "a client secret reached the config")
			},
		},
		"single sign-on switched off reaches the config": {
			in: func() Input {
				c := client("web", "id", hallpassv1.RegularWebApp, 1)
				c.Client.Spec.SingleSignOn = new(false)
				return Input{Server: server(), Clients: []Client{c}}
			},
			check: func(t *testing.T, out *Output) {
				web, _ := out.Config.Client("id")
				expect(t, !web.SingleSignOn, "singleSignOn still on")
			},
		},
		"Postgres storage takes its DSN from the referenced Secret": {
			in: func() Input {
				s := server()
				s.Spec.Storage = hallpassv1.Storage{Type: hallpassv1.StoragePostgres, Postgres: &hallpassv1.PostgresStorage{DSNSecretRef: hallpassv1.SecretKeyReference{Name: "pg", Key: "dsn"}}}
				return Input{Server: s, Values: values}
			},
			check: func(t *testing.T, out *Output) {
				expect(t, out.Config.Storage == config.Storage{Type: config.StoragePostgres, PostgresDSN: "postgres://db/sso"}, "storage %+v", out.Config.Storage)
			},
		},
		"Postgres storage without its Secret is an error naming the field": {
			in: func() Input {
				s := server()
				s.Spec.Storage = hallpassv1.Storage{Type: hallpassv1.StoragePostgres, Postgres: &hallpassv1.PostgresStorage{DSNSecretRef: hallpassv1.SecretKeyReference{Name: "nope", Key: "dsn"}}}
				return Input{Server: s, Values: values}
			},
			err: `spec.storage.postgres.dsnSecretRef: Secret "nope" has no key "dsn"`,
		},
		"email takes its SMTP password and the relay's CA from the referenced Secret and defaults to STARTTLS on 587": {
			in: func() Input {
				s := server()
				s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", From: "no-reply@example.com", Username: "sso",
					PasswordSecretRef: &hallpassv1.SecretKeyReference{Name: "smtp", Key: "password"},
					RootCARef:         &hallpassv1.SecretKeyReference{Name: "smtp", Key: "ca.crt"}}
				return Input{Server: s, Values: values}
			},
			check: func(t *testing.T, out *Output) {
				want := config.Email{Host: "smtp.example.com", Port: 587, Security: config.EmailSTARTTLS, From: "no-reply@example.com", Username: "sso",
					Password: "mail-secret", RootCA: relayCAPEM}
				expect(t, out.Config.Email != nil && *out.Config.Email == want, "email %+v", out.Config.Email)
			},
		},
		"email without its password Secret is an error naming the field": {
			in: func() Input {
				s := server()
				s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", From: "no-reply@example.com", Username: "sso",
					PasswordSecretRef: &hallpassv1.SecretKeyReference{Name: "nope", Key: "password"}}
				return Input{Server: s, Values: values}
			},
			err: `spec.email.passwordSecretRef: Secret "nope" has no key "password"`,
		},
		"session and token lifetimes come from the server": {
			in: func() Input {
				s := server()
				s.Spec.Session = hallpassv1.SessionPolicy{AbsoluteLifetime: "10h", IdleTimeout: "30m"}
				s.Spec.Tokens.IDToken = "5m"
				s.Spec.SigningKeys.Algorithm = "ES256"
				return Input{Server: s}
			},
			check: func(t *testing.T, out *Output) {
				c := out.Config
				expect(t, c.Session.AbsoluteLifetime.Duration == 10*time.Hour && c.Session.IdleTimeout.Duration == 30*time.Minute, "session %+v", c.Session)
				expect(t, c.Tokens.IDToken.Duration == 5*time.Minute && c.Signing.Algorithm == "ES256", "tokens %+v, alg %s", c.Tokens, c.Signing.Algorithm)
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := Render(tc.in())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Parse(out.Bytes); err != nil {
				t.Fatalf("the server would refuse the rendered config: %v", err)
			}
			tc.check(t, out)
		})
	}
}

// TestRenderIsDeterministic renders the same resources, given in different orders, many
// times: the bytes must not change, or every reconcile would rewrite the config Secret.
func TestRenderIsDeterministic(t *testing.T) {
	values := Values{
		{Kind: KindSecret, Namespace: "sso", Name: "a", Key: "users.yaml"}: users("x", "y"),
		{Kind: KindSecret, Namespace: "sso", Name: "b", Key: "users.yaml"}: users("z"),
	}
	in := func(reverse bool) Input {
		conns := []*hallpassv1.IdentityConnection{database("one", "a"), database("two", "b")}
		clients := []Client{client("c1", "1", hallpassv1.RegularWebApp, 1), client("c2", "2", hallpassv1.SinglePageApp, 1), client("c3", "3", hallpassv1.MachineToMachine, 1)}
		clients[2].Client.Spec.RedirectURIs = nil
		if reverse {
			conns[0], conns[1] = conns[1], conns[0]
			clients[0], clients[2] = clients[2], clients[0]
		}
		apis := []*hallpassv1.SSOAPI{api("orders", "urn:orders", 1, grant("apps", nil, []string{"r", "w"})), api("billing", "urn:billing", 2, grant("apps", []string{"c3"}, []string{"r"}))}
		if reverse {
			apis[0], apis[1] = apis[1], apis[0]
		}
		return Input{Server: server(), Connections: conns, Clients: clients, APIs: apis, Values: values}
	}
	first, err := Render(in(false))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		out, err := Render(in(i%2 == 1))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes, first.Bytes) {
			t.Fatalf("render %d differs:\n%s\nvs\n%s", i, out.Bytes, first.Bytes)
		}
	}
}

func TestParseUsers(t *testing.T) {
	cases := map[string]struct {
		yaml string
		err  string
	}{
		"argon2id and bcrypt hashes are accepted":  {yaml: users("a") + "- username: b\n  passwordHash: $2b$10$abcdefghijklmnopqrstuu5YJ3Wl6b4yQp8s3sQ0g0jJqkqYqVwGq\n"},
		"a plain-text password is refused":         {yaml: "- username: a\n  passwordHash: hunter2\n", err: "passwordHash must be an argon2id"},
		"a user without a username is refused":     {yaml: "- passwordHash: " + hash + "\n", err: "username is empty"},
		"the same username twice is refused":       {yaml: users("a", "a"), err: `username "a" appears twice`},
		"a misspelt field is refused, not ignored": {yaml: "- username: a\n  passwordHash: " + hash + "\n  emial: a@example.com\n", err: "emial"},
		"something that is not a list is refused":  {yaml: "username: a\n", err: "parse users"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseUsers([]byte(tc.yaml))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the error reveals the password: %v", err)
			}
		})
	}
}

func TestGooglePresetFixesTheIssuer(t *testing.T) {
	conn := &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sso", Name: "google"},
		Spec: hallpassv1.IdentityConnectionSpec{Type: hallpassv1.ConnectionGoogle, Google: &hallpassv1.GoogleConnection{
			ClientIDRef:     hallpassv1.SecretKeyReference{Name: "g", Key: "id"},
			ClientSecretRef: hallpassv1.SecretKeyReference{Name: "g", Key: "secret"},
			HostedDomain:    "example.com",
		}},
	}
	out, err := Connection(conn, Values{{KindSecret, "sso", "g", "id"}: "cid", {KindSecret, "sso", "g", "secret"}: "csecret"})
	if err != nil {
		t.Fatal(err)
	}
	if out.OIDC.Issuer != GoogleIssuer || out.OIDC.HostedDomain != "example.com" || out.OIDC.ClientSecret != "csecret" || out.DisplayName != "google" {
		t.Fatalf("unexpected connection %+v", out.OIDC)
	}
	_, err = Connection(conn, Values{{KindSecret, "sso", "g", "id"}: "cid"})
	if err == nil || err.Error() != `Secret "g" has no key "secret" (or does not exist)` {
		t.Fatalf("missing secret error %v", err)
	}
}

func expect(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// relayCAPEM is a self-signed CA certificate, as a Secret holding an SMTP relay's CA has
// (only its PEM form is checked; it need not be valid today).
const relayCAPEM = `-----BEGIN CERTIFICATE-----
MIIBkzCCATmgAwIBAgIUYiHr7joaSnsgAF3ONxL3UbBEor8wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUUmVuZGVyIHRlc3QgcmVsYXkgQ0EwHhcNMjYxMjA3MDM0MjAw
WhcNMjYxMjA4MDM0MjAwWjAfMR0wGwYDVQQDDBRSZW5kZXIgdGVzdCByZWxheSBD
QTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABMa876GF4dmUdxr8BUDEekwvh9v6
TTbX2LI/vDC8Zm/HOnc0TW3Boogte3wZ1u0rJyY1wRy40UkOFmdcxZwj9qijUzBR
MB0GA1UdDgQWBBQw+5nqlhii9I4Yu7ZBXC9IjpZ5bDAfBgNVHSMEGDAWgBQw+5nq
lhii9I4Yu7ZBXC9IjpZ5bDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA
MEUCIQC8aMBE4qsC9wjmjnuhGqJbRIfBWA6ir5xOsVbAHiPd4gIgPOPK6JsiMXli
NHPefDNchZWTqyn+0LogG0d4R/8TAfI=
-----END CERTIFICATE-----
`
