package server_test

import (
	"strings"
	"testing"
	"time"
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
