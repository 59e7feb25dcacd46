package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

// TestCookiesAreScopedToTheIssuer signs in at issuers with and without a path, over https
// and in dev mode over http, and checks the cookies the browser is given: each issuer's
// own path, the __Host- prefix where the browser allows it, and a session the server
// reads back under that name.
func TestCookiesAreScopedToTheIssuer(t *testing.T) {
	tests := []struct {
		name       string
		https      bool
		path       string
		wantPrefix string
		wantPath   string
	}{
		{"an https issuer at the root of its host uses __Host- cookies", true, "", "__Host-", "/"},
		{"an https issuer with a path scopes its cookies to the path, with __Secure-", true, "/tenant-b", "__Secure-", "/tenant-b"},
		{"an http dev issuer with a path scopes its cookies to the path", false, "/tenant-b", "", "/tenant-b"},
		{"an http dev issuer at the root keeps plain cookies at /", false, "", "", "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.Config) {
				if tc.https {
					c.DevMode = false
					c.Issuer = strings.Replace(c.Issuer, "http://", "https://", 1)
				}
				c.Issuer += tc.path
			})
			// The loopback listener speaks http whatever the config says, so cookies are
			// read from the headers and sent back by hand, as a browser would over https.
			issuer := e.srv.Config().Issuer
			listener := e.issuer + tc.path
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(u string, cookies ...*http.Cookie) *http.Response {
				req, _ := http.NewRequest(http.MethodGet, strings.Replace(u, issuer, listener, 1), nil)
				for _, c := range cookies {
					req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			q := url.Values{"client_id": {"app2"}, "redirect_uri": {"https://app2.example/callback"}, "response_type": {"code"}, "scope": {"openid"}}
			resp := get(issuer + "/authorize?" + q.Encode())
			resp.Body.Close()
			csrf := cookieNamed(resp.Cookies(), tc.wantPrefix+"hallpass_csrf")
			checkCookie(t, csrf, tc.https, tc.wantPath)

			resp = get(resp.Header.Get("Location"), csrf)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			action, form := formFields(t, page{status: resp.StatusCode, body: string(body)})
			form.Set("username", "alice")
			form.Set("password", alicePassword)
			req, _ := http.NewRequest(http.MethodPost, strings.Replace(action, issuer, listener, 1), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: csrf.Name, Value: csrf.Value})
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			sess := cookieNamed(resp.Cookies(), tc.wantPrefix+"hallpass_session")
			checkCookie(t, sess, tc.https, tc.wantPath)

			// The server reads the session back under that name: a silent login succeeds.
			q.Set("prompt", "none")
			resp = get(issuer+"/authorize?"+q.Encode(), sess)
			resp.Body.Close()
			if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
				t.Fatalf("prompt=none with the session cookie: status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func checkCookie(t *testing.T, c *http.Cookie, secure bool, path string) {
	t.Helper()
	if c == nil {
		t.Fatal("the cookie was not set under the expected name")
	}
	if c.Path != path || c.Domain != "" || c.Secure != secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %s: path %q domain %q secure %v httpOnly %v sameSite %v; want path %q, no domain, secure %v, HttpOnly, Lax",
			c.Name, c.Path, c.Domain, c.Secure, c.HttpOnly, c.SameSite, path, secure)
	}
}
