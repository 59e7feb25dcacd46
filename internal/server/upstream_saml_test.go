package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"html"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml/samlidp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server"
)

var samlInputRe = regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)"`)

// TestSignInThroughSAML signs in through crewjam/saml's samlidp, the peer: the server
// publishes its SP metadata at the connection's stable URL, the IdP imports it, and the
// IdP's POSTed response creates the central session like any other login.
func TestSignInThroughSAML(t *testing.T) {
	e, idpSrv := samlEnv(t)
	app1 := e.rp("app1", "app1-secret")
	b := e.browser()
	l := newLogin()
	p := b.get(app1.authURL(l, oauthConnection("corp")))
	if p.location == nil || !strings.HasPrefix(p.location.String(), idpSrv.URL+"/sso?") {
		t.Fatalf("connection=corp should go to the IdP, got status %d location %v", p.status, p.location)
	}
	up := &http.Client{Jar: b.c.Jar}
	samlGet(t, up, p.location.String()) // the IdP's login form
	resp, err := up.PostForm(idpSrv.URL+"/login", url.Values{"user": {"alice"}, "password": {"alice-pass"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Signed in at the IdP, the browser asks again and gets the auto-posting response form.
	form := url.Values{}
	for _, m := range samlInputRe.FindAllStringSubmatch(samlGet(t, up, p.location.String()), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("SAMLResponse") == "" {
		t.Fatal("the IdP did not answer with a SAMLResponse")
	}
	// What an attacker who copied the browser's traffic would replay: the pending login's
	// cookie and the IdP's answer.
	callbackURL, _ := url.Parse(e.issuer + "/connections/corp/callback")
	var pendingCookie *http.Cookie
	for _, c := range b.c.Jar.Cookies(callbackURL) {
		if strings.HasPrefix(c.Name, "hallpass_up_") {
			pendingCookie = c
		}
	}
	if pendingCookie == nil {
		t.Fatal("no pending-login cookie before the callback")
	}
	_, idt := app1.exchange(t, l, app1.callback(t, l, b.post(e.issuer+"/connections/corp/callback", form)))
	var claims struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "corp|alice@corp.example" || claims.Email != "alice@corp.example" || !slices.Equal(claims.Groups, []string{"staff"}) {
		t.Fatalf("sub=%q claims=%+v", idt.Subject, claims)
	}

	t.Run("a replayed response is refused", func(t *testing.T) {
		p := b.post(e.issuer+"/connections/corp/callback", form)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "This sign-in has expired") {
			t.Fatalf("status %d:\n%s", p.status, p.body)
		}
	})
	t.Run("a replayed response with a copy of its cookie is refused by another replica", func(t *testing.T) {
		keys, err := testKeys()
		if err != nil {
			t.Fatal(err)
		}
		// A second replica shares the storage and the keys, not the SAML connector's memory.
		replica, err := server.New(e.srv.Config(), keys, e.store, server.WithClock(e.clock.Now),
			server.WithLogger(slog.New(slog.DiscardHandler)), server.WithMetricsRegisterer(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = replica.Shutdown(context.Background()) })
		req := httptest.NewRequest(http.MethodPost, callbackURL.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(pendingCookie)
		rec := httptest.NewRecorder()
		replica.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "This sign-in has expired") {
			t.Fatalf("status %d, location %q:\n%s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
		}
	})
}

// samlEnv starts crewjam/saml's samlidp as the IdP of connection "corp" (app1 may use it)
// and a server that trusts it; the IdP knows the server's SP metadata and user alice.
func samlEnv(t *testing.T) (*env, *httptest.Server) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	// The IdP and the SP share one key pair: generating RSA keys is slow under -race.
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))

	ready := make(chan struct{})
	var idpHandler http.Handler
	idpSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-ready; idpHandler.ServeHTTP(w, r) }))
	t.Cleanup(idpSrv.Close)
	idpURL, _ := url.Parse(idpSrv.URL)
	idp, err := samlidp.New(samlidp.Options{URL: *idpURL, Key: key, Signer: key, Certificate: cert, Store: &samlidp.MemoryStore{}, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	idpHandler = idp
	close(ready)
	samlPut(t, idpSrv.URL+"/users/alice", `{"name":"alice","password":"alice-pass","email":"alice@corp.example","common_name":"Alice Corp","groups":["staff"]}`)
	idpMetadata := samlGet(t, http.DefaultClient, idpSrv.URL+"/metadata")

	e := newEnv(t, func(c *config.Config) {
		c.Connections = append(c.Connections, config.Connection{Name: "corp", Type: config.ConnectionSAML, DisplayName: "Corp SSO",
			SAML: &config.SAMLConnection{MetadataXML: idpMetadata, SPKeyPEM: keyPEM, SPCertificatePEM: certPEM}})
		slices.SortFunc(c.Connections, func(a, b config.Connection) int { return strings.Compare(a.Name, b.Name) })
		for i := range c.Clients {
			if c.Clients[i].ID == "app1" {
				c.Clients[i].Connections = []string{"corp", "people", "staff"}
			}
		}
	})
	spMetadata := samlGet(t, http.DefaultClient, e.issuer+"/connections/corp/saml/metadata")
	if !strings.Contains(spMetadata, `entityID="`+e.issuer+`/connections/corp/saml/metadata"`) || !strings.Contains(spMetadata, e.issuer+"/connections/corp/callback") {
		t.Fatalf("SP metadata does not name its entity ID and assertion consumer service:\n%s", spMetadata)
	}
	samlPut(t, idpSrv.URL+"/services/hallpass", spMetadata)

	return e, idpSrv
}

func samlPut(t *testing.T, u, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("PUT %s: %s", u, resp.Status)
	}
}

func samlGet(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}
