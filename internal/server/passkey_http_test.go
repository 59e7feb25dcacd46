package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
)

// softKey is a passkey authenticator in software, as a security key works inside: one ES256
// key pair and credential ID, a signature counter, and the user handle it was created for.
// It answers the options the server puts in a passkey button exactly as the browser would
// pass them on, so the server's checks are exercised over HTTP without Chromium.
type softKey struct {
	key     *ecdsa.PrivateKey
	id      []byte
	handle  []byte
	counter uint32
}

// WebAuthn authenticator data flags.
const (
	flagUserPresent  = 0x01
	flagUserVerified = 0x04
	flagAttested     = 0x40
)

var b64 = base64.RawURLEncoding

func newSoftKey(t *testing.T) *softKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softKey{key: key, id: id}
}

// buttonOptions are the fields of a passkey button's options that an authenticator uses.
type buttonOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

// ceremonyAnswer is what an authenticator and browser answer: the origin and RP ID it is
// made for (the page's, unless a test changes them), the key that signs it, and the
// authenticator whose credential ID and user handle it carries (the test's own when nil).
type ceremonyAnswer struct {
	origin, rpID string
	key          *ecdsa.PrivateKey
	as           *softKey
}

// by returns the authenticator that answers: a.as, or k.
func (a ceremonyAnswer) by(k *softKey) *softKey {
	if a.as != nil {
		return a.as
	}
	return k
}

// ownAnswer is the answer of key to a page of e, as the browser makes it.
func ownAnswer(e *env, key *softKey) ceremonyAnswer {
	host := strings.TrimPrefix(e.issuer, "http://")
	return ceremonyAnswer{origin: e.issuer, rpID: strings.Split(host, ":")[0], key: key.key}
}

func clientDataJSON(t *testing.T, kind, challenge, origin string) []byte {
	t.Helper()
	cd, err := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return cd
}

func authenticatorData(rpID string, flags byte, counter uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, attested...)
}

// create answers a "create" button: a new credential of a.key with attestation "none"
// (which carries no signature: a.key is only the public key stored).
func (k *softKey) create(t *testing.T, o buttonOptions, a ceremonyAnswer) string {
	t.Helper()
	k = a.by(k)
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	k.handle = handle
	pub, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: a.key.X.FillBytes(make([]byte, 32)), YCoord: a.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	attested := append(make([]byte, 16), byte(len(k.id)>>8), byte(len(k.id)))
	attested = append(append(attested, k.id...), pub...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{},
		"authData": authenticatorData(a.rpID, flagUserPresent|flagUserVerified|flagAttested, 0, attested)})
	if err != nil {
		t.Fatal(err)
	}
	return k.credentialJSON(t, map[string]any{"clientDataJSON": b64.EncodeToString(clientDataJSON(t, "webauthn.create", o.PublicKey.Challenge, a.origin)),
		"attestationObject": b64.EncodeToString(obj), "transports": []string{"usb"}})
}

