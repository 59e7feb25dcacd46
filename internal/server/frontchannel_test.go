package server_test

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/config"
)

var (
	iframeRe   = regexp.MustCompile(`<iframe class="frontchannel" src="([^"]+)"`)
	continueRe = regexp.MustCompile(`<a id="continue" href="([^"]+)">`)
	nonceRe    = regexp.MustCompile(`<script nonce="([^"]+)">`)
)

func withFrontchannel(c *config.Config) {
	for i := range c.Clients {
		switch c.Clients[i].ID {
		case "app1":
			c.Clients[i].FrontchannelLogoutURI = "https://app1.example/frontchannel-logout"
		case "app2":
			c.Clients[i].FrontchannelLogoutURI = "https://app2.example/fc?tenant=7"
		}
	}
}

func TestTheSignedOutPageRunsFrontChannelLogoutThenContinues(t *testing.T) {
	tests := []struct {
		name         string
		logout       func(e *env, idToken string) string
		wantContinue string // "" means the page stays
	}{
		{"RP-initiated logout continues to the registered URI with state",
			func(e *env, idt string) string {
				return e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app1.example/bye"}, "state": {"st"}}.Encode()
			}, "https://app1.example/bye?state=st"},
		{"/v2/logout continues to returnTo",
			func(e *env, _ string) string { return e.issuer + "/v2/logout?client_id=app1" }, "https://app1.example/bye"},
		{"a logout without a redirect target stays on the page",
			func(e *env, _ string) string { return e.issuer + "/v2/logout" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withFrontchannel)
			b := e.browser()
			tok, idt := e.rp("app1", "app1-secret").signIn(t, b, "alice", alicePassword, oauthConnection("people"))
			sid := sidOf(t, idt)
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "" {
				t.Fatalf("app2: %s", err)
			}
			// spa has no front-channel URI: it gets no frame.
			if _, _, err := e.rp("spa", "").silent(t, b); err != "" {
				t.Fatalf("spa: %s", err)
			}
			raw, _ := tok.Extra("id_token").(string)

			p := b.signOut(tc.logout(e, raw))
			if p.location != nil || p.status != 200 || !strings.Contains(p.body, "You are signed out") {
				t.Fatalf("status %d location %v, want the signed-out page", p.status, p.location)
			}
			var frames []string
			for _, m := range iframeRe.FindAllStringSubmatch(p.body, -1) {
				frames = append(frames, unescapeHTML(m[1]))
			}
			iss := url.QueryEscape(e.issuer)
			want := []string{
				"https://app1.example/frontchannel-logout?iss=" + iss + "&sid=" + sid,
				"https://app2.example/fc?iss=" + iss + "&sid=" + sid + "&tenant=7",
			}
			if !slices.Equal(frames, want) {
				t.Errorf("frames = %q\nwant %q", frames, want)
			}

			csp := p.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-src https://app1.example https://app2.example") || strings.Count(csp, "frame-src") != 1 {
				t.Errorf("CSP %q must allow framing exactly the two front-channel origins", csp)
			}
			if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("CSP %q must keep the page unframeable and scripts nonce-only", csp)
			}

			cont := continueRe.FindStringSubmatch(p.body)
			switch {
			case tc.wantContinue == "" && cont != nil:
				t.Errorf("the page continues to %s; it should stay", cont[1])
			case tc.wantContinue != "" && (cont == nil || unescapeHTML(cont[1]) != tc.wantContinue):
				t.Errorf("continue link %v, want %s", cont, tc.wantContinue)
			case tc.wantContinue != "":
				n := nonceRe.FindStringSubmatch(p.body)
				if n == nil || !strings.Contains(csp, "'nonce-"+n[1]+"'") {
					t.Errorf("the continuing script's nonce is not the CSP's: %v in %q", n, csp)
				}
			}
			if _, _, err := e.rp("app2", "app2-secret").silent(t, b); err != "login_required" {
				t.Errorf("after logout, prompt=none gave %q, want login_required", err)
			}
		})
	}
}

func TestWithoutFrontChannelClientsLogoutRedirectsAtOnce(t *testing.T) {
	e := newEnv(t, withFrontchannel)
	b := e.browser()
	// Only spa, which has no front-channel URI, is in this session.
	if p := b.get(e.rp("spa", "").authURL(newLogin())); p.location != nil {
		t.Fatalf("expected the login page")
	} else {
		b.submitLogin(p, "alice", alicePassword)
	}
	p := b.signOut(e.issuer + "/v2/logout?client_id=app1")
	if p.location == nil || p.location.String() != "https://app1.example/bye" {
		t.Fatalf("status %d location %v, want a redirect to returnTo", p.status, p.location)
	}
}
