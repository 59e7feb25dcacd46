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
// made for (the page's, unless a test changes them), and the key that signs it.
type ceremonyAnswer struct {
	origin, rpID string
	key          *ecdsa.PrivateKey
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

// create answers a "create" button: a new credential with attestation "none".
func (k *softKey) create(t *testing.T, o buttonOptions, origin string) string {
	t.Helper()
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatal(err)
	}
	k.handle = handle
	pub, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: k.key.X.FillBytes(make([]byte, 32)), YCoord: k.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	attested := append(make([]byte, 16), byte(len(k.id)>>8), byte(len(k.id)))
	attested = append(append(attested, k.id...), pub...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{},
		"authData": authenticatorData(o.PublicKey.RP.ID, flagUserPresent|flagUserVerified|flagAttested, 0, attested)})
	if err != nil {
		t.Fatal(err)
	}
	return k.credentialJSON(t, map[string]any{"clientDataJSON": b64.EncodeToString(clientDataJSON(t, "webauthn.create", o.PublicKey.Challenge, origin)),
		"attestationObject": b64.EncodeToString(obj), "transports": []string{"usb"}})
}

// assert answers a "get" button with the next signature counter.
func (k *softKey) assert(t *testing.T, o buttonOptions, a ceremonyAnswer) string {
	t.Helper()
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
	b := e.browser()
	rp, l, authURL := hostLogin(e, "app1")
	p := b.submitOwnForm(b.get(authURL), url.Values{"username": {"alice"}, "password": {alicePassword}})
	action, form, o := passkeyForm(t, p)
	form.Set("credential", key.create(t, o, e.issuer))
	codes := b.post(action, form)
	if n := len(recoveryCodeRe.FindAllString(codes.body, -1)); n != 10 {
		t.Fatalf("after creating a passkey at the enrolment step: %d recovery codes, want 10 (status %d):\n%s", n, codes.status, codes.body)
	}
	rp.callback(t, l, b.submitOwnForm(codes, nil))
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
	e := newEnvOnHost(t, "sso.test", func(c *config.Config) {
		c.MFA = config.MFA{Policy: config.MFARequired, Factors: []string{config.FactorTOTP, config.FactorWebAuthn}}
	})
	key := newSoftKey(t)
	enrolSoftKey(t, e, key)
	assertMetric(t, e, `hallpass_second_factor_events_total{event="enrolled",factor="webauthn"}`, 1)
	host := strings.TrimPrefix(e.issuer, "http://")
	rpID := strings.Split(host, ":")[0]
	other := newSoftKey(t).key

	// The valid answer first, so that every refusal below is the change it makes.
	b := e.browser()
	rp, l, authURL := hostLogin(e, "app1")
	action, form, o := passkeyForm(t, b.get(authURL))
	form.Set("credential", key.assert(t, o, ceremonyAnswer{origin: e.issuer, rpID: rpID, key: key.key}))
	rp.callback(t, l, b.post(action, form))
	first := func() (*browser, string, url.Values) { return b, action, form }

	for name, tc := range map[string]refusedPasskey{
		"an assertion signed by a key that is not the passkey's is refused": {
			answer: func(buttonOptions) ceremonyAnswer { return ceremonyAnswer{origin: e.issuer, rpID: rpID, key: other} },
			status: 401, message: "That passkey could not be used here", auditedEvent: "failed",
		},
		"an assertion made for another origin is refused": {
			answer: func(buttonOptions) ceremonyAnswer {
				return ceremonyAnswer{origin: "https://sso.attacker.test", rpID: rpID, key: key.key}
			},
			status: 401, message: "That passkey could not be used here", auditedEvent: "failed",
		},
		"an assertion made for another relying party ID is refused": {
			answer: func(buttonOptions) ceremonyAnswer {
				return ceremonyAnswer{origin: e.issuer, rpID: "attacker.test", key: key.key}
			},
			status: 401, message: "That passkey could not be used here", auditedEvent: "failed",
		},
		"the same answer posted again by the same browser is refused": {
			replay: first,
			status: 400, message: "This form has expired", auditedEvent: "challenge_refused",
		},
		"a challenge shown to another browser is refused": {
			ceremony: func() (url.Values, buttonOptions) {
				_, theirs, theirOptions := passkeyForm(t, e.browser().get(authURL))
				return theirs, theirOptions
			},
			status: 400, message: "This form has expired", auditedEvent: "challenge_refused",
		},
	} {
		if tc.answer == nil {
			tc.answer = func(buttonOptions) ceremonyAnswer { return ceremonyAnswer{origin: e.issuer, rpID: rpID, key: key.key} }
		}
		t.Run(name, func(t *testing.T) {
			b, action, form := tc.answered(t, e, key, rpID)
			sessions := aliceSessions(t, e)
			event := `hallpass_second_factor_events_total{event="` + tc.auditedEvent + `",factor="webauthn"}`
			before := metricValue(t, e, event)

			p := b.post(action, form)
			if p.status != tc.status || p.location != nil || !strings.Contains(p.body, tc.message) {
				t.Fatalf("status %d, redirect %v; want %d on the login page saying %q:\n%s", p.status, p.location, tc.status, tc.message, p.body)
			}
			if n := aliceSessions(t, e); n != sessions {
				t.Fatalf("alice has %d sessions after the refusal, had %d", n, sessions)
			}
			if got := metricValue(t, e, event); got != before+1 {
				t.Fatalf("%s = %v, want %v", event, got, before+1)
			}
		})
	}
}

// refusedPasskey is a passkey sign-in that answers something other than its own page.
type refusedPasskey struct {
	// answer is the origin, RP ID and key of the assertion; the page's own when nil.
	answer func(o buttonOptions) ceremonyAnswer
	// ceremony, when set, replaces the form's own challenge.
	ceremony func() (url.Values, buttonOptions)
	// replay, when set, is a browser that posts a form as it was posted before.
	replay       func() (*browser, string, url.Values)
	status       int
	message      string
	auditedEvent string
}

// answered returns a browser and the passkey form it posts: its own login page's, or the
// replayed one, with the answer and challenge of the case.
func (tc refusedPasskey) answered(t *testing.T, e *env, key *softKey, rpID string) (*browser, string, url.Values) {
	t.Helper()
	if tc.replay != nil {
		return tc.replay()
	}
	b := e.browser()
	_, _, authURL := hostLogin(e, "app1")
	action, form, o := passkeyForm(t, b.get(authURL))
	if tc.ceremony != nil {
		var theirs url.Values
		theirs, o = tc.ceremony()
		form.Set("ceremony", theirs.Get("ceremony"))
	}
	form.Set("credential", key.assert(t, o, tc.answer(o)))
	return b, action, form
}
