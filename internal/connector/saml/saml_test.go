package saml_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"html"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/saml"
	"github.com/hallpass/hallpass/internal/testutil/testclock"
)

const (
	callbackURL = "http://127.0.0.1:1/connections/corp/callback"
	metadataURL = "http://127.0.0.1:1/connections/corp/saml/metadata"
)

// testKey is generated once: RSA key generation is slow under the race detector, and
// the IdP and every SP may share one key without changing what is tested.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// keyPair returns the RSA test key with a fresh self-signed certificate; RSA because it is
// what SAML IdPs sign with in practice.
func keyPair(t *testing.T, cn string) (*rsa.PrivateKey, *x509.Certificate, string, string) {
	t.Helper()
	key, err := testKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert,
		string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// idp is crewjam/saml's samlidp, the peer, on a loopback httptest server.
type idp struct {
	url   string
	store *samlidp.MemoryStore
	// handler is the samlidp serving now; rotate replaces it by one with a new key.
	handler atomic.Pointer[samlidp.Server]
	// metadataFetches counts GETs of the IdP's metadata.
	metadataFetches atomic.Int32
}

func startIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{store: &samlidp.MemoryStore{}}
	// The handler exists only once the server's URL is known; requests wait for it.
	ready := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-ready
		if r.Method == http.MethodGet && r.URL.Path == "/metadata" {
			p.metadataFetches.Add(1)
		}
		p.handler.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p.url = ts.URL
	key, cert, _, _ := keyPair(t, "idp")
	p.serve(t, key, cert)
	close(ready)
	put(t, ts.URL+"/users/alice", "application/json",
		`{"name":"alice","password":"alice-pass","email":"alice@corp.example","common_name":"Alice Corp","groups":["staff","ops"]}`)
	return p
}

// serve makes the IdP sign with key and publish cert, keeping its users and SPs.
func (p *idp) serve(t *testing.T, key *rsa.PrivateKey, cert *x509.Certificate) {
	t.Helper()
	u, _ := url.Parse(p.url)
	srv, err := samlidp.New(samlidp.Options{URL: *u, Key: key, Signer: key, Certificate: cert, Store: p.store,
		Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatalf("start samlidp: %v", err)
	}
	p.handler.Store(srv)
}

// rotate gives the IdP a new signing key and certificate, as an IdP's administrator does
// before the old certificate expires.
func (p *idp) rotate(t *testing.T) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "idp-2"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p.serve(t, key, cert)
}

func put(t *testing.T, u, contentType, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %s %s", u, resp.Status, b)
	}
}

// How openSP registers the SP at the IdP.
const (
	unregistered = iota
	// encrypted: with its encryption key, so samlidp encrypts the assertions (as most
	// enterprise IdPs do when the SP offers a key).
	encrypted
	// plain: without it, so a test can read and alter the assertion.
	plain
)

// openSP builds a connector with a fresh SP key pair and registers its metadata at the
// IdP under name.
func openSP(t *testing.T, p *idp, name, metadata string, register int) *saml.Connector {
	t.Helper()
	return openSPWithClock(t, p, name, metadata, register, nil)
}

// openSPWithClock is openSP with the connector's clock.
func openSPWithClock(t *testing.T, p *idp, name, metadata string, register int, now func() time.Time) *saml.Connector {
	t.Helper()
	_, _, keyPEM, certPEM := keyPair(t, "sp-"+name)
	c, err := saml.Open(context.Background(), config.SAMLConnection{MetadataURL: p.url + "/metadata", SPKeyPEM: keyPEM, SPCertificatePEM: certPEM},
		connector.Options{CallbackURL: callbackURL, MetadataURL: metadata, Now: now})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if register != unregistered {
		_, md, err := c.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if register == plain {
			md = encryptionKeyRe.ReplaceAll(md, nil)
		}
		put(t, p.url+"/services/"+name, "application/samlmetadata+xml", string(md))
	}
	return c
}

var (
	encryptionKeyRe = regexp.MustCompile(`(?s)<KeyDescriptor use="encryption">.*?</KeyDescriptor>`)
	inputRe         = regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)"`)
	formRe          = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// signIn runs the SP-initiated login at the IdP as a browser would and returns the
