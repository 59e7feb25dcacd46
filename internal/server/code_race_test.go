package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"golang.org/x/oauth2"
)

// TestConcurrentRedemptionsOfACodeLeaveNothingIssued redeems each code twice at once: one
// redemption may win, but the reuse must revoke what it issued even when the reuse is
// handled before the winner has stored its tokens.
func TestConcurrentRedemptionsOfACodeLeaveNothingIssued(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	rp.signIn(t, b, "alice", alicePassword)
	for i := range 15 {
		l := newLogin()
		code := rp.callback(t, l, b.get(rp.authURL(l))) // the session signs in at once
		var wg sync.WaitGroup
		toks := make([]*oauth2.Token, 2)
		for j := range 2 {
			wg.Go(func() {
				toks[j], _ = rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			})
		}
		wg.Wait()
		for _, tok := range toks {
			if tok == nil {
				continue
			}
			if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusUnauthorized {
				t.Fatalf("round %d: the access token of a code redeemed twice still works (userinfo %d)", i, status)
			}
			if _, err := refresh(rp, tok.RefreshToken); err == nil {
				t.Fatalf("round %d: the refresh token of a code redeemed twice still works", i)
			}
		}
	}
}
