package controllers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/connector/conntest"
)

// upstreamOIDC is a minimal OpenID provider on loopback: discovery and a JWKS with one key.
func upstreamOIDC(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`))
	})
	return srv
}

func oidcConnection(ns, name, issuer string) *hallpassv1.IdentityConnection {
	ref := hallpassv1.SecretKeyReference{Name: name + "-creds", Key: "id"}
	return &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hallpassv1.IdentityConnectionSpec{
			ServerRef: hallpassv1.LocalServerReference{Name: "sso"},
			Type:      hallpassv1.ConnectionOIDC,
			OIDC:      &hallpassv1.OIDCConnection{Issuer: issuer, ClientIDRef: ref, ClientSecretRef: ref},
		},
	}
}

// TestUnreachableUpstreamIsReportedButKeptServed checks the Reachable condition of an OIDC
// connection, and that an upstream outage never takes the connection off the server.
func TestUnreachableUpstreamIsReportedButKeptServed(t *testing.T) {
	ns := newNamespace(t, nil)
	upstream := upstreamOIDC(t)
	conn := oidcConnection(ns, "corp", upstream.URL)
	create(t, newServer(ns, "sso"), conn,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp-creds"}, StringData: map[string]string{"id": "hallpass"}})
	eventually(t, func(g Gomega) {
		c := get(g, ns, "corp", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.IdentityConnectionReachable)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(c.Status.LastCheckTime).NotTo(BeNil())
	})

	upstream.Close()
	clock.Advance(healthCheckInterval + time.Second)
	touch(t, conn)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "corp", &hallpassv1.IdentityConnection{})
		reachable := condition(c.Status.Conditions, hallpassv1.IdentityConnectionReachable)
		g.Expect(reachable).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonUnreachable))
		g.Expect(reachable.Message).To(ContainSubstring("/.well-known/openid-configuration"))
		g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		_, served := renderedConfig(g, ns, "sso").Connection("corp")
		g.Expect(served).To(BeTrue(), "a failing check must not remove the connection")
	})
}

// TestExpiringSAMLCertificateIsWarnedAbout gives a SAML connection IdP metadata whose
// signing certificate expires in ten days: a warning Event and the expiry in status.
func TestExpiringSAMLCertificateIsWarnedAbout(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	expiry := clock.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	metadata := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com">
  <IDPSSODescriptor><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data>
  <X509Certificate>` + selfSignedCertificate(t, expiry) + `</X509Certificate>
  </X509Data></KeyInfo></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>`
	create(t, newServer(ns, "sso"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp"}, StringData: map[string]string{"metadata.xml": metadata}},
		&hallpassv1.IdentityConnection{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
			Spec: hallpassv1.IdentityConnectionSpec{
				ServerRef: hallpassv1.LocalServerReference{Name: "sso"},
				Type:      hallpassv1.ConnectionSAML,
				SAML:      &hallpassv1.SAMLConnection{MetadataSecretRef: &hallpassv1.SecretKeyReference{Name: "idp", Key: "metadata.xml"}},
			},
		})
	eventually(t, func(g Gomega) {
		c := get(g, ns, "corp", &hallpassv1.IdentityConnection{})
		g.Expect(c.Status.CertificateExpiry).NotTo(BeNil())
		g.Expect(c.Status.CertificateExpiry.Time).To(BeTemporally("==", expiry))
		g.Expect(eventReasons(g, ns, "corp")).To(ContainElement(hallpassv1.ReasonCertificateExpiring))
	})
	c := get(g, ns, "corp", &hallpassv1.IdentityConnection{})
	g.Expect(condition(c.Status.Conditions, hallpassv1.IdentityConnectionReachable).Status).To(Equal(metav1.ConditionTrue))
}

func selfSignedCertificate(t *testing.T, notAfter time.Time) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// TestLDAPServiceAccountIsChecked binds to a real slapd as the connection's service
// account, then with a wrong password: Reachable follows.
func TestLDAPServiceAccountIsChecked(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	directory := conntest.StartSlapd(t)
	conn := &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "directory"},
		Spec: hallpassv1.IdentityConnectionSpec{
			ServerRef: hallpassv1.LocalServerReference{Name: "sso"},
			Type:      hallpassv1.ConnectionLDAP,
			LDAP: &hallpassv1.LDAPConnection{
				URL: directory.LDAPSURL, BindDN: conntest.LDAPServiceDN,
				BindPasswordRef: hallpassv1.SecretKeyReference{Name: "ldap", Key: "password"},
				RootCARef:       &hallpassv1.SecretKeyReference{Name: "ldap", Key: "ca.crt"},
				UserSearch:      hallpassv1.LDAPUserSearch{BaseDN: conntest.LDAPSuffix},
			},
		},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ldap"},
		StringData: map[string]string{"password": conntest.LDAPServicePass, "ca.crt": directory.CA.CertPEM}}
	create(t, newServer(ns, "sso"), secret, conn)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "directory", &hallpassv1.IdentityConnection{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.IdentityConnectionReachable)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
	})

	secret = get(g, ns, "ldap", &corev1.Secret{})
	patch := client.MergeFrom(secret.DeepCopy())
	secret.Data["password"] = []byte("not-the-password")
	g.Expect(k8s.Patch(ctx, secret, patch)).To(Succeed())
	clock.Advance(healthCheckInterval + time.Second)
	touch(t, conn)
	eventually(t, func(g Gomega) {
		c := get(g, ns, "directory", &hallpassv1.IdentityConnection{})
		reachable := condition(c.Status.Conditions, hallpassv1.IdentityConnectionReachable)
		g.Expect(reachable).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonUnreachable))
		g.Expect(reachable.Message).NotTo(ContainSubstring("not-the-password"))
	})
}
