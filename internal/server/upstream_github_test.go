package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

// TestSignInThroughGitHub signs in through a GitHub connection. GitHub cannot be reached
// from here, so a stand-in (a mock, by necessity) serves the web flow's two endpoints and
// the two REST calls the connector makes; the server, its storage and the connector are real.
func TestSignInThroughGitHub(t *testing.T) {
	mux := http.NewServeMux()
	gh := httptest.NewServer(mux)
	t.Cleanup(gh.Close)
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "gh-client" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {"gh-code"}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("code") != "gh-code" || r.Form.Get("code_verifier") == "" {
			_, _ = w.Write([]byte(`{"error":"bad_verification_code"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"gho_test","token_type":"bearer"}`))
	})
	mux.HandleFunc("GET /api/v3/user", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"login":"octocat","id":583231,"name":"The Octocat"}`))
	})
	mux.HandleFunc("GET /api/v3/user/emails", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`[{"email":"octo@example.com","primary":true,"verified":true}]`))
	})

	e := newEnv(t, func(c *config.Config) {
		c.Connections = append(c.Connections, config.Connection{Name: "gh", Type: config.ConnectionGitHub, DisplayName: "GitHub",
			GitHub: &config.GitHubConnection{ClientID: "gh-client", ClientSecret: "gh-secret", BaseURL: gh.URL}})
		slices.SortFunc(c.Connections, func(a, b config.Connection) int { return strings.Compare(a.Name, b.Name) })
		for i := range c.Clients {
			if c.Clients[i].ID == "app1" {
				c.Clients[i].Connections = []string{"gh", "people", "staff"}
			}
		}
	})
	app1 := e.rp("app1", "app1-secret")
	b := e.browser()
	l := newLogin()
	p := b.get(app1.authURL(l, oauthConnection("gh")))
	if p.location == nil || !strings.HasPrefix(p.location.String(), gh.URL+"/login/oauth/authorize?") {
		t.Fatalf("connection=gh should go to GitHub's authorize URL, got status %d location %v:\n%s", p.status, p.location, p.body)
	}
	// The stand-in redirects straight back (the user authorized the app before).
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(p.location.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := resp.Location()
	if err != nil {
		t.Fatalf("GitHub stand-in did not redirect back: %v", err)
	}
	_, idt := app1.exchange(t, l, app1.callback(t, l, b.get(back.String())))
	var claims struct {
		Email string `json:"email"`
		ACR   string `json:"acr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	// This server did not check a password, so acr must not say it did.
	if idt.Subject != "gh|583231" || claims.Email != "octo@example.com" || claims.ACR != "urn:hallpass:acr:federated" {
		t.Fatalf("sub=%q claims=%+v", idt.Subject, claims)
	}
}
