package github_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/github"
)

const callbackURL = "http://127.0.0.1:1/connections/gh/callback"

// standIn is a stand-in for a GitHub Enterprise Server. GitHub's API cannot be reached
// from the machines these tests run on, so this is the one mock of the connector suite:
// it serves responses in the recorded shape of GitHub's documented endpoints (the OAuth
// web flow's /login/oauth/authorize and /login/oauth/access_token, and the REST API's
// /user, /user/emails, /user/orgs and /user/teams under /api/v3, paginated with Link
// headers), and checks what GitHub checks: client credentials, the code and PKCE.
type standIn struct {
	srv *httptest.Server

	mu         sync.Mutex
	challenges map[string]string // code -> code_challenge
	issued     int
	emails     string // JSON of /user/emails
	orgs       []string
	teams      [][2]string // org, slug
}

func newStandIn(t *testing.T) *standIn {
	t.Helper()
	s := &standIn{challenges: map[string]string{},
		emails: `[{"email":"octo@users.noreply.example","primary":false,"verified":true,"visibility":null},
		          {"email":"octo@example.com","primary":true,"verified":true,"visibility":"private"}]`,
		orgs:  []string{"acme", "other"},
		teams: [][2]string{{"acme", "platform"}, {"acme", "sre"}, {"other", "x"}},
	}
	mux := http.NewServeMux()
	// The user has authorized the app before, so GitHub redirects back at once.
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "gh-client" || q.Get("redirect_uri") != callbackURL || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.issued++
		code := fmt.Sprintf("code-%d", s.issued)
		s.challenges[code] = q.Get("code_challenge")
		s.mu.Unlock()
		http.Redirect(w, r, callbackURL+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		challenge, ok := s.challenges[r.Form.Get("code")]
		delete(s.challenges, r.Form.Get("code"))
		s.mu.Unlock()
		sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("client_id") != "gh-client" || r.Form.Get("client_secret") != "gh-secret" || !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			// GitHub answers 200 with an error body.
			_, _ = w.Write([]byte(`{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"gho_test","token_type":"bearer","scope":"read:org,read:user,user:email"}`))
	})
	api := func(path string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc("GET /api/v3"+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_test" {
				http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			h(w, r)
		})
	}
	api("/user", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"login":"octocat","id":583231,"node_id":"MDQ6VXNlcjU4MzIzMQ==","type":"User","name":"The Octocat","email":null}`))
	})
	api("/user/emails", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, _ = w.Write([]byte(s.emails))
	})
	// One item per page, so pagination is exercised.
	api("/user/orgs", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := make([]any, 0, len(s.orgs))
		for _, o := range s.orgs {
			items = append(items, map[string]any{"login": o, "id": len(o)})
		}
		page(w, r, s.srv.URL+"/api/v3/user/orgs", items)
	})
	api("/user/teams", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := make([]any, 0, len(s.teams))
		for _, t := range s.teams {
			items = append(items, map[string]any{"slug": t[1], "name": t[1], "organization": map[string]any{"login": t[0]}})
		}
		page(w, r, s.srv.URL+"/api/v3/user/teams", items)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func page(w http.ResponseWriter, r *http.Request, base string, items []any) {
	n := 1
	_, _ = fmt.Sscanf(r.URL.Query().Get("page"), "%d", &n)
	if n < len(items) {
		w.Header().Set("Link", fmt.Sprintf(`<%s?per_page=1&page=%d>; rel="next", <%s?per_page=1&page=%d>; rel="last"`, base, n+1, base, len(items)))
	}
	var out []any
	if n >= 1 && n <= len(items) {
		out = items[n-1 : n]
	}
	_ = json.NewEncoder(w).Encode(out)
}

// signIn runs the web flow: the authorization request, GitHub's redirect to the callback,
// and the callback.
func signIn(t *testing.T, c *github.Connector) (connector.Identity, error) {
	t.Helper()
	loginURL, private, err := c.LoginURL(context.Background(), "st")
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := resp.Location()
	if err != nil {
		t.Fatalf("no redirect back from the authorization endpoint (status %d)", resp.StatusCode)
	}
	id, _, err := c.HandleCallback(context.Background(), httptest.NewRequest(http.MethodGet, back.String(), nil), private)
	return id, err
}

func TestSignInWithGitHub(t *testing.T) {
	gh := newStandIn(t)
	open := func(t *testing.T, orgs ...config.GitHubOrg) *github.Connector {
		c, err := github.Open(config.GitHubConnection{ClientID: "gh-client", ClientSecret: "gh-secret", BaseURL: gh.srv.URL, Orgs: orgs},
			connector.Options{CallbackURL: callbackURL})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("a user signs in with their numeric ID, login and verified primary email", func(t *testing.T) {
		id, err := signIn(t, open(t))
		if err != nil {
			t.Fatal(err)
		}
		if id.UserID != "583231" || id.Username != "octocat" || id.Name != "The Octocat" || id.Email != "octo@example.com" || !id.EmailVerified || id.Groups != nil {
			t.Fatalf("identity = %+v", id)
		}
	})
	t.Run("a member of an allowed org gets its teams as groups", func(t *testing.T) {
		id, err := signIn(t, open(t, config.GitHubOrg{Name: "acme"}))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"acme", "acme:platform", "acme:sre"}; !slices.Equal(id.Groups, want) {
			t.Fatalf("groups = %v, want %v (every page of orgs and teams, only the allowed org)", id.Groups, want)
		}
	})
	t.Run("a member of an allowed team may sign in", func(t *testing.T) {
		if _, err := signIn(t, open(t, config.GitHubOrg{Name: "acme", Teams: []string{"sre"}})); err != nil {
			t.Fatal(err)
		}
	})
	refused := []struct {
		name string
		orgs []config.GitHubOrg
	}{
		{"a user outside every allowed org is refused", []config.GitHubOrg{{Name: "initech"}}},
		{"a member of the org outside the allowed teams is refused", []config.GitHubOrg{{Name: "acme", Teams: []string{"security"}}}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signIn(t, open(t, tc.orgs...))
			if msg := connector.UserMessage(err); !strings.Contains(msg, "not a member of an allowed organization or team") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("an unverified primary email is not released", func(t *testing.T) {
		gh.mu.Lock()
		gh.emails = `[{"email":"octo@example.com","primary":true,"verified":false}]`
		gh.mu.Unlock()
		id, err := signIn(t, open(t))
		if err != nil || id.Email != "" || id.EmailVerified {
			t.Fatalf("identity = %+v, err = %v", id, err)
		}
	})
	t.Run("a code redeemed with another login's verifier is refused", func(t *testing.T) {
		c := open(t)
		_, other, _ := c.LoginURL(context.Background(), "x")
		loginURL, _, _ := c.LoginURL(context.Background(), "st")
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(loginURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, _ := resp.Location()
		_, _, err = c.HandleCallback(context.Background(), httptest.NewRequest(http.MethodGet, back.String(), nil), other)
		if msg := connector.UserMessage(err); !strings.Contains(msg, "did not accept the authorization code") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a denied authorization is shown", func(t *testing.T) {
		_, _, err := open(t).HandleCallback(context.Background(), httptest.NewRequest(http.MethodGet, callbackURL+"?error=access_denied&state=st", nil), []byte("v"))
		if msg := connector.UserMessage(err); !strings.Contains(msg, "access_denied") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestGitHubDotComIsTheDefault(t *testing.T) {
	c, err := github.Open(config.GitHubConnection{ClientID: "id", ClientSecret: "s"}, connector.Options{CallbackURL: callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	loginURL, _, _ := c.LoginURL(context.Background(), "st")
	if !strings.HasPrefix(loginURL, "https://github.com/login/oauth/authorize?") || !slices.Equal(c.LoginOrigins(), []string{"https://github.com"}) {
		t.Fatalf("login URL %s, origins %v", loginURL, c.LoginOrigins())
	}
}
