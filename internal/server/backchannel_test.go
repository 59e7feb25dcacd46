package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server"
)

// waitForDelivery bounds how long a test waits for a logout token that must come. It is a
// deadline against hanging, not a performance expectation.
const waitForDelivery = 15 * time.Second

// newLogoutEnv is newEnv with back-channel retries made fast.
func newLogoutEnv(t *testing.T, opts []server.Option, mutate ...func(*config.Config)) *env {
	t.Helper()
	fast := server.WithBackchannelOptions(server.BackchannelOptions{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, RetryWindow: 10 * time.Second})
	return newEnvWithOptions(t, append([]server.Option{fast}, opts...), mutate...)
}

// withBackchannel registers a back-channel logout URI for clients.
func withBackchannel(uris map[string]string) func(*config.Config) {
	return func(c *config.Config) {
		for i := range c.Clients {
			if u, ok := uris[c.Clients[i].ID]; ok {
				c.Clients[i].BackchannelLogoutURI = u
			}
		}
	}
}

// receivedLogout is one back-channel request as the application received it.
type receivedLogout struct {
	method      string
	contentType string
	form        url.Values
	token       string
}

// logoutReceiver is an application's back-channel endpoint on a loopback listener. It
// answers with status(n) to its nth request (200 by default).
type logoutReceiver struct {
	url     string
	arrived chan receivedLogout
	count   atomic.Int32
	status  func(n int) int
}

func newLogoutReceiver(t *testing.T, status func(n int) int) *logoutReceiver {
	t.Helper()
	rec := &logoutReceiver{arrived: make(chan receivedLogout, 100), status: status}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rec.count.Add(1))
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		rec.arrived <- receivedLogout{method: r.Method, contentType: r.Header.Get("Content-Type"), form: form, token: form.Get("logout_token")}
		code := http.StatusOK
		if rec.status != nil {
			code = rec.status(n)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
	}))
	t.Cleanup(ts.Close)
	rec.url = ts.URL + "/backchannel-logout"
	return rec
}

// next waits for the next logout request.
func (rec *logoutReceiver) next(t *testing.T) receivedLogout {
	t.Helper()
	select {
	case got := <-rec.arrived:
		return got
	case <-time.After(waitForDelivery):
		t.Fatal("no logout token arrived")
		return receivedLogout{}
	}
}

// drain shuts the server's delivery queue down once every pending delivery has an
// outcome, so that what the receivers got afterwards is final.
func (e *env) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitForDelivery)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("deliveries still pending: %v", err)
	}
}

// logoutToken is a logout token verified against the server's JWKS.
type logoutToken struct {
	header jose.Header
	claims map[string]any
}

func verifyLogoutToken(t *testing.T, e *env, raw string) logoutToken {
	t.Helper()
	var jwks jose.JSONWebKeySet
	getJSON(t, e.issuer+"/jwks", &jwks)
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse logout token: %v", err)
	}
	keys := jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("logout token kid %q is not in the JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("logout token signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return logoutToken{header: jws.Signatures[0].Header, claims: claims}
}

func (lt logoutToken) num(name string) int64 {
	f, _ := lt.claims[name].(float64)
	return int64(f)
}

