package server_test

import (
	"net/url"
	"strings"
	"testing"
)

// secondFactorPage signs user in with a password, in a new browser, up to the second-factor
// page and its passkey button (the enrolment page's, for a user without a factor).
func secondFactorPage(t *testing.T, e *env, user, password string) passkeyPage {
	t.Helper()
	_, _, authURL := hostLogin(e, "app1")
	b := e.browser()
	return openPasskeyForm(t, b, b.submitOwnForm(b.get(authURL), url.Values{"username": {user}, "password": {password}}))
}

// signInWithPasskeyFactor completes a password sign-in of alice with key as the second
// factor; a success also resets her second factor's throttle.
func signInWithPasskeyFactor(t *testing.T, e *env, key *softKey) passkeyPage {
	t.Helper()
	rp, l, authURL := hostLogin(e, "app1")
	b := e.browser()
	p := openPasskeyForm(t, b, b.submitOwnForm(b.get(authURL), url.Values{"username": {"alice"}, "password": {alicePassword}}))
	p.form.Set("credential", key.assert(t, p.o, ownAnswer(e, key)))
	rp.callback(t, l, b.post(p.action, p.form))
	return p
}

func TestAPasskeyAsSecondFactorIsRefusedWhenItsAnswerIsNotThePagesOwn(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	key, bobs := newSoftKey(t), newSoftKey(t)
	enrolSoftKey(t, e, key)
	enrolSoftKeyAs(t, e, bobs, "bob", bobPassword)
	r := passkeyRefusals{e: e, own: ownAnswer(e, key), respond: key.assert, count: aliceSessions,
		open: func(t *testing.T) passkeyPage {
			t.Helper()
			return secondFactorPage(t, e, "alice", alicePassword)
		},
		// Wrong answers count against the second factor's throttle as wrong codes do; a
		// valid sign-in before each case starts it afresh.
		before: func(t *testing.T) {
			t.Helper()
			signInWithPasskeyFactor(t, e, key)
		}}

	// The valid answer first, so that every refusal below is the change it makes.
	first := signInWithPasskeyFactor(t, e, key)

	wrong := refusal{status: 401, message: "That passkey could not be used here", auditedEvent: "failed"}
	expired := refusal{status: 401, message: "This form has expired", auditedEvent: "challenge_refused"}
	cases := r.everyForm(first, wrong, expired)
	cases["an assertion signed by a key that is not the passkey's is refused"] = refusedPasskey{
		answer: func(a ceremonyAnswer) ceremonyAnswer { a.key = newSoftKey(t).key; return a }, refusal: wrong}
	cases["an assertion of another user's passkey is refused"] = refusedPasskey{
		answer: func(a ceremonyAnswer) ceremonyAnswer { a.as, a.key = bobs, bobs.key; return a }, refusal: wrong}
	r.run(t, cases)
}

// factorsOf counts the second factors of a user of the people connection.
func factorsOf(user string) func(t *testing.T, e *env) int {
	return func(t *testing.T, e *env) int {
		t.Helper()
		f, err := e.store.ListFactors(t.Context(), "people", "people|"+user)
		if err != nil {
			t.Fatal(err)
		}
		return len(f)
	}
}

func TestAPasskeyAddedOnTheAccountPageIsRefusedWhenItsAnswerIsNotThePagesOwn(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	key, bobs := newSoftKey(t), newSoftKey(t)
	alice := enrolSoftKeyAs(t, e, key, "alice", alicePassword)
	bob := enrolSoftKeyAs(t, e, bobs, "bob", bobPassword)
	account := e.issuer + "/account"
	r := passkeyRefusals{e: e, own: ownAnswer(e, key), count: factorsOf("alice"),
		open: func(t *testing.T) passkeyPage {
			t.Helper()
			return openPasskeyForm(t, alice, alice.get(account))
		},
		elsewhere: func(t *testing.T) passkeyPage {
			t.Helper()
			return openPasskeyForm(t, bob, bob.get(account))
		},
		// Each answer is a new authenticator's, unless the case says whose.
		respond: func(t *testing.T, o buttonOptions, a ceremonyAnswer) string {
			t.Helper()
			return newSoftKey(t).create(t, o, a)
		}}

	// The valid answer first: a second passkey, and back to the account page.
	first := r.open(t)
	first.form.Set("credential", r.respond(t, first.o, r.own))
	if p := alice.post(first.action, first.form); p.status != 200 || !strings.Contains(p.body, "<h1>Your account</h1>") {
		t.Fatalf("adding a passkey: status %d; want the account page again:\n%s", p.status, p.body)
	}
	if n := factorsOf("alice")(t, e); n != 2 {
		t.Fatalf("alice has %d factors after adding a second passkey, want 2", n)
	}

	wrong := refusal{status: 400, message: "The passkey could not be added", auditedEvent: "failed"}
	expired := refusal{status: 400, message: "This page has expired, or the passkey was added already", auditedEvent: "challenge_refused"}
	cases := r.everyForm(first, wrong, expired)
	cases["a credential registered already to another user is refused"] = refusedPasskey{
		answer: func(a ceremonyAnswer) ceremonyAnswer { a.as = &softKey{id: bobs.id}; return a }, refusal: wrong}
	r.run(t, cases)
}

// The enrolment step of a sign-in under a Required policy, for a user without a factor.
func TestAPasskeyCreatedAtTheEnrolmentStepIsRefusedWhenItsAnswerIsNotThePagesOwn(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	alices := newSoftKey(t)
	enrolSoftKey(t, e, alices)
	r := passkeyRefusals{e: e, own: ownAnswer(e, newSoftKey(t)), count: factorsOf("bob"),
		open: func(t *testing.T) passkeyPage {
			t.Helper()
			return secondFactorPage(t, e, "bob", bobPassword)
		},
		respond: func(t *testing.T, o buttonOptions, a ceremonyAnswer) string {
			t.Helper()
			return newSoftKey(t).create(t, o, a)
		}}
	wrong := refusal{status: 400, message: "The passkey could not be created", auditedEvent: "failed"}
	expired := refusal{status: 400, message: "The passkey could not be created", auditedEvent: "challenge_refused"}
	// Bob enrols nothing here, so there is no answer of his to post twice.
	cases := r.everyForm(passkeyPage{}, wrong, expired)
	delete(cases, "the same answer posted again by the same browser is refused")
	cases["a credential registered already to another user is refused"] = refusedPasskey{
		answer: func(a ceremonyAnswer) ceremonyAnswer { a.as = &softKey{id: alices.id}; return a }, refusal: wrong}
	r.run(t, cases)
}
