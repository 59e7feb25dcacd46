package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestAnyOldRefreshTokenOfAFamilyIsAReplay(t *testing.T) {
	tests := []struct {
		name string
		// present returns the token the victim (or an attacker) presents, given t1..t3.
		present     func(t1, t2, t3 string) string
		wantRevoked bool
	}{
		{name: "a token two rotations old revokes the family", present: func(t1, _, _ string) string { return t1 }, wantRevoked: true},
		{name: "the previous token after the reuse interval revokes the family", present: func(_, t2, _ string) string { return t2 }, wantRevoked: true},
		{name: "a forged token naming the family is refused without revoking it",
			present: func(t1, _, _ string) string {
				return t1[:strings.LastIndex(t1, ".")+1] + "Zm9yZ2VkLXRhZy1mb3JnZWQtdGFnLWZvcmdlZC10YWc"
			}},
		{name: "a forged generation of the family is refused without revoking it",
			present: func(t1, _, _ string) string {
				return t1[:strings.Index(t1, ".")] + ".7." + t1[strings.LastIndex(t1, ".")+1:]
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rp := e.rp("app2", "app2-secret")
			first, _ := rp.signIn(t, e.browser(), "alice", alicePassword)
			// The attacker rotates t1 -> t2 -> t3, each past the reuse interval.
			t1 := first.RefreshToken
			e.clock.Advance(5 * time.Second)
			second, err := refresh(rp, t1)
			if err != nil {
				t.Fatalf("t1 -> t2: %v", err)
			}
			e.clock.Advance(5 * time.Second)
			third, err := refresh(rp, second.RefreshToken)
			if err != nil {
				t.Fatalf("t2 -> t3: %v", err)
			}
			e.clock.Advance(5 * time.Second)
			_, err = refresh(rp, tt.present(t1, second.RefreshToken, third.RefreshToken))
			assertOAuthError(t, err, "invalid_grant")

			_, err = refresh(rp, third.RefreshToken)
			if tt.wantRevoked {
				assertOAuthError(t, err, "invalid_grant")
			} else if err != nil {
				t.Fatalf("the family was revoked: %v", err)
			}
		})
	}
}

// TestARefreshRacingAReplayLeavesNothingIssued presents a family's current refresh token
// and a replayed old one at once. Whichever is handled first, the family ends revoked, and
// no access token of it may work: not even the one the legitimate refresh received while
// the replay was revoking the family.
func TestARefreshRacingAReplayLeavesNothingIssued(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	b := e.browser()
	rp.signIn(t, b, "alice", alicePassword)
	for i := range 15 {
		l, code, _ := rp.silent(t, b)
		first, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
		if err != nil {
			t.Fatalf("round %d: exchange: %v", i, err)
		}
		second, err := refresh(rp, first.RefreshToken)
		if err != nil {
			t.Fatalf("round %d: first refresh: %v", i, err)
		}
		e.clock.Advance(time.Minute) // past the reuse interval: the first token is now a replay
		var raced *oauth2.Token
		var wg sync.WaitGroup
		wg.Go(func() { raced, _ = refresh(rp, second.RefreshToken) })
		wg.Go(func() { _, _ = refresh(rp, first.RefreshToken) })
		wg.Wait()
		for _, tok := range []*oauth2.Token{second, raced} {
			if tok == nil {
				continue
			}
			if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusUnauthorized {
				t.Fatalf("round %d: an access token of a replayed family still works (userinfo %d)", i, status)
			}
		}
	}
}
