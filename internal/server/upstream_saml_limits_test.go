package server_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
)

// TestASAMLResponseWithManyAssertionsIsRefusedBeforeDecryption posts what an attacker can
// make without any IdP key: copies of one EncryptedAssertion encrypted to the SP
// certificate of the server's public metadata. Each copy would cost an RSA decryption.
func TestASAMLResponseWithManyAssertionsIsRefusedBeforeDecryption(t *testing.T) {
	e, _ := samlEnv(t)
	app1 := e.rp("app1", "app1-secret")
	encrypted := encryptedAssertion(t, spEncryptionCertificate(t, e))
	plain := `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" Version="2.0"/>`
	tests := []struct {
		name       string
		assertions string
		want       string
	}{
		{"three hundred copies of one encrypted assertion are refused by their count", strings.Repeat(encrypted, 300), "holds 300 assertions"},
		{"two plain assertions are refused by their count", plain + plain, "holds 2 assertions"},
		{"an encrypted assertion beside a plain one is refused by their count", plain + encrypted, "holds 2 assertions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			p := b.post(e.issuer+"/connections/corp/callback", samlResponseForm(t, b, app1, tc.assertions))
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, tc.want) {
				t.Fatalf("status %d, want 401 naming the count (%q):\n%s", p.status, tc.want, p.body)
			}
		})
	}
}

// TestSAMLResponsesAreCheckedInBoundedSlots fills the server's verification slots, as a
// burst of password logins or forged responses would: a SAML response then waits its turn
// briefly and is answered 503 with Retry-After instead of adding to the CPU's load, and
// the user's pending login is kept for the retry.
func TestSAMLResponsesAreCheckedInBoundedSlots(t *testing.T) {
	e, _ := samlEnv(t)
	app1 := e.rp("app1", "app1-secret")
	b := e.browser()
	form := samlResponseForm(t, b, app1, encryptedAssertion(t, spEncryptionCertificate(t, e)))

	release := e.srv.HoldVerificationSlots()
	p := b.post(e.issuer+"/connections/corp/callback", form)
	release()
	if p.status != http.StatusServiceUnavailable || p.header.Get("Retry-After") == "" {
		t.Fatalf("with every slot busy: status %d Retry-After %q, want 503 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
	// The retry reaches the connector: the forged assertion is refused for what it is.
	if p := b.post(e.issuer+"/connections/corp/callback", form); p.status != http.StatusUnauthorized {
		t.Fatalf("retry: status %d, want 401:\n%s", p.status, p.body)
	}
}

// samlResponseForm starts a login of app1 through connection corp in b and returns the
// callback form of a Response holding assertions, with the login's RelayState.
func samlResponseForm(t *testing.T, b *browser, app1 *relyingParty, assertions string) url.Values {
	t.Helper()
	p := b.get(app1.authURL(newLogin(), oauthConnection("corp")))
	if p.location == nil {
		t.Fatalf("connection=corp did not redirect to the IdP: status %d", p.status)
	}
	response := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0">` + assertions + `</samlp:Response>`
	return url.Values{
		"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(response))},
		"RelayState":   {p.location.Query().Get("RelayState")},
	}
}

// spEncryptionCertificate reads the SP certificate from the server's public metadata.
func spEncryptionCertificate(t *testing.T, e *env) *x509.Certificate {
	t.Helper()
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal([]byte(samlGet(t, http.DefaultClient, e.issuer+"/connections/corp/saml/metadata")), &md); err != nil {
		t.Fatal(err)
	}
	for _, kd := range md.SPSSODescriptors[0].KeyDescriptors {
		if kd.Use == "encryption" && len(kd.KeyInfo.X509Data.X509Certificates) > 0 {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(kd.KeyInfo.X509Data.X509Certificates[0].Data), ""))
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			return cert
		}
	}
	t.Fatal("the SP metadata has no encryption certificate")
	return nil
}

// encryptedAssertion encrypts an unsigned assertion to cert, as anyone can, without the
// certificate copy xmlenc puts in the key info (a smaller body holds more copies).
func encryptedAssertion(t *testing.T, cert *x509.Certificate) string {
	t.Helper()
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES128CBC
	data, err := enc.Encrypt(cert, []byte(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" Version="2.0"/>`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range data.FindElements(".//X509Data") {
		x.Parent().RemoveChild(x)
	}
	doc := etree.NewDocument()
	wrapper := doc.CreateElement("saml:EncryptedAssertion")
	wrapper.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	wrapper.AddChild(data)
	out, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
