package ldap_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/connector/ldap"
)

func directoryConfig(s *conntest.Slapd, startTLS bool) config.LDAPConnection {
	u := s.LDAPSURL
	if startTLS {
		u = s.LDAPURL
	}
	return config.LDAPConnection{
		URL: u, StartTLS: startTLS, RootCA: s.CA.CertPEM,
		BindDN: conntest.LDAPServiceDN, BindPassword: conntest.LDAPServicePass,
		UserBaseDN: conntest.LDAPSuffix, UserFilter: "(objectClass=inetOrgPerson)", UsernameAttr: "uid",
		GroupBaseDN: conntest.LDAPGroupsDN,
	}
}

func TestLoginAgainstSlapd(t *testing.T) {
	s := conntest.StartSlapd(t)
	ctx := context.Background()
	for _, transport := range []struct {
		name     string
		startTLS bool
	}{{"over StartTLS", true}, {"over LDAPS", false}} {
		t.Run(transport.name, func(t *testing.T) {
			c, err := ldap.Open(directoryConfig(s, transport.startTLS), connector.Options{})
			if err != nil {
				t.Fatal(err)
			}
			id, ok, err := c.Login(ctx, "alice", conntest.LDAPAlicePass)
			if err != nil || !ok {
				t.Fatalf("alice's login: ok=%v err=%v", ok, err)
			}
			want := connector.Identity{UserID: "alice", Username: "alice", Name: "Alice Liddell", Email: "alice@example.org", EmailVerified: true, Groups: []string{"admins", "devs"}}
			if id.UserID != want.UserID || id.Username != want.Username || id.Name != want.Name || id.Email != want.Email || !id.EmailVerified || !slices.Equal(id.Groups, want.Groups) {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
		})
	}

	c, err := ldap.Open(directoryConfig(s, true), connector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the directory's spelling of the username is the one the subject uses", func(t *testing.T) {
		id, ok, err := c.Login(ctx, "ALICE", conntest.LDAPAlicePass)
		if err != nil || !ok || id.UserID != "alice" {
			t.Fatalf("login as ALICE: id=%q ok=%v err=%v", id.UserID, ok, err)
		}
	})
	t.Run("a user in no group has no groups", func(t *testing.T) {
		id, ok, err := c.Login(ctx, "bob", conntest.LDAPBobPass)
		if err != nil || !ok || len(id.Groups) != 0 {
			t.Fatalf("bob: ok=%v err=%v groups=%v", ok, err, id.Groups)
		}
	})

	refused := []struct{ name, username, password string }{
		{"a wrong password is refused", "alice", "wrong"},
		{"an unknown user is refused", "nobody", conntest.LDAPAlicePass},
		{"an empty password is refused, since the bind would be anonymous", "alice", ""},
		{"an empty username is refused", "", conntest.LDAPAlicePass},
		{"an entry the user filter excludes is refused", "mallory", "mallory-secret"},
		{"a wildcard in the username matches nothing", "al*", conntest.LDAPAlicePass},
		{"a lone wildcard matches nothing", "*", conntest.LDAPAlicePass},
		{"a filter injection in the username matches nothing", "alice)(uid=*", conntest.LDAPAlicePass},
		{"an injection that closes the user filter matches nothing", "*)(objectClass=*))(|(uid=*", conntest.LDAPAlicePass},
		{"a trailing backslash is escaped and matches nothing", `alice\`, conntest.LDAPAlicePass},
		{"a NUL byte matches nothing", "alice\x00", conntest.LDAPAlicePass},
		{"an over-long username is refused without a search", strings.Repeat("a", 2000), conntest.LDAPAlicePass},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := c.Login(ctx, tc.username, tc.password)
			if err != nil {
				t.Fatalf("login error (want a plain refusal): %v", err)
			}
			if ok {
				t.Fatal("login succeeded")
			}
		})
	}
}

func TestTheServiceAccountAndTheTransportAreChecked(t *testing.T) {
	s := conntest.StartSlapd(t)
	other := conntest.NewCA(t)
	cases := []struct {
		name    string
		mutate  func(*config.LDAPConnection)
		openErr string
		loginEr string
	}{
		{name: "an empty service password is refused, since it would bind anonymously", mutate: func(c *config.LDAPConnection) { c.BindPassword = "" }, openErr: "anonymous"},
		{name: "ldap:// without StartTLS is refused, since the password would travel in clear", mutate: func(c *config.LDAPConnection) { c.StartTLS = false }, openErr: "startTLS"},
		{name: "a wrong service password fails the login with an error", mutate: func(c *config.LDAPConnection) { c.BindPassword = "wrong" }, loginEr: "bind as the service account"},
		{name: "a directory certificate from another CA is not trusted", mutate: func(c *config.LDAPConnection) { c.RootCA = other.CertPEM }, loginEr: "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := directoryConfig(s, true)
			tc.mutate(&cfg)
			c, err := ldap.Open(cfg, connector.Options{})
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("open error = %v, want one mentioning %q", err, tc.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, ok, err := c.Login(context.Background(), "alice", conntest.LDAPAlicePass)
			if ok || err == nil || !strings.Contains(err.Error(), tc.loginEr) {
				t.Fatalf("login ok=%v err=%v, want an error mentioning %q", ok, err, tc.loginEr)
			}
		})
	}
}
