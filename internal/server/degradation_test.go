package server_test

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestAStorageFailureIsAnsweredInTheProtocol: when storage fails under a session-bearing
// /authorize, the application gets server_error with state and iss, at its redirect URI or
// by web_message, never an error page that a silent renewal's hidden iframe waits on.
func TestAStorageFailureIsAnsweredInTheProtocol(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	app1, spa := e.rp("app1", "app1-secret"), e.rp("spa", "")
	app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	if err := e.store.Close(); err != nil {
		t.Fatalf("close storage: %v", err)
	}

	t.Run("a silent login gets server_error at the redirect URI", func(t *testing.T) {
		if _, _, errCode := app1.silent(t, b); errCode != "server_error" {
			t.Errorf("error = %q, want server_error", errCode)
		}
	})
	t.Run("an interactive request gets server_error at the redirect URI too", func(t *testing.T) {
		l := newLogin()
		if got := app1.authError(t, l, b.get(app1.authURL(l))); got != "server_error" {
			t.Errorf("error = %q, want server_error", got)
		}
	})
	t.Run("a silent renewal by web_message gets server_error posted to its origin", func(t *testing.T) {
		l := newLogin()
		p := b.get(spa.authURL(l, oauth2.SetAuthURLParam("response_mode", "web_message"), oauth2.SetAuthURLParam("prompt", "none")))
		if p.status != http.StatusOK || !strings.Contains(p.body, `"server_error"`) || !strings.Contains(p.body, l.state) {
			t.Errorf("status %d body:\n%s", p.status, p.body)
		}
	})
}
