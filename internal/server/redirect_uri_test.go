package server_test

import (
	"context"
	"testing"

	"golang.org/x/oauth2"
)

func TestTheTokenRequestRepeatsTheAuthorizationRequestsRedirectURI(t *testing.T) {
	e := newEnv(t)
	const registered = "https://app2.example/callback"
	tests := []struct {
		name          string
		authorizeWith string // "" omits redirect_uri from the authorization request
		redeemWith    string // "" omits it from the token request
		wantError     string
	}{
		{name: "the same redirect_uri is accepted", authorizeWith: registered, redeemWith: registered},
		{name: "an omitted redirect_uri is refused when the authorization request had one", authorizeWith: registered, redeemWith: "", wantError: "invalid_grant"},
		{name: "another redirect_uri is refused", authorizeWith: registered, redeemWith: "https://app2.example/other", wantError: "invalid_grant"},
		{name: "no redirect_uri on either side is accepted for a client with one registered", authorizeWith: "", redeemWith: ""},
		{name: "the registered redirect_uri may be sent when the authorization request omitted it", authorizeWith: "", redeemWith: registered},
		{name: "another redirect_uri is refused when the authorization request omitted it", authorizeWith: "", redeemWith: "https://app2.example/other", wantError: "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := e.rp("app2", "app2-secret")
			b := e.browser()
			l := newLogin()
			rp.oauth.RedirectURL = tt.authorizeWith
			p := b.get(rp.authURL(l))
			rp.oauth.RedirectURL = registered
			code := rp.callback(t, l, b.submitLogin(p, "alice", alicePassword))
			rp.oauth.RedirectURL = tt.redeemWith
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			if tt.wantError != "" {
				assertOAuthError(t, err, tt.wantError)
			} else if err != nil {
				t.Fatalf("exchange: %v", err)
			}
		})
	}
}