// assert answers a "get" button with the next signature counter.
func (k *softKey) assert(t *testing.T, o buttonOptions, a ceremonyAnswer) string {
	t.Helper()
	k = a.by(k)
	k.counter++
	ad := authenticatorData(a.rpID, flagUserPresent|flagUserVerified, k.counter, nil)
	cd := clientDataJSON(t, "webauthn.get", o.PublicKey.Challenge, a.origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(ad, cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return k.credentialJSON(t, map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
		"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.handle)})
}

func (k *softKey) credentialJSON(t *testing.T, response map[string]any) string {
	t.Helper()
	out, err := json.Marshal(map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": response, "clientExtensionResults": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

var (
	passkeyFormRe = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)" class="passkey".*?</form>`)
	optionsRe     = regexp.MustCompile(`data-options="([^"]*)"`)
)

// passkeyForm returns the action, the hidden fields and the options of the page's passkey
// form.
func passkeyForm(t *testing.T, p page) (string, url.Values, buttonOptions) {
	t.Helper()
	m := passkeyFormRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no passkey form on the page (status %d):\n%s", p.status, p.body)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(m[0], -1) {
		form.Set(h[1], unescapeHTML(h[2]))
	}
	var o buttonOptions
	if err := json.Unmarshal([]byte(unescapeHTML(optionsRe.FindStringSubmatch(m[0])[1])), &o); err != nil {
		t.Fatalf("the passkey button's options: %v", err)
	}
	return unescapeHTML(m[1]), form, o
}

// hostLogin is an application's authorization request to a host-named issuer.
func hostLogin(e *env, clientID string) (*relyingParty, login, string) {
	client, _ := e.srv.Config().Client(clientID)
	rp := &relyingParty{e: e, oauth: oauth2.Config{ClientID: clientID, RedirectURL: client.RedirectURIs[0],
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/authorize"}, Scopes: []string{"openid"}}}
	l := newLogin()
	return rp, l, rp.authURL(l, oauthConnection("people"))
}

// enrolSoftKey signs alice in with her password under a Required policy and creates key
// at the enrolment step.
func enrolSoftKey(t *testing.T, e *env, key *softKey) {
	t.Helper()
	enrolSoftKeyAs(t, e, key, "alice", alicePassword)
}

// enrolSoftKeyAs is enrolSoftKey for any user; it returns the browser, signed in with the
// passkey as second factor.
func enrolSoftKeyAs(t *testing.T, e *env, key *softKey, user, password string) *browser {
	t.Helper()
	b := e.browser()
	rp, l, authURL := hostLogin(e, "app1")
	p := b.submitOwnForm(b.get(authURL), url.Values{"username": {user}, "password": {password}})
	action, form, o := passkeyForm(t, p)
	form.Set("credential", key.create(t, o, ownAnswer(e, key)))
	codes := b.post(action, form)
	if n := len(recoveryCodeRe.FindAllString(codes.body, -1)); n != 10 {
		t.Fatalf("after creating a passkey at the enrolment step: %d recovery codes, want 10 (status %d):\n%s", n, codes.status, codes.body)
	}
	rp.callback(t, l, b.submitOwnForm(codes, nil))
	return b
}

var firstFormRe = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)".*?</form>`)

// submitOwnForm submits the page's first form with its own hidden fields and fields, as a
// browser does (formFields gathers the hidden fields of every form on the page).
func (b *browser) submitOwnForm(p page, fields url.Values) page {
	b.e.t.Helper()
	m := firstFormRe.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("no form on the page (status %d):\n%s", p.status, p.body)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(m[0], -1) {
		form.Set(h[1], unescapeHTML(h[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.post(unescapeHTML(m[1]), form)
}

func aliceSessions(t *testing.T, e *env) int {
	t.Helper()
	s, err := e.store.ListSessionsBySubject(t.Context(), "people", "people|alice")
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

func TestAPasskeySignInIsRefusedWhenItsAnswerIsNotThePagesOwn(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	key := newSoftKey(t)
	enrolSoftKey(t, e, key)
	assertMetric(t, e, `hallpass_second_factor_events_total{event="enrolled",factor="webauthn"}`, 1)
	_, _, authURL := hostLogin(e, "app1")
	r := passkeyRefusals{e: e, own: ownAnswer(e, key), respond: key.assert, count: aliceSessions,
		open: func(t *testing.T) passkeyPage {
			t.Helper()
			b := e.browser()
			return openPasskeyForm(t, b, b.get(authURL))
		}}

	// The valid answer first, so that every refusal below is the change it makes.
	rp, l, authURL := hostLogin(e, "app1")
	b := e.browser()
	first := openPasskeyForm(t, b, b.get(authURL))
	first.form.Set("credential", key.assert(t, first.o, r.own))
	rp.callback(t, l, b.post(first.action, first.form))

	wrong := refusal{status: 401, message: "That passkey could not be used here", auditedEvent: "failed"}
	expired := refusal{status: 400, message: "This form has expired", auditedEvent: "challenge_refused"}
	cases := r.everyForm(first, wrong, expired)
	cases["an assertion signed by a key that is not the passkey's is refused"] = refusedPasskey{
		answer: func(a ceremonyAnswer) ceremonyAnswer { a.key = newSoftKey(t).key; return a }, refusal: wrong}
	r.run(t, cases)
}

// requirePasskeys makes a second factor required, an authenticator app or a passkey.
func requirePasskeys(c *config.Config) {
	c.MFA = config.MFA{Policy: config.MFARequired, Factors: []string{config.FactorTOTP, config.FactorWebAuthn}}
}

// passkeyPage is a page's passkey form as a browser holds it.
type passkeyPage struct {
	b      *browser
	action string
	form   url.Values
	o      buttonOptions
}

func openPasskeyForm(t *testing.T, b *browser, p page) passkeyPage {
	t.Helper()
	action, form, o := passkeyForm(t, p)
	return passkeyPage{b: b, action: action, form: form, o: o}
}

// refusal is what a refused passkey answer gets: the status and error of its page, and the
// audit event counted once.
type refusal struct {
	status       int
	message      string
	auditedEvent string
}

// refusedPasskey is an answer to a passkey form other than its page's own.
type refusedPasskey struct {
	// answer changes the page's own answer; nil leaves it.
	answer func(own ceremonyAnswer) ceremonyAnswer
	// ceremony, when set, is another page whose challenge replaces the form's.
	ceremony func(t *testing.T) passkeyPage
	// replay, when set, is a form posted before, posted again as it was.
	replay func() passkeyPage
	refusal
}

// passkeyRefusals runs refused answers against one kind of passkey form: open shows a
// fresh one to a browser of the test's user, elsewhere one to another browser (open when
// nil), respond answers its options as an authenticator does, and count is what an answer
// wrongly accepted would change (the user's sessions, factors). before, when set, runs
// before each case.
type passkeyRefusals struct {
	e         *env
	open      func(t *testing.T) passkeyPage
	elsewhere func(t *testing.T) passkeyPage
	respond   func(t *testing.T, o buttonOptions, a ceremonyAnswer) string
	own       ceremonyAnswer
	count     func(t *testing.T, e *env) int
	before    func(t *testing.T)
}

// everyForm are the refusals every passkey form owes: an answer made for another origin or
// another relying party ID (a phishing page), first's answer posted again, and a challenge
// shown to another browser.
func (r passkeyRefusals) everyForm(first passkeyPage, wrong, expired refusal) map[string]refusedPasskey {
	elsewhere := r.elsewhere
	if elsewhere == nil {
		elsewhere = r.open
	}
	return map[string]refusedPasskey{
		"an answer made for another origin is refused": {
			answer:  func(a ceremonyAnswer) ceremonyAnswer { a.origin = "https://sso.attacker.test"; return a },
			refusal: wrong,
		},
		"an answer made for another relying party ID is refused": {
			answer:  func(a ceremonyAnswer) ceremonyAnswer { a.rpID = "attacker.test"; return a },
			refusal: wrong,
		},
		"the same answer posted again by the same browser is refused": {
			replay: func() passkeyPage { return first }, refusal: expired,
		},
		"a challenge shown to another browser is refused": {
			ceremony: elsewhere, refusal: expired,
		},
	}
}

func (r passkeyRefusals) run(t *testing.T, cases map[string]refusedPasskey) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if r.before != nil {
				r.before(t)
			}
			p := r.answered(t, tc)
			before := r.count(t, r.e)
			event := `hallpass_second_factor_events_total{event="` + tc.auditedEvent + `",factor="webauthn"}`
			audited := metricValue(t, r.e, event)

			res := p.b.post(p.action, p.form)
			if res.status != tc.status || res.location != nil || !strings.Contains(res.body, tc.message) {
				t.Fatalf("status %d, redirect %v; want %d on the page saying %q:\n%s", res.status, res.location, tc.status, tc.message, res.body)
			}
			if n := r.count(t, r.e); n != before {
				t.Fatalf("the refused answer changed the count from %d to %d", before, n)
			}
			if got := metricValue(t, r.e, event); got != audited+1 {
				t.Fatalf("%s = %v, want %v", event, got, audited+1)
			}
		})
	}
}

// answered returns the form a case posts: a fresh page's, or the replayed one, with the
// case's answer and challenge.
func (r passkeyRefusals) answered(t *testing.T, tc refusedPasskey) passkeyPage {
	t.Helper()
	if tc.replay != nil {
		return tc.replay()
	}
	p := r.open(t)
	o := p.o
	if tc.ceremony != nil {
		theirs := tc.ceremony(t)
		p.form.Set("ceremony", theirs.form.Get("ceremony"))
		o = theirs.o
	}
	a := r.own
	if tc.answer != nil {
		a = tc.answer(a)
	}
	p.form.Set("credential", r.respond(t, o, a))
	return p
}

// A passkey removed on the account page signs no one in any more, and a user cannot remove
// another user's passkey by naming its ID.
func TestAPasskeyRemovedOnTheAccountPageNoLongerSignsIn(t *testing.T) {
	e := newEnvOnHost(t, "sso.test", requirePasskeys)
	alicesKey, bobsKey := newSoftKey(t), newSoftKey(t)
	alice := enrolSoftKeyAs(t, e, alicesKey, "alice", alicePassword)
	bob := enrolSoftKeyAs(t, e, bobsKey, "bob", bobPassword)
	alicesPage := alice.get(e.issuer + "/account")
	id := factorIDRe.FindStringSubmatch(alicesPage.body)
	if id == nil {
		t.Fatalf("alice's account page lists no passkey:\n%s", alicesPage.body)
	}

	if p := bob.postAccountForm(bob.get(e.issuer+"/account"), "remove-factor", id[1]); p.status != 404 {
		t.Errorf("bob removing alice's passkey by its ID: status %d, want 404", p.status)
	}
	if p := alice.postAccountForm(alicesPage, "remove-factor", id[1]); p.status != 200 || strings.Contains(p.body, `name="factor"`) {
		t.Fatalf("alice removing her passkey: status %d, the page still lists a factor", p.status)
	}
	assertMetric(t, e, `hallpass_second_factor_events_total{event="removed",factor="webauthn"}`, 1)

	rp, l, authURL := hostLogin(e, "app1")
	b := e.browser()
	form := openPasskeyForm(t, b, b.get(authURL))
	form.form.Set("credential", alicesKey.assert(t, form.o, ownAnswer(e, alicesKey)))
	if p := b.post(form.action, form.form); p.status != 401 || !strings.Contains(p.body, "That passkey could not be used here") {
		t.Errorf("signing in with the removed passkey: status %d, want 401", p.status)
	}
	// Bob's passkey is untouched.
	form = openPasskeyForm(t, b, b.get(authURL))
	form.form.Set("credential", bobsKey.assert(t, form.o, ownAnswer(e, bobsKey)))
	rp.callback(t, l, b.post(form.action, form.form))
}
