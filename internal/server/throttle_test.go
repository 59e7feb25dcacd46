package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

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
