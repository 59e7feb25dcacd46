package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

func TestParallelWrongPasswordsAreVerifiedAtMostTheBudget(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	action, form := formFields(t, b.get(rp.authURL(newLogin())))
	form.Set("username", "alice")
	form.Set("password", "wrong password")

	const n = 30
	statuses := make([]int, n)
	retryAfter := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := b.post(action, form)
			statuses[i], retryAfter[i] = p.status, p.header.Get("Retry-After")
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for i, s := range statuses {
		counts[s]++
		switch s {
		case http.StatusUnauthorized, http.StatusTooManyRequests:
		case http.StatusServiceUnavailable:
			if retryAfter[i] == "" {
				t.Errorf("a 503 without Retry-After")
			}
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	verified := metricValue(t, e, `hallpass_logins_total{result="failure"}`)
	if verified > 5 || float64(counts[http.StatusUnauthorized]) != verified {
		t.Fatalf("%v passwords were verified (statuses %v), want at most the budget of 5", verified, counts)
	}
	// A loaded machine may have turned some attempts away as busy (503) before they were
	// verified; those spent no budget. Spend what is left one at a time.
	for ; verified < 5; verified++ {
		p := b.post(action, form)
		if p.status == http.StatusTooManyRequests {
			break // the throttle already holds the user back
		}
		if p.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %v of the budget: status %d, want 401 or 429", verified+1, p.status)
		}
	}
	// The budget is spent: the right password is throttled too.
	if p := b.submitLogin(b.get(rp.authURL(newLogin())), "alice", alicePassword); p.status != http.StatusTooManyRequests {
		t.Fatalf("after the budget: status %d, want 429", p.status)
	}
}

func TestSignUpsAreThrottledPerClientAddress(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	loginPage := b.get(rp.authURL(newLogin()))
	link := signupLinkRe.FindStringSubmatch(loginPage.body)
	if link == nil {
		t.Fatalf("no sign-up link:\n%s", loginPage.body)
	}
	action, form := formFields(t, b.get(unescapeHTML(link[1])))
	form.Set("username", "alice") // taken: each attempt is answered without creating anyone
	form.Set("password", "long enough password")
	for i := range 10 {
		if p := b.post(action, form); p.status != http.StatusConflict {
			t.Fatalf("sign-up %d: status %d, want 409", i+1, p.status)
		}
	}
	if p := b.post(action, form); p.status != http.StatusTooManyRequests {
		t.Fatalf("11th sign-up from one address: status %d, want 429", p.status)
	}
	other := e.browser()
	link = signupLinkRe.FindStringSubmatch(other.get(rp.authURL(newLogin())).body)
	action, form = formFields(t, other.get(unescapeHTML(link[1])))
	form.Set("username", "alice")
	form.Set("password", "long enough password")
	if p := other.post(action, form); p.status != http.StatusConflict {
		t.Fatalf("another address: status %d, want 409", p.status)
	}
}

func TestLoginThrottlingKeys(t *testing.T) {
	type attempt struct {
		xff      string // the browser's X-Forwarded-For ("" = a fresh random address)
		password string
		want     int // 0: signed in (a redirect to the application)
	}
	wrong := func(xff string) attempt { return attempt{xff, "nope", http.StatusUnauthorized} }
	fiveWrong := func(xff func(i int) string) []attempt {
		var out []attempt
		for i := range 5 {
			out = append(out, wrong(xff(i)))
		}
		return out
	}
	same := func(s string) func(int) string { return func(int) string { return s } }
	tests := []struct {
		name           string
		trustedProxies []string // nil: the harness's loopback
		// seedIP counts earlier failures of one address (the 100-failure budget is too slow
		// to reach with real password hashes under the race detector).
		seedIP   string
		seed     int
		attempts []attempt
	}{
		{name: "five failures of a user from one address throttle the user there",
			attempts: append(fiveWrong(same("198.51.100.1")), attempt{"198.51.100.1", bobPassword, http.StatusTooManyRequests})},
		{name: "five failures of a user from one address do not lock the user out elsewhere",
			attempts: append(fiveWrong(same("198.51.100.1")), attempt{"198.51.100.2", bobPassword, 0})},
		{name: "twenty failures of a user from many addresses throttle the user everywhere",
			attempts: func() []attempt {
				var out []attempt
				for range 20 {
					out = append(out, wrong(""))
				}
				return append(out, attempt{"", bobPassword, http.StatusTooManyRequests})
			}()},
		{name: "a hundred failures from one address throttle every user there but nowhere else",
			seedIP: "198.51.100.9", seed: 99,
			attempts: []attempt{wrong("198.51.100.9"), {"198.51.100.9", bobPassword, http.StatusTooManyRequests}, {"198.51.100.10", bobPassword, 0}}},
		{name: "without trusted proxies X-Forwarded-For is ignored and the peer address is the key",
			trustedProxies: []string{},
			attempts:       append(fiveWrong(func(i int) string { return fmt.Sprintf("198.51.100.%d", i+20) }), attempt{"198.51.100.99", bobPassword, http.StatusTooManyRequests})},
		{name: "entries left of the right-most untrusted address cannot change the key",
			trustedProxies: []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8"},
			attempts: append(fiveWrong(func(i int) string { return fmt.Sprintf("192.0.2.%d, 203.0.113.7, 10.1.2.3", i) }),
				attempt{"203.0.113.7,10.9.9.9", bobPassword, http.StatusTooManyRequests},
				attempt{"203.0.113.8, 10.1.2.3", bobPassword, 0})},
		{name: "IPv6 addresses of one /64 are one client",
			attempts: append(fiveWrong(func(i int) string { return fmt.Sprintf("2001:db8:5:6::%x", i+1) }),
				attempt{"2001:db8:5:6:ffff::1", bobPassword, http.StatusTooManyRequests},
				attempt{"2001:db8:5:7::1", bobPassword, 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.Config) {
				if tt.trustedProxies != nil {
					c.TrustedProxies = tt.trustedProxies
				}
			})
			for range tt.seed {
				if _, err := e.store.RecordLoginFailure(context.Background(), "ip:"+tt.seedIP, e.clock.Now(), 15*time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			rp := e.rp("app2", "app2-secret")
			for i, a := range tt.attempts {
				b := e.browser()
				if a.xff != "" {
					b.ip = a.xff
				}
				p := b.submitLogin(b.get(rp.authURL(newLogin())), "bob", a.password)
				if a.want == 0 && p.location == nil || a.want != 0 && p.status != a.want {
					t.Fatalf("attempt %d (X-Forwarded-For %q): status %d location %v, want %d", i+1, a.xff, p.status, p.location, a.want)
				}
			}
		})
	}
}

func TestATrustedProxyThatIsNeitherACIDRNorAnAddressIsRefused(t *testing.T) {
	e := newEnv(t)
	cfg := *e.srv.Config()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "proxy.internal"}
	keys, _ := testKeys()
	if err := e.srv.Apply(&cfg, keys); err == nil || !strings.Contains(err.Error(), "proxy.internal") {
		t.Fatalf("Apply: %v, want an error naming the entry", err)
	}
}
