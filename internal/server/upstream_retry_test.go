package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/server"
)

func TestAFailedUpstreamIsRetriedWithABackoffThatStartsAtOneSecond(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		want     time.Duration
	}{
		{"the first failure is retried after a second", 1, time.Second},
		{"the second after two seconds", 2, 2 * time.Second},
		{"the third after four", 3, 4 * time.Second},
		{"the fourth after eight", 4, 8 * time.Second},
		{"the fifth and later after fifteen at most", 5, 15 * time.Second},
		{"a long outage stays at fifteen", 1000, 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := server.UpstreamRetryDelay(tt.failures); got != tt.want {
				t.Errorf("delay after %d failures = %s, want %s", tt.failures, got, tt.want)
			}
		})
	}
}

// TestSignInThroughAnUpstreamWorksSoonAfterItComesBack: users try to sign in through an
// OIDC upstream (npm's oidc-provider) while it is down and get the error page; the peer then
// starts, and sign-in through it works within a few seconds, not half a minute.
func TestSignInThroughAnUpstreamWorksSoonAfterItComesBack(t *testing.T) {
	port := conntest.FreePort(t)
	var issuer string
	// The server runs on the real clock here: the backoff is what is measured.
	e := newEnvWithOptions(t, []server.Option{server.WithClock(time.Now)}, func(c *config.Config) {
		issuer = "http://127.0.0.1:" + strconv.Itoa(port)
		c.Connections = append(c.Connections, config.Connection{Name: "upstream", Type: config.ConnectionOIDC, DisplayName: "Upstream IdP",
			OIDC: &config.OIDCConnection{Issuer: issuer, ClientID: conntest.OIDCClientID, ClientSecret: conntest.OIDCClientSecret,
				Scopes: []string{"email", "openid", "profile"}}})
		slices.SortFunc(c.Connections, func(a, b config.Connection) int { return strings.Compare(a.Name, b.Name) })
		for i := range c.Clients {
			if c.Clients[i].ID == "app1" {
				c.Clients[i].Connections = append(c.Clients[i].Connections, "upstream")
			}
		}
	})
	app1 := e.rp("app1", "app1-secret")
	b := e.browser()
	toUpstream := func() (page, login) {
		l := newLogin()
		return b.get(app1.authURL(l, oauthConnection("upstream"))), l
	}

	// Users keep trying for three seconds of outage: three failures in a row.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if p, _ := toUpstream(); p.status != http.StatusBadGateway {
			t.Fatalf("with the upstream down: status %d, want 502:\n%s", p.status, p.body)
		}
	}
	conntest.StartOIDCProvider(t, conntest.OIDCProviderOptions{Port: port, RedirectURIs: []string{e.issuer + "/connections/upstream/callback"}})
	up := time.Now()

	var p page
	var l login
	for deadline := up.Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if p, l = toUpstream(); p.location != nil && strings.HasPrefix(p.location.String(), issuer+"/auth?") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sign-in still goes nowhere 10s after the upstream came back: status %d", p.status)
		}
	}
	took := time.Since(up)
	t.Logf("sign-in through the upstream worked again %s after it came back", took.Round(100*time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("sign-in through the upstream worked again %s after it came back, want within 5s", took.Round(100*time.Millisecond))
	}
	_, idt := app1.exchange(t, l, app1.callback(t, l, b.signInUpstream(p, "alice", conntest.OIDCAlicePass)))
	if idt.Subject != "upstream|alice" {
		t.Errorf("subject %q, want upstream|alice", idt.Subject)
	}
}
