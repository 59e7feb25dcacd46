package server_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestACodeIsRedeemedOnlyAsItWasIssued presents a code in every way its redemption must
// refuse. Codes are sealed rather than stored, so each refusal rests on what the code
// carries; and a refused presentation must not use the code up.
func TestACodeIsRedeemedOnlyAsItWasIssued(t *testing.T) {
	e := newEnv(t)
	loginTransaction := regexp.MustCompile(`name="tx" value="([^"]+)"`)
	tests := []struct {
		name string
		// present returns the error of a refused presentation of code.
		present func(t *testing.T, rp *relyingParty, l login, code string) error
		// usable says whether the genuine redemption still works afterwards.
		usable bool
	}{
		{"another client cannot redeem it", func(t *testing.T, rp *relyingParty, l login, code string) error {
			other := e.rp("pkce", "pkce-secret")
			other.oauth.RedirectURL = rp.oauth.RedirectURL
			_, err := other.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			return err
		}, true},
		{"another redirect_uri cannot redeem it", func(t *testing.T, rp *relyingParty, l login, code string) error {
			moved := rp.oauth
			moved.RedirectURL = "https://app2.example/callback/other"
			_, err := moved.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			return err
		}, true},
		{"a code with one character changed is refused", func(t *testing.T, rp *relyingParty, l login, code string) error {
			b := []byte(code)
			b[len(b)/2] ^= 'A' ^ 'B'
			if b[len(b)/2] == code[len(b)/2] {
				t.Fatal("the code was not changed")
			}
			_, err := rp.oauth.Exchange(context.Background(), string(b), oauth2.VerifierOption(l.verifier))
			return err
		}, true},
		{"a code cut short is refused", func(t *testing.T, rp *relyingParty, l login, code string) error {
			_, err := rp.oauth.Exchange(context.Background(), code[:len(code)-2], oauth2.VerifierOption(l.verifier))
			return err
		}, true},
		{"a sealed login transaction is not a code", func(t *testing.T, rp *relyingParty, l login, _ string) error {
			m := loginTransaction.FindStringSubmatch(e.browser().get(rp.authURL(newLogin())).body)
			if m == nil {
				t.Fatal("the login page has no login transaction")
			}
			_, err := rp.oauth.Exchange(context.Background(), m[1], oauth2.VerifierOption(l.verifier))
			return err
		}, true},
		{"a code is refused once its lifetime has passed", func(t *testing.T, rp *relyingParty, l login, code string) error {
			e.clock.Advance(time.Minute + time.Second) // the harness's authorizationCode: 1m
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := e.rp("app2", "app2-secret")
			l, code := rp.loginCode(t, e.browser(), "alice", alicePassword)
			assertOAuthError(t, tc.present(t, rp, l, code), "invalid_grant")
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			if tc.usable && err != nil {
				t.Fatalf("the genuine redemption after a refused one: %v", err)
			}
			if !tc.usable {
				assertOAuthError(t, err, "invalid_grant")
			}
		})
	}
}

func TestAReusedCodeIsRefusedAndRevokesWhatItIssued(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		again func(code string) string
	}{
		{"the same code again", func(code string) string { return code }},
		// Base64 decoders skip line breaks: the same code spelled differently is still used.
		{"the same code with a line break inside", func(code string) string { return code[:10] + "\n" + code[10:] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := e.rp("app2", "app2-secret")
			l, code := rp.loginCode(t, e.browser(), "alice", alicePassword)
			tok, _ := rp.exchange(t, l, code)

			_, err := rp.oauth.Exchange(context.Background(), tc.again(code), oauth2.VerifierOption(l.verifier))
			assertOAuthError(t, err, "invalid_grant")

			if status := userinfoStatus(t, e, tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("access token of a reused code: userinfo status %d, want 401", status)
			}
			_, err = rp.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			assertOAuthError(t, err, "invalid_grant")
		})
	}
}

// TestACodeIssuedBeforeAKeyRotationIsRedeemedAfterIt: codes are sealed under a key derived
// from the current signing key, and a rotation makes that key the previous one.
func TestACodeIssuedBeforeAKeyRotationIsRedeemedAfterIt(t *testing.T) {
	e := newEnv(t)
	rp := e.rp("app2", "app2-secret")
	l, code := rp.loginCode(t, e.browser(), "alice", alicePassword)

	current, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	rotated := current.Copy()
	if err := rotated.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Apply(e.srv.Config(), rotated); err != nil {
		t.Fatalf("apply rotated keys: %v", err)
	}
	rp = e.rp("app2", "app2-secret") // discovers the rotated JWKS
	rp.exchange(t, l, code)
}

// TestAUsedCodeStaysUsedOnEveryReplicasClock: the record of a redemption is all that keeps
// a sealed code from being redeemed again, so no replica may collect it while another still
// accepts the code, even with a clock that runs ahead.
func TestAUsedCodeStaysUsedOnEveryReplicasClock(t *testing.T) {
	tests := []struct {
		name string
		// after is how long after the code's issue the second redemption comes, and ahead
		// how far the clock of the replica that collects garbage just before runs ahead.
		after, ahead time.Duration
	}{
		{"a replica five minutes ahead collects just before the code expires", 59 * time.Second, 5 * time.Minute},
		{"one clock collects at the code's expiry", time.Minute, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rp := e.rp("app2", "app2-secret")
			l, code := rp.loginCode(t, e.browser(), "alice", alicePassword)
			rp.exchange(t, l, code)
			e.clock.Advance(tc.after)
			if _, err := e.store.GarbageCollect(context.Background(), e.clock.Now().Add(tc.ahead)); err != nil {
				t.Fatal(err)
			}
			_, err := rp.oauth.Exchange(context.Background(), code, oauth2.VerifierOption(l.verifier))
			assertOAuthError(t, err, "invalid_grant")
		})
	}
}
