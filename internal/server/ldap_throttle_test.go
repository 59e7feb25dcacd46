package server_test

import (
	"net/http"
	"testing"

	"github.com/hallpass/hallpass/internal/connector/conntest"
)

// TestLDAPUsernameVariantsShareOneThrottle checks, against a real slapd, that whitespace
// and case variants of a username, and the width and case spellings the directory itself
// matches, are one user to the throttle and to the directory.
func TestLDAPUsernameVariantsShareOneThrottle(t *testing.T) {
	e, _ := upstreamEnv(t)
	app1 := e.rp("app1", "app1-secret")
	attempt := func(b *browser, username, password string) page {
		return b.submitLogin(b.get(app1.authURL(newLogin(), oauthConnection("directory"))), username, password)
	}
	tests := []struct {
		name     string
		failures []string
	}{
		{name: "leading, trailing and upper-case variants count on alice's bucket", failures: []string{" alice", "alice ", "ALICE ", "alice", " Alice\t"}},
		{name: "inner whitespace runs are collapsed before counting", failures: []string{"alice  smith", "alice smith", "alice\tsmith", " ALICE SMITH", "alice \t smith"}},
		// The directory folds width and case by its own rules, which no local folding
		// matches exactly (Unicode folds "İ" to "i̇", slapd to "i"): the throttle counts on
		// the entry the directory resolves.
		{name: "full-width and dotted-capital spellings the directory matches count on alice's bucket", failures: []string{"ａlice", "ALİCE", "alice", "ａｌｉｃｅ", "ＡＬİＣＥ"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			for _, u := range tt.failures {
				if p := attempt(b, u, "wrong"); p.status != http.StatusUnauthorized {
					t.Fatalf("%q: status %d, want 401", u, p.status)
				}
			}
			want := tt.failures[1]
			if p := attempt(b, want, "wrong"); p.status != http.StatusTooManyRequests {
				t.Fatalf("after five failures of variants, %q: status %d, want 429", want, p.status)
			}
		})
	}
	for _, variant := range []string{"  ALICE ", "ａlice", "ALİCE"} {
		t.Run("the spelling "+variant+" signs in as the directory's user", func(t *testing.T) {
			b := e.browser()
			_, idt := app1.signIn(t, b, variant, conntest.LDAPAlicePass, oauthConnection("directory"))
			if idt.Subject != "directory|alice" {
				t.Fatalf("sub = %q, want directory|alice", idt.Subject)
			}
		})
	}
}
