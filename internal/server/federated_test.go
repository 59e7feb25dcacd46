package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// upstreamIdP stands in for an upstream OpenID provider's end_session_endpoint: it records
// the request and, as a conforming provider does, returns to post_logout_redirect_uri with
// state. (The upstream connectors' real peers are tested with those connectors.)
type upstreamIdP struct {
	url  string
	mu   sync.Mutex
	seen []url.Values
}

func newUpstreamIdP(t *testing.T) *upstreamIdP {
	t.Helper()
	up := &upstreamIdP{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		up.mu.Lock()
		up.seen = append(up.seen, q)
		up.mu.Unlock()
		back, err := url.Parse(q.Get("post_logout_redirect_uri"))
		if err != nil || back.Host == "" {
			http.Error(w, "no post_logout_redirect_uri", http.StatusBadRequest)
			return
		}
		if s := q.Get("state"); s != "" {
			back.RawQuery = url.Values{"state": {s}}.Encode()
		}
		http.Redirect(w, r, back.String(), http.StatusFound)
	}))
	t.Cleanup(ts.Close)
	up.url = ts.URL + "/session/end"
	return up
}

func (up *upstreamIdP) requests() []url.Values {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]url.Values(nil), up.seen...)
}

// signInUpstream signs alice in to app1 and gives her session the upstream logout
// information an upstream connector stores.
func signInUpstream(t *testing.T, e *env, b *browser, up *upstreamIdP) string {
	t.Helper()
	tok, _ := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	info := connector.Upstream{EndSessionURL: up.url + "?ui=compact", IDTokenHint: "upstream-id-token", ClientID: "hallpass-at-upstream"}.Marshal()
	_, err := e.store.UpdateSession(context.Background(), digest.Of(sessionCookieValue(b)), func(s storage.Session) (storage.Session, error) {
		s.Upstream = info
		return s, nil
	})
	if err != nil {
		t.Fatalf("store upstream logout information: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	return raw
}

func TestFederatedLogout(t *testing.T) {
	tests := []struct {
		name         string
		logout       func(e *env, idToken string) string
		wantUpstream bool
		wantFinal    string // "" means the signed-out page
	}{
		{"/v2/logout with federated goes through the upstream logout and back to returnTo",
			func(e *env, idt string) string {
				return e.issuer + "/v2/logout?client_id=app1&returnTo=" + url.QueryEscape("https://app1.example/bye") + "&federated&id_token_hint=" + url.QueryEscape(idt)
			}, true, "https://app1.example/bye"},
		{"/oidc/logout with federated comes back to the registered URI with state",
			func(e *env, idt string) string {
				return e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app1.example/bye"}, "state": {"s1"}, "federated": {""}}.Encode()
			}, true, "https://app1.example/bye?state=s1"},
		{"federated without a returnTo comes back to the hint's client's first logout URL",
			func(e *env, idt string) string {
				return e.issuer + "/v2/logout?federated&id_token_hint=" + url.QueryEscape(idt)
			}, true, "https://app1.example/bye"},
		{"without federated the upstream session is left alone",
			func(e *env, _ string) string { return e.issuer + "/v2/logout?client_id=app1" }, false, "https://app1.example/bye"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			up := newUpstreamIdP(t)
			b := e.browser()
			idt := signInUpstream(t, e, b, up)

			p := b.signOut(tc.logout(e, idt))
			if tc.wantUpstream {
				if p.location == nil || !strings.HasPrefix(p.location.String(), up.url) {
					t.Fatalf("status %d location %v, want the upstream end-session endpoint", p.status, p.location)
				}
				q := p.location.Query()
				for k, want := range map[string]string{"id_token_hint": "upstream-id-token", "client_id": "hallpass-at-upstream",
					"post_logout_redirect_uri": e.issuer + "/logout/federated/return", "ui": "compact"} {
					if q.Get(k) != want {
						t.Errorf("upstream %s = %q, want %q", k, q.Get(k), want)
					}
				}
				if q.Get("state") == "" {
					t.Error("the upstream request carries no state to come back with")
				}
				p = b.get(p.location.String())
			} else if n := len(up.requests()); n != 0 {
				t.Fatalf("the upstream logout was visited %d times", n)
			}
			switch {
			case tc.wantFinal != "" && (p.location == nil || p.location.String() != tc.wantFinal):
				t.Fatalf("ended at status %d location %v, want %s", p.status, p.location, tc.wantFinal)
			case tc.wantFinal == "" && (p.location != nil || !strings.Contains(p.body, "You are signed out")):
				t.Fatalf("ended at status %d location %v, want the signed-out page", p.status, p.location)
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after logout, prompt=none gave %q, want login_required", err)
			}
		})
	}
}

func TestTheFederatedReturnIsNoOpenRedirect(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, state := range []string{"", "not-sealed", strings.Repeat("A", 120)} {
		p := b.get(e.issuer + "/logout/federated/return?" + url.Values{"state": {state}, "returnTo": {"https://evil.example/"}}.Encode())
		if p.location != nil || !strings.Contains(p.body, "You are signed out") {
			t.Errorf("state %q: status %d location %v, want the signed-out page", state, p.status, p.location)
		}
	}
}
