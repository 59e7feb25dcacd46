package server_test

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

// startTLSSMTPServer starts aiosmtpd with a certificate of ca for 127.0.0.1: STARTTLS
// required before any mail (security STARTTLS), or TLS from the first byte (TLS).
func startTLSSMTPServer(t *testing.T, ca *conntest.CA, security string) *smtpServer {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, content := range map[string]string{cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if security == config.EmailTLS {
		return startSMTPServer(t, "--smtpscert", cert, "--smtpskey", key)
	}
	return startSMTPServer(t, "--tlscert", cert, "--tlskey", key)
}

func TestMailTravelsOverTLSToARelayOfAPrivateCA(t *testing.T) {
	relayCA, otherCA := conntest.NewCA(t), conntest.NewCA(t)
	for _, tc := range []struct {
		name, security string
		trusted        *conntest.CA
		delivered      bool
	}{
		{"with STARTTLS and the relay's CA trusted, the verification link arrives", config.EmailSTARTTLS, relayCA, true},
		{"with implicit TLS and the relay's CA trusted, the verification link arrives", config.EmailTLS, relayCA, true},
		{"with STARTTLS and another CA trusted, nothing is sent and the failure is logged", config.EmailSTARTTLS, otherCA, false},
		{"with implicit TLS and only the system's CAs, nothing is sent and the failure is logged", config.EmailTLS, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smtp := startTLSSMTPServer(t, relayCA, tc.security)
			logs := &logbuf.Buffer{}
			e := newEnvWithOptions(t, []server.Option{server.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, func(c *config.Config) {
				c.Email = &config.Email{Host: "127.0.0.1", Port: smtp.port, Security: tc.security, From: "sso@example.com"}
				if tc.trusted != nil {
					c.Email.RootCA = tc.trusted.CertPEM
				}
			})
			_, address, _ := signUpWithEmail(t, e, e.browser(), "erin")
			if tc.delivered {
				smtp.waitForLink(t, address, "/verify-email", 1)
				return
			}
			for deadline := time.Now().Add(15 * time.Second); !strings.Contains(logs.String(), "mail failed"); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no mail failure was logged:\n%s", logs.String())
				}
			}
			if !strings.Contains(logs.String(), "certificate signed by unknown authority") {
				t.Errorf("the logged failure does not name the untrusted certificate:\n%s", logs.String())
			}
			if got := smtp.messagesTo(t, address); len(got) != 0 {
				t.Fatalf("%d messages reached a relay whose certificate is not trusted", len(got))
			}
		})
	}
}

// signUpWithEmail signs a fresh user up to app2 in b: name with a random suffix (a shared
// PostgreSQL database keeps users between runs), an address of their own and the password
// "the first password". It returns the username, the address and app2's ID token.
func signUpWithEmail(t *testing.T, e *env, b *browser, name string) (user, address string, idToken *oidc.IDToken) {
	t.Helper()
	rp := e.rp("app2", "app2-secret")
	user = fmt.Sprintf("%s-%d", name, rand.Int64())
	address = user + "@example.com"
	l := newLogin()
	action, form := formFields(t, b.get(unescapeHTML(signupLinkRe.FindStringSubmatch(b.get(rp.authURL(l)).body)[1])))
	form.Set("username", user)
	form.Set("email", address)
	form.Set("password", "the first password")
	_, idToken = rp.exchange(t, l, rp.callback(t, l, b.post(action, form)))
	return user, address, idToken
}
