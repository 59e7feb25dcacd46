package server_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// passkeySignInPage opens an application's login page in b, with its "Sign in with a
// passkey" button.
func passkeySignInPage(t *testing.T, e *env, b *browser) (*relyingParty, login, passkeyPage) {
	t.Helper()
	rp, l, authURL := hostLogin(e, "app1")
	return rp, l, openPasskeyForm(t, b, b.get(authURL))
}

// answer posts p's form with key's answer to its options, changed by change when not nil.
func (p passkeyPage) answer(t *testing.T, e *env, key *softKey, change func(ceremonyAnswer) ceremonyAnswer) page {
	t.Helper()
	a := ownAnswer(e, key)
	if change != nil {
		a = change(a)
	}
	p.form.Set("credential", key.assert(t, p.o, a))
	return p.b.post(p.action, p.form)
}

// signInWithPasskey signs in with key alone, from a browser of its own, and fails the test
// when the application does not get a code.
func signInWithPasskey(t *testing.T, e *env, key *softKey) {
	t.Helper()
	rp, l, p := passkeySignInPage(t, e, e.browser())
	rp.callback(t, l, p.answer(t, e, key, nil))
}

// forgedBy signs the answer with a key that is not the passkey's.
func forgedBy(t *testing.T) func(ceremonyAnswer) ceremonyAnswer {
	return func(a ceremonyAnswer) ceremonyAnswer { a.key = newSoftKey(t).key; return a }
}

func assertThrottled(t *testing.T, p page, message string) {
	t.Helper()
	if p.status != http.StatusTooManyRequests || p.location != nil || !strings.Contains(p.body, message) {
		t.Fatalf("status %d, redirect %v; want 429 on the page saying %q:\n%s", p.status, p.location, message, p.body)
	}
}

func TestBogusPasskeySignInsThrottleTheAddressTheyComeFromAndNoUser(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	alices := newSoftKey(t)
	enrolSoftKey(t, e, alices)
	// Answers of credentials the server does not have: one of a user handle no one has, one
	// with alice's user handle (which is no secret to a passkey's holder) and a credential
	// of its own.
	stranger, impostor := newSoftKey(t), newSoftKey(t)
	stranger.handle, impostor.handle = make([]byte, 32), alices.handle
	_, _ = rand.Read(stranger.handle)
	bogus := []*softKey{stranger, impostor}

	// More bogus answers than a user's budget (20), from many addresses: when every
	// usernameless answer counted on one key of the connection, they locked out everyone's
	// passkey sign-in.
	for i := range 30 {
		_, _, p := passkeySignInPage(t, e, e.browser())
		if got := p.answer(t, e, bogus[i%2], nil); got.status != http.StatusUnauthorized {
			t.Fatalf("bogus answer %d: status %d, want 401", i+1, got.status)
		}
	}
	signInWithPasskey(t, e, alices)

	// From one address, bogus answers are refused until the address's budget (100 failures
	// across users, as for passwords) is spent; then that address is throttled.
	attacker := e.browser()
	_, _, p := passkeySignInPage(t, e, attacker)
	refused := 0
	for ; refused <= 100; refused++ {
		got := p.answer(t, e, bogus[refused%2], nil)
		if got.status == http.StatusTooManyRequests {
			assertThrottled(t, got, "Too many failed sign-ins. Try again in 1 seconds.")
			p = openPasskeyForm(t, attacker, got)
			break
		}
		if got.status != http.StatusUnauthorized {
			t.Fatalf("bogus answer %d from one address: status %d, want 401 or 429", refused+1, got.status)
		}
		p = openPasskeyForm(t, attacker, got)
	}
	if refused != 100 {
		t.Fatalf("one address was throttled after %d bogus answers, want 100", refused)
	}
	// The address is throttled before its answer is read: alice's own passkey is not checked
	// there.
	assertThrottled(t, p.answer(t, e, alices, nil), "Too many failed sign-ins")
	assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="webauthn"}`, 2)
	assertMetric(t, e, `hallpass_logins_total{result="throttled"}`, 2)
	assertAudited(t, e, "throttled", map[string]string{"factor": "webauthn", "connection": "people", "subject": ""}, 2)
	assertAudited(t, e, "failed", map[string]string{"factor": "webauthn", "connection": "people", "subject": ""}, 130)

	// Everywhere else alice signs in with her passkey.
	signInWithPasskey(t, e, alices)
}

func TestFailedPasskeySignInsOfOneUserThrottleThatUserOnly(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	alices, bobs := newSoftKey(t), newSoftKey(t)
	enrolSoftKey(t, e, alices)
	enrolSoftKeyAs(t, e, bobs, "bob", bobPassword)

	// Twenty forged answers naming alice's passkey, four from each of five addresses (each
	// below the five a user may fail from one address).
	for range 5 {
		b := e.browser()
		_, _, p := passkeySignInPage(t, e, b)
		for i := range 4 {
			got := p.answer(t, e, alices, forgedBy(t))
			if got.status != http.StatusUnauthorized || !strings.Contains(got.body, "That passkey could not be used here") {
				t.Fatalf("forged answer %d: status %d, want 401 with the page's error:\n%s", i+1, got.status, got.body)
			}
			p = openPasskeyForm(t, b, got)
		}
	}
	alice := map[string]string{"factor": "webauthn", "connection": "people", "subject": "people|alice"}
	assertAudited(t, e, "failed", alice, 20)

	// Her budget is spent: her own passkey, from an address that sent nothing, is not checked.
	_, _, p := passkeySignInPage(t, e, e.browser())
	assertThrottled(t, p.answer(t, e, alices, nil), "Too many failed sign-ins. Try again in 1 seconds.")
	assertAudited(t, e, "throttled", with(alice, "msg", "second factor throttled"), 1)
	assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="webauthn"}`, 1)

	// Bob's is another user's budget.
	signInWithPasskey(t, e, bobs)

	// After the wait alice signs in again.
	e.clock.Advance(2 * time.Second)
	signInWithPasskey(t, e, alices)
}

func TestWrongPasskeyAnswersAsSecondFactorAreThrottledLikeWrongCodes(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	alices := newSoftKey(t)
	enrolSoftKey(t, e, alices)

	rp, l, authURL := hostLogin(e, "app1")
	b := e.browser()
	p := openPasskeyForm(t, b, b.submitOwnForm(b.get(authURL), url.Values{"username": {"alice"}, "password": {alicePassword}}))
	for i := range 5 {
		got := p.answer(t, e, alices, forgedBy(t))
		if got.status != http.StatusUnauthorized {
			t.Fatalf("forged answer %d: status %d, want 401", i+1, got.status)
		}
		p = openPasskeyForm(t, b, got)
	}
	got := p.answer(t, e, alices, forgedBy(t))
	assertThrottled(t, got, "Too many failed attempts. Try again in 1 seconds.")
	p = openPasskeyForm(t, b, got)
	// While throttled her own passkey is not checked either.
	got = p.answer(t, e, alices, nil)
	assertThrottled(t, got, "Too many failed attempts")
	assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="webauthn"}`, 2)
	assertMetric(t, e, `hallpass_second_factor_events_total{event="throttled",factor="totp"}`, 0)
	assertAudited(t, e, "throttled", map[string]string{"factor": "webauthn", "connection": "people", "subject": "people|alice"}, 2)

	e.clock.Advance(2 * time.Second)
	rp.callback(t, l, openPasskeyForm(t, b, got).answer(t, e, alices, nil))
}