// SAMLResponse it would post to the callback.
func signIn(t *testing.T, c *saml.Connector, relayState string) (samlResponse string, requestID []byte) {
	t.Helper()
	loginURL, private, err := c.LoginURL(context.Background(), relayState)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar}
	resp, err := b.Get(loginURL)
	if err != nil {
		t.Fatalf("open the IdP: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fields := hiddenFields(string(page))
	action := formRe.FindStringSubmatch(string(page))
	if action == nil || fields.Get("SAMLRequest") == "" {
		t.Fatalf("no login form at the IdP:\n%s", page)
	}
	fields.Set("user", "alice")
	fields.Set("password", "alice-pass")
	target, _ := resp.Request.URL.Parse(html.UnescapeString(action[1]))
	resp, err = b.PostForm(target.String(), fields)
	if err != nil {
		t.Fatalf("sign in at the IdP: %v", err)
	}
	resp.Body.Close()
	// samlidp's form signs in at /login and answers with the new session; the browser then
	// asks again, and the IdP answers the AuthnRequest from its session.
	resp, err = b.Get(loginURL)
	if err != nil {
		t.Fatalf("return to the IdP: %v", err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	out := hiddenFields(string(page))
	if out.Get("SAMLResponse") == "" || out.Get("RelayState") != relayState {
		t.Fatalf("the IdP did not answer with a SAMLResponse and the RelayState:\n%s", page)
	}
	return out.Get("SAMLResponse"), private
}

func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range inputRe.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func callback(samlResponse string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, callbackURL, strings.NewReader(url.Values{"SAMLResponse": {samlResponse}, "RelayState": {"rs"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// rewrite decodes a SAMLResponse, lets edit change it and encodes it again.
func rewrite(t *testing.T, samlResponse string, edit func(doc *etree.Document)) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func TestSignInThroughSamlidp(t *testing.T) {
	p := startIDP(t)
	c := openSP(t, p, "corp", metadataURL, encrypted)
	pc := openSP(t, p, "plain", "http://127.0.0.1:1/connections/plain/saml/metadata", plain)
	ctx := context.Background()

	t.Run("the SP metadata names the entity ID and the callback", func(t *testing.T) {
		_, md, _ := c.Metadata()
		if !strings.Contains(string(md), `entityID="`+metadataURL+`"`) || !strings.Contains(string(md), `Location="`+callbackURL+`"`) {
			t.Fatalf("metadata:\n%s", md)
		}
	})

	resp, reqID := signIn(t, c, "rs")
	id, _, err := c.HandleCallback(ctx, callback(resp), reqID)
	if err != nil {
		t.Fatalf("a valid response was refused: %v", err)
	}
	if id.UserID != "alice@corp.example" || id.Username != "alice" || id.Name != "Alice Corp" || id.Email != "alice@corp.example" || !slices.Equal(id.Groups, []string{"ops", "staff"}) {
		t.Fatalf("identity = %+v", id)
	}

	cases := []struct {
		name     string
		response func(t *testing.T) (string, []byte)
		sp       func(t *testing.T) *saml.Connector
		now      time.Duration // how far the SP's clock is ahead
		want     string
	}{
		{name: "a replayed assertion is refused", want: "already used", response: func(*testing.T) (string, []byte) { return resp, reqID }},
		{name: "an assertion without signatures is refused", want: "not signed", sp: func(*testing.T) *saml.Connector { return pc }, response: func(t *testing.T) (string, []byte) {
			r, id := signIn(t, pc, "rs")
			return rewrite(t, r, func(doc *etree.Document) {
				for _, sig := range doc.FindElements("//Signature") {
					sig.Parent().RemoveChild(sig)
				}
			}), id
		}},
		{name: "a signed response around an unsigned assertion is refused", want: "not signed", sp: func(*testing.T) *saml.Connector { return pc }, response: func(t *testing.T) (string, []byte) {
			r, id := signIn(t, pc, "rs")
			return rewrite(t, r, func(doc *etree.Document) {
				for _, sig := range doc.FindElements("//Assertion/Signature") {
					sig.Parent().RemoveChild(sig)
				}
			}), id
		}},
		{name: "an assertion altered after signing is refused", want: "invalid signature", sp: func(*testing.T) *saml.Connector { return pc }, response: func(t *testing.T) (string, []byte) {
			r, id := signIn(t, pc, "rs")
			return rewrite(t, r, func(doc *etree.Document) {
				for _, v := range doc.FindElements("//AttributeValue") {
					if v.Text() == "staff" {
						v.SetText("admins")
					}
				}
			}), id
		}},
		{name: "an assertion for another service provider is refused", want: "wrong audience", response: func(t *testing.T) (string, []byte) { return signIn(t, pc, "rs") },
			sp: func(t *testing.T) *saml.Connector {
				return openSP(t, p, "other", "http://127.0.0.1:1/connections/other/saml/metadata", unregistered)
			}},
		{name: "an expired assertion is refused", want: "expired", now: time.Hour, response: func(t *testing.T) (string, []byte) { return signIn(t, c, "rs") }},
		{name: "a response to another sign-in is refused", want: "does not answer this sign-in", response: func(t *testing.T) (string, []byte) {
			r, _ := signIn(t, c, "rs")
			return r, []byte("id-of-another-request")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, id := tc.response(t)
			sp := c
			if tc.sp != nil {
				sp = tc.sp(t)
			}
			if tc.now != 0 {
				// crewjam/saml reads the time from its package clock only.
				orig := crewjam.TimeNow
				crewjam.TimeNow = func() time.Time { return orig().Add(tc.now) }
				defer func() { crewjam.TimeNow = orig }()
			}
			_, _, err := sp.HandleCallback(ctx, callback(r), id)
			if msg := connector.UserMessage(err); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %v has message %q, want one containing %q", err, msg, tc.want)
			}
		})
	}
}

func TestOpenRefusesAnIncompleteConfig(t *testing.T) {
	_, _, keyPEM, certPEM := keyPair(t, "sp")
	opts := connector.Options{CallbackURL: callbackURL, MetadataURL: metadataURL}
	for _, tc := range []struct {
		name string
		cfg  config.SAMLConnection
		want string
	}{
		{"a connection without the SP key pair is refused", config.SAMLConnection{MetadataXML: "<x/>"}, "key and certificate are required"},
		{"metadata without an IdP is refused", config.SAMLConnection{MetadataXML: "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\"/>", SPKeyPEM: keyPEM, SPCertificatePEM: certPEM}, "no IDPSSODescriptor"},
		{"a connection without metadata is refused", config.SAMLConnection{SPKeyPEM: keyPEM, SPCertificatePEM: certPEM}, "metadataURL or metadataXML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := saml.Open(context.Background(), tc.cfg, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTheIdPsNewSigningCertificateIsFetchedFromItsMetadata rotates the IdP's signing key
// while the connector runs: the next response is signed with a key the connector has not
// seen, and it must fetch the IdP's metadata again rather than refuse every login until
// someone changes the config.
func TestTheIdPsNewSigningCertificateIsFetchedFromItsMetadata(t *testing.T) {
	p := startIDP(t)
	clock := testclock.New(time.Now())
	c := openSPWithClock(t, p, "corp", metadataURL, plain, clock.Now)
	ctx := context.Background()
	fetches := func(want int32) {
		t.Helper()
		if got := p.metadataFetches.Load(); got != want {
			t.Fatalf("the IdP's metadata was fetched %d times, want %d", got, want)
		}
	}
	fetches(1)

	clock.Advance(time.Hour)
	p.rotate(t)
	resp, reqID := signIn(t, c, "rs")
	if _, _, err := c.HandleCallback(ctx, callback(resp), reqID); err != nil {
		t.Fatalf("a response signed with the IdP's new key was refused: %v", err)
	}
	fetches(2)

	// A response that fails again within minutes does not make the connector fetch again.
	forged := rewrite(t, resp, func(doc *etree.Document) {
		doc.FindElement("//Assertion").CreateAttr("ID", "id-forged")
	})
	if _, _, err := c.HandleCallback(ctx, callback(forged), reqID); err == nil {
		t.Fatal("an altered assertion was accepted")
	}
	fetches(2)

	// A day later the next login fetches the metadata again, changed or not.
	clock.Advance(25 * time.Hour)
	if _, _, err := c.LoginURL(ctx, "rs"); err != nil {
		t.Fatal(err)
	}
	fetches(3)
	if _, _, err := c.LoginURL(ctx, "rs"); err != nil {
		t.Fatal(err)
	}
	fetches(3)
}