func TestLogoutTokensFollowBackChannelLogoutRules(t *testing.T) {
	rec1, rec2 := newLogoutReceiver(t, nil), newLogoutReceiver(t, nil)
	e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": rec1.url, "app2": rec2.url}))
	b := e.browser()
	tok1, idt1 := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
	l, code, _ := e.rp("app2", "app2-secret").silent(t, b)
	_, idt2 := e.rp("app2", "app2-secret").exchange(t, l, code)
	signedOutAt := e.clock.Now()
	raw, _ := tok1.Extra("id_token").(string)

	p := b.get(e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"https://app1.example/bye"}}.Encode())
	if p.location == nil || p.location.String() != "https://app1.example/bye" {
		t.Fatalf("logout did not return to the application: status %d location %v", p.status, p.location)
	}
	got1, got2 := rec1.next(t), rec2.next(t)
	e.drain(t)
	if n1, n2 := rec1.count.Load(), rec2.count.Load(); n1 != 1 || n2 != 1 {
		t.Fatalf("app1 got %d requests and app2 %d, want one each", n1, n2)
	}
	lt1, lt2 := verifyLogoutToken(t, e, got1.token), verifyLogoutToken(t, e, got2.token)
	keys, _ := testKeys()

	for _, tc := range []struct {
		name  string
		check func(got receivedLogout, lt logoutToken, client, sid, sub string) error
	}{
		{"the request is a form POST carrying only logout_token", func(got receivedLogout, _ logoutToken, _, _, _ string) error {
			if got.method != http.MethodPost || got.contentType != "application/x-www-form-urlencoded" || len(got.form) != 1 {
				return fmt.Errorf("%s %s with fields %v", got.method, got.contentType, got.form)
			}
			return nil
		}},
		{"the header is typed logout+jwt and names the current key", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if typ := lt.header.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" || lt.header.KeyID != keys.Current.KeyID {
				return fmt.Errorf("typ %v kid %q", typ, lt.header.KeyID)
			}
			return nil
		}},
		{"iss is the issuer", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if lt.claims["iss"] != e.issuer {
				return fmt.Errorf("iss %v", lt.claims["iss"])
			}
			return nil
		}},
		{"aud is the receiving client alone", func(_ receivedLogout, lt logoutToken, client, _, _ string) error {
			if lt.claims["aud"] != client {
				return fmt.Errorf("aud %v", lt.claims["aud"])
			}
			return nil
		}},
		{"iat is the time of the logout", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if lt.num("iat") != signedOutAt.Unix() {
				return fmt.Errorf("iat %d, logout at %d", lt.num("iat"), signedOutAt.Unix())
			}
			return nil
		}},
		{"exp is at most two minutes after iat", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if d := lt.num("exp") - lt.num("iat"); d <= 0 || d > 120 {
				return fmt.Errorf("exp - iat = %ds", d)
			}
			return nil
		}},
		{"jti is a long random value", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if jti, _ := lt.claims["jti"].(string); len(jti) < 16 {
				return fmt.Errorf("jti %q", jti)
			}
			return nil
		}},
		{"sid is the session's, as in the ID token", func(_ receivedLogout, lt logoutToken, _, sid, _ string) error {
			if sid == "" || lt.claims["sid"] != sid {
				return fmt.Errorf("sid %v, ID token's %q", lt.claims["sid"], sid)
			}
			return nil
		}},
		{"sub is the user's", func(_ receivedLogout, lt logoutToken, _, _, sub string) error {
			if lt.claims["sub"] != sub {
				return fmt.Errorf("sub %v, want %q", lt.claims["sub"], sub)
			}
			return nil
		}},
		{"events holds exactly the back-channel event with an empty object", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			events, _ := lt.claims["events"].(map[string]any)
			ev, ok := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
			if len(events) != 1 || !ok || len(ev) != 0 {
				return fmt.Errorf("events %v", lt.claims["events"])
			}
			return nil
		}},
		{"there is no nonce", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			if _, ok := lt.claims["nonce"]; ok {
				return fmt.Errorf("nonce %v", lt.claims["nonce"])
			}
			return nil
		}},
		{"there are no claims beyond the spec's", func(_ receivedLogout, lt logoutToken, _, _, _ string) error {
			for k := range lt.claims {
				if !strings.Contains(" iss sub aud iat exp jti sid events ", " "+k+" ") {
					return fmt.Errorf("unexpected claim %q", k)
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.check(got1, lt1, "app1", sidOf(t, idt1), idt1.Subject); err != nil {
				t.Errorf("app1's token: %v", err)
			}
			if err := tc.check(got2, lt2, "app2", sidOf(t, idt2), idt2.Subject); err != nil {
				t.Errorf("app2's token: %v", err)
			}
		})
	}
	if lt1.claims["jti"] == lt2.claims["jti"] {
		t.Error("two logout tokens share a jti")
	}
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="delivered"}`, 2)
}

func TestADeadBackChannelReceiverDoesNotHoldUpTheLogoutPage(t *testing.T) {
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(dead.Close)
	t.Cleanup(func() { close(release) }) // runs first: unblock the handler so Close can return
	e := newLogoutEnv(t, []server.Option{server.WithBackchannelOptions(server.BackchannelOptions{RequestTimeout: time.Hour})},
		withBackchannel(map[string]string{"app1": dead.URL}))
	b := e.browser()
	e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))

	// The receiver never answers (until the test ends), and the request timeout is an hour:
	// the logout page can only arrive if it does not wait for the delivery.
	p := b.signOut(e.issuer + "/v2/logout?client_id=app1")
	if p.location == nil || p.location.String() != "https://app1.example/bye" {
		t.Fatalf("logout answered status %d location %v, want the redirect to returnTo", p.status, p.location)
	}
	select {
	case <-entered:
	case <-time.After(waitForDelivery):
		t.Fatal("the logout token was never sent")
	}
	// The delivery is still stuck, and other users' logouts are not held up either.
	b2 := e.browser()
	e.rp("app1", "app1-secret").signIn(t, b2, "bob", bobPassword, oauthConnection("people"))
	if p := b2.signOut(e.issuer + "/v2/logout?client_id=app1"); p.location == nil {
		t.Fatalf("a second logout answered status %d without a redirect", p.status)
	}
	if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
		t.Errorf("after logout, prompt=none gave %q, want login_required", err)
	}
}

func TestBackChannelDeliveryRetriesAndRecordsTheOutcome(t *testing.T) {
	tests := []struct {
		name       string
		status     func(n int) int
		wantTokens int
		wantResult string
	}{
		{"a receiver that fails twice gets fresh tokens until it accepts one",
			func(n int) int {
				if n <= 2 {
					return http.StatusServiceUnavailable
				}
				return http.StatusOK
			}, 3, "delivered"},
		{"a receiver that rejects the token is not asked again",
			func(int) int { return http.StatusBadRequest }, 1, "rejected"},
		{"a receiver that keeps failing is given up on after the retry window",
			func(int) int { return http.StatusBadGateway }, -1, "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newLogoutReceiver(t, tc.status)
			e := newLogoutEnv(t, []server.Option{server.WithBackchannelOptions(server.BackchannelOptions{
				InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, RetryWindow: 300 * time.Millisecond})},
				withBackchannel(map[string]string{"app1": rec.url}))
			b := e.browser()
			e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			b.signOut(e.issuer + "/oidc/logout")
			e.drain(t)
			n := int(rec.count.Load())
			if tc.wantTokens > 0 && n != tc.wantTokens || tc.wantTokens < 0 && n < 2 {
				t.Errorf("the receiver got %d requests, want %d", n, tc.wantTokens)
			}
			jtis := map[any]bool{}
			for range n {
				got := <-rec.arrived
				jtis[verifyLogoutToken(t, e, got.token).claims["jti"]] = true
			}
			if len(jtis) != n {
				t.Errorf("%d attempts used %d distinct jti values; every attempt needs a fresh token", n, len(jtis))
			}
			assertMetric(t, e, `hallpass_backchannel_logout_total{result="`+tc.wantResult+`"}`, 1)
		})
	}
}

func TestEveryWayASessionEndsSendsALogoutToken(t *testing.T) {
	tests := []struct {
		name string
		end  func(t *testing.T, e *env, b *browser, idToken string)
	}{
		{"RP-initiated logout", func(t *testing.T, e *env, b *browser, idToken string) {
			b.get(e.issuer + "/oidc/logout?id_token_hint=" + url.QueryEscape(idToken))
		}},
		{"Auth0-style /v2/logout", func(t *testing.T, e *env, b *browser, _ string) {
			b.signOut(e.issuer + "/v2/logout")
		}},
		{"the idle timeout, found by the sweeper", func(t *testing.T, e *env, _ *browser, _ string) {
			e.clock.Advance(72*time.Hour + time.Second)
			startSweeper(t, e)
		}},
		{"the absolute lifetime, found by the sweeper despite activity", func(t *testing.T, e *env, b *browser, _ string) {
			for range 3 {
				e.clock.Advance(50 * time.Hour)
				if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
					t.Fatalf("activity within the lifetimes failed: %s", err)
				}
			}
			e.clock.Advance(19 * time.Hour) // 169h after login, 19h after the last activity
			startSweeper(t, e)
		}},
		{"a new login in the same browser", func(t *testing.T, e *env, b *browser, _ string) {
			e.rp("app2", "app2-secret").signIn(t, b, "bob", bobPassword, oauth2.SetAuthURLParam("prompt", "login"))
		}},
		{"the account page's sign-out of this session", func(t *testing.T, e *env, b *browser, _ string) {
			p := b.get(e.issuer + "/account")
			b.postAccountForm(p, "end-session", sessionSIDRe.FindStringSubmatch(p.body)[1])
		}},
		{"the account page's sign-out everywhere", func(t *testing.T, e *env, b *browser, _ string) {
			b.postAccountForm(b.get(e.issuer+"/account"), "end-all-sessions", "")
		}},
		{"an administrator revoking the user's sessions", func(t *testing.T, e *env, _ *browser, _ string) {
			n, err := e.srv.RevokeUserSessions(context.Background(), "people", "people|alice")
			if err != nil || n != 1 {
				t.Fatalf("RevokeUserSessions = %d, %v; want 1 session", n, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" sends app1 a logout token and revokes its refresh token", func(t *testing.T) {
			rec := newLogoutReceiver(t, nil)
			e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": rec.url}))
			b := e.browser()
			app1 := e.rp("app1", "app1-secret")
			tok, idt := app1.signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			raw, _ := tok.Extra("id_token").(string)

			tc.end(t, e, b, raw)
			lt := verifyLogoutToken(t, e, rec.next(t).token)
			if lt.claims["sid"] != sidOf(t, idt) || lt.claims["sub"] != "people|alice" || lt.claims["aud"] != "app1" {
				t.Errorf("logout token sid=%v sub=%v aud=%v, want the ended session's", lt.claims["sid"], lt.claims["sub"], lt.claims["aud"])
			}
			if _, err := refresh(app1, tok.RefreshToken); err == nil {
				t.Error("the ended session's refresh token still works")
			}
			e.drain(t)
			if n := rec.count.Load(); n != 1 {
				t.Errorf("app1 got %d logout tokens, want exactly one", n)
			}
		})
	}
}

func TestTheSweeperEndsOnlyExpiredSessions(t *testing.T) {
	rec := newLogoutReceiver(t, nil)
	e := newLogoutEnv(t, nil, withBackchannel(map[string]string{"app1": rec.url}))
	bob, alice := e.browser(), e.browser()
	_, bobIDT := e.rp("app1", "app1-secret").signIn(t, bob, "bob", bobPassword, oauthConnection("people"))
	e.clock.Advance(2 * time.Hour)
	e.rp("app1", "app1-secret").signIn(t, alice, "alice", alicePassword, oauthConnection("people"))
	// bob's session is past its idle timeout, alice's is two hours short of it.
	e.clock.Advance(70*time.Hour + time.Second)
	startSweeper(t, e)

	if lt := verifyLogoutToken(t, e, rec.next(t).token); lt.claims["sid"] != sidOf(t, bobIDT) {
		t.Errorf("the sweeper announced sid %v, want bob's expired session", lt.claims["sid"])
	}
	e.drain(t)
	if n := rec.count.Load(); n != 1 {
		t.Errorf("app1 got %d logout tokens, want only bob's", n)
	}
	if _, _, err := e.rp("app2", "app2-secret").silent(t, alice); err != "" {
		t.Errorf("the sweeper ended alice's valid session: %s", err)
	}
}

// startSweeper runs the server's garbage collection, as `hallpass server` does, on a short
// interval until the test ends.
func startSweeper(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.srv.RunGarbageCollection(ctx, 5*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// sidOf returns the sid claim of an ID token.
func sidOf(t *testing.T, idt *oidc.IDToken) string {
	t.Helper()
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("ID token has no sid: %v", err)
	}
	return c.SID
}
