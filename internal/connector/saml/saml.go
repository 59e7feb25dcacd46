// Package saml is the connector of a SAML 2.0 identity provider, SP-initiated with
// crewjam/saml: an AuthnRequest by the redirect binding, the IdP's Response by the POST
// binding to the connection's callback (the assertion consumer service).
//
// A response is accepted only when crewjam/saml has verified its signature (on the
// response or the assertion, with the certificate of the IdP's metadata), the assertion
// itself carries a signature, it answers this browser's AuthnRequest (InResponseTo), names
// this SP as audience and the callback as recipient, is within its time window, and its ID
// has not been seen before (replay).
package saml

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/replay"
)

// Bounds: metadata documents are small; replayCacheSize assertion IDs are remembered
// until their NotOnOrAfter, per connection and server process.
//
// IdP metadata fetched from a URL is fetched again when it is metadataMaxAge old (at the
// next login), and at once when a response fails validation, at most once per
// minMetadataRefresh: that is how an IdP's new signing certificate (or SSO URL) reaches a
// running server without a config change, and how a stream of bad responses cannot make it
// hammer the IdP.
const (
	maxMetadataBytes   = 1 << 20
	replayCacheSize    = 10000
	metadataMaxAge     = 24 * time.Hour
	minMetadataRefresh = 5 * time.Minute
)

// Connector is one SAML IdP.
type Connector struct {
	idp      atomic.Pointer[idpState]
	mapping  map[string]string
	replay   *replay.Cache
	metadata []byte

	// idpMetadataURL is where the IdP's metadata came from ("" when it is in the config).
	idpMetadataURL string
	opts           connector.Options
	refreshMu      sync.Mutex
	fetchedAt      time.Time // of the last fetch attempt, under refreshMu
}

// idpState is what the IdP's metadata decides; replaced whole when the metadata changes.
type idpState struct {
	sp     *crewjam.ServiceProvider
	ssoURL string
	raw    []byte
}

var (
	_ connector.CallbackConnector = (*Connector)(nil)
	_ connector.MetadataConnector = (*Connector)(nil)
	_ connector.Origins           = (*Connector)(nil)
)

// Open reads the IdP's metadata (from the config, or fetched from MetadataURL) and the
// SP's key and certificate.
func Open(ctx context.Context, cfg config.SAMLConnection, opts connector.Options) (*Connector, error) {
	key, cert, err := parseKeyPair(cfg.SPKeyPEM, cfg.SPCertificatePEM)
	if err != nil {
		return nil, err
	}
	raw := []byte(cfg.MetadataXML)
	c := &Connector{mapping: cfg.AttributeMapping, replay: replay.New(replayCacheSize), opts: opts}
	if len(raw) == 0 {
		if cfg.MetadataURL == "" {
			return nil, errors.New("metadataURL or metadataXML is required")
		}
		c.idpMetadataURL, c.fetchedAt = cfg.MetadataURL, c.now()
		if raw, err = fetchMetadata(ctx, opts, cfg.MetadataURL); err != nil {
			return nil, err
		}
	}
	acs, err := url.Parse(opts.CallbackURL)
	if err != nil || acs.Host == "" {
		return nil, fmt.Errorf("callback URL %q is not absolute", opts.CallbackURL)
	}
	meta, err := url.Parse(opts.MetadataURL)
	if err != nil || meta.Host == "" {
		return nil, fmt.Errorf("metadata URL %q is not absolute", opts.MetadataURL)
	}
	sp := crewjam.ServiceProvider{
		EntityID:          meta.String(),
		Key:               key,
		Certificate:       cert,
		MetadataURL:       *meta,
		AcsURL:            *acs,
		AuthnNameIDFormat: crewjam.UnspecifiedNameIDFormat,
		// IdP-initiated responses answer no request of this browser: accepting them would
		// allow login CSRF.
		AllowIDPInitiated: false,
	}
	st, err := newIDPState(sp, raw)
	if err != nil {
		return nil, err
	}
	c.idp.Store(st)
	if c.metadata, err = xml.MarshalIndent(st.sp.Metadata(), "", "  "); err != nil {
		return nil, fmt.Errorf("encode SP metadata: %w", err)
	}
	return c, nil
}

// newIDPState is the service provider sp with the IdP metadata raw.
func newIDPState(sp crewjam.ServiceProvider, raw []byte) (*idpState, error) {
	idp, err := parseIDPMetadata(raw)
	if err != nil {
		return nil, err
	}
	sp.IDPMetadata = idp
	ssoURL := sp.GetSSOBindingLocation(crewjam.HTTPRedirectBinding)
	if ssoURL == "" {
		return nil, errors.New("the IdP metadata has no SingleSignOnService with the HTTP-Redirect binding")
	}
	return &idpState{sp: &sp, ssoURL: ssoURL, raw: raw}, nil
}

func (c *Connector) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// refreshMetadata fetches the IdP's metadata again when it came from a URL, the last fetch
// is at least minAge ago, and reports whether it changed. A failed fetch or unusable
// metadata keeps the metadata in use.
//
// A refresh already under way is not waited for: with a slow IdP, logins would queue
// behind it. The fetch does not end with the request that started it, so a cancelled
// request cannot waste the day's refresh.
func (c *Connector) refreshMetadata(ctx context.Context, minAge time.Duration) bool {
	if c.idpMetadataURL == "" || !c.refreshMu.TryLock() {
		return false
	}
	defer c.refreshMu.Unlock()
	now := c.now()
	if now.Sub(c.fetchedAt) < minAge {
		return false
	}
	c.fetchedAt = now
	cur := c.idp.Load()
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connector.Timeout)
	defer cancel()
	raw, err := fetchMetadata(fetchCtx, c.opts, c.idpMetadataURL)
	if err == nil && bytes.Equal(raw, cur.raw) {
		return false
	}
	var next *idpState
	if err == nil {
		next, err = newIDPState(*cur.sp, raw)
	}
	if err != nil {
		if c.opts.Logger != nil {
			c.opts.Logger.WarnContext(ctx, "SAML IdP metadata could not be refreshed; keeping the metadata in use", "url", c.idpMetadataURL, "err", err)
		}
		return false
	}
	c.idp.Store(next)
	return true
}

func parseKeyPair(keyPEM, certPEM string) (crypto.Signer, *x509.Certificate, error) {
	if keyPEM == "" || certPEM == "" {
		return nil, nil, errors.New("the SP key and certificate are required (the operator generates them)")
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil {
		return nil, nil, errors.New("SP key: no PEM block")
	}
	var key crypto.Signer
	switch kb.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse SP key: %w", err)
		}
		key = k
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse SP key: %w", err)
		}
		key = k
	default:
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse SP key: %w", err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			key = k
		case *ecdsa.PrivateKey:
			key = k
		default:
			return nil, nil, fmt.Errorf("SP key: %T is not RSA or ECDSA", k)
		}
	}
	cb, _ := pem.Decode([]byte(certPEM))
	if cb == nil {
		return nil, nil, errors.New("SP certificate: no PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse SP certificate: %w", err)
	}
	return key, cert, nil
}

func fetchMetadata(ctx context.Context, opts connector.Options, metadataURL string) ([]byte, error) {
	client, err := connector.HTTPClient(opts, "")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metadataURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch IdP metadata: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch IdP metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch IdP metadata: status %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read IdP metadata: %w", err)
	}
	if len(b) > maxMetadataBytes {
		return nil, errors.New("IdP metadata is larger than 1 MiB")
	}
	return b, nil
}

// parseIDPMetadata accepts an EntityDescriptor, or an EntitiesDescriptor whose first IdP
// entity is used.
func parseIDPMetadata(raw []byte) (*crewjam.EntityDescriptor, error) {
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err == nil {
		if len(ed.IDPSSODescriptors) == 0 {
			return nil, errors.New("parse IdP metadata: no IDPSSODescriptor")
		}
		return &ed, nil
	}
	var eds crewjam.EntitiesDescriptor
	if err := xml.Unmarshal(raw, &eds); err != nil {
		return nil, fmt.Errorf("parse IdP metadata: %w", err)
	}
	for i := range eds.EntityDescriptors {
		if len(eds.EntityDescriptors[i].IDPSSODescriptors) > 0 {
			return &eds.EntityDescriptors[i], nil
		}
	}
	return nil, errors.New("parse IdP metadata: no IDPSSODescriptor")
}

// Metadata is the SP metadata the IdP's administrator imports.
func (c *Connector) Metadata() (string, []byte, error) {
	return "application/samlmetadata+xml", c.metadata, nil
}

// LoginOrigins is the origin of the IdP's single sign-on service.
func (c *Connector) LoginOrigins() []string {
	u, err := url.Parse(c.idp.Load().ssoURL)
	if err != nil {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// LoginURL makes an AuthnRequest for the redirect binding; private is its ID, which the
// response must answer.
func (c *Connector) LoginURL(ctx context.Context, state string) (string, []byte, error) {
	c.refreshMetadata(ctx, metadataMaxAge)
	st := c.idp.Load()
	req, err := st.sp.MakeAuthenticationRequest(st.ssoURL, crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding)
	if err != nil {
		return "", nil, fmt.Errorf("make AuthnRequest: %w", err)
	}
	u, err := req.Redirect(state, st.sp)
	if err != nil {
		return "", nil, fmt.Errorf("encode AuthnRequest: %w", err)
	}
	return u.String(), []byte(req.ID), nil
}

// HandleCallback validates the POSTed SAMLResponse.
func (c *Connector) HandleCallback(ctx context.Context, r *http.Request, private []byte) (connector.Identity, []byte, error) {
	if r.Method != http.MethodPost || r.PostFormValue("SAMLResponse") == "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "The identity provider sent no SAML response.")
	}
	if err := c.requireSignedAssertions(r.PostFormValue("SAMLResponse")); err != nil {
		return connector.Identity{}, nil, err
	}
	assertion, err := c.idp.Load().sp.ParseResponse(r, []string{string(private)})
	if err != nil && c.refreshMetadata(ctx, minMetadataRefresh) {
		// The IdP may have a new signing certificate in metadata this server has not seen.
		assertion, err = c.idp.Load().sp.ParseResponse(r, []string{string(private)})
	}
	if err != nil {
		return connector.Identity{}, nil, refusal(err)
	}
	if assertion.ID == "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "The SAML assertion has no ID, so it cannot be checked for replay.")
	}
	notAfter := crewjam.TimeNow().Add(crewjam.MaxIssueDelay)
	if assertion.Conditions != nil && !assertion.Conditions.NotOnOrAfter.IsZero() {
		notAfter = assertion.Conditions.NotOnOrAfter
	}
	if !c.replay.Add(assertion.ID, notAfter, crewjam.TimeNow()) {
		return connector.Identity{}, nil, connector.Errorf(nil, "This SAML assertion was already used (replay).")
	}
	id, err := c.identity(assertion)
	return id, nil, err
}

// requireSignedAssertions refuses a response with an assertion that carries no signature
// of its own, before crewjam/saml verifies the signatures: it accepts a signed response
// around an unsigned assertion, which this connector does not. Encrypted assertions are
// decrypted with the SP key to look inside.
func (c *Connector) requireSignedAssertions(encoded string) error {
	unreadable := func(err error) error {
		return connector.Errorf(err, "The identity provider's SAML response is not readable.")
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return unreadable(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return unreadable(err)
	}
	// A response answers one AuthnRequest with one assertion. Counted before anything is
	// decrypted, anywhere in the document: each EncryptedAssertion costs an RSA decryption,
	// so a response of many copies would be work an unauthenticated sender makes the
	// server do for nothing.
	if n := len(doc.FindElements("//Assertion")) + len(doc.FindElements("//EncryptedAssertion")); n > 1 {
		return connector.Errorf(nil, "The identity provider's SAML response holds %d assertions; exactly one is accepted.", n)
	}
	assertions := doc.Root().SelectElements("Assertion")
	for _, enc := range doc.Root().SelectElements("EncryptedAssertion") {
		a, err := c.decrypt(enc)
		if err != nil {
			return unreadable(err)
		}
		assertions = append(assertions, a)
	}
	if len(assertions) == 0 {
		return connector.Errorf(nil, "The identity provider's SAML response holds no assertion.")
	}
	for _, a := range assertions {
		if a.Tag != "Assertion" || a.SelectElement("Signature") == nil {
			return connector.Errorf(nil, "The identity provider's SAML assertion is not signed.")
		}
	}
	return nil
}

// decrypt opens an EncryptedAssertion the way crewjam/saml does.
func (c *Connector) decrypt(enc *etree.Element) (*etree.Element, error) {
	data := enc.SelectElement("EncryptedData")
	if data == nil {
		return nil, errors.New("encrypted assertion without EncryptedData")
	}
	spKey := c.idp.Load().sp.Key
	var key any = spKey
	if keyEl := enc.FindElement("./EncryptedKey"); keyEl != nil {
		k, err := xmlenc.Decrypt(spKey, keyEl)
		if err != nil {
			return nil, fmt.Errorf("decrypt assertion key: %w", err)
		}
		key = k
	}
	plain, err := xmlenc.Decrypt(key, data)
	if err != nil {
		return nil, fmt.Errorf("decrypt assertion: %w", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(plain); err != nil || doc.Root() == nil {
		return nil, fmt.Errorf("parse decrypted assertion: %w", err)
	}
	return doc.Root(), nil
}

// refusal turns crewjam/saml's validation error into a message for the user.
func refusal(err error) error {
	detail := err.Error()
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr.Error()
	}
	cause := errors.New(detail)
	switch {
	case strings.Contains(detail, "signature"):
		return connector.Errorf(cause, "The identity provider's SAML response has a missing or invalid signature.")
	case strings.Contains(detail, "udience"):
		return connector.Errorf(cause, "The SAML assertion was issued for another service provider (wrong audience).")
	case strings.Contains(detail, "xpired"), strings.Contains(detail, "not yet valid"):
		return connector.Errorf(cause, "The SAML assertion is expired or not yet valid.")
	case strings.Contains(detail, "Recipient"), strings.Contains(detail, "Destination"):
		return connector.Errorf(cause, "The SAML response was sent to another recipient.")
	case strings.Contains(detail, "InResponseTo"), strings.Contains(detail, "request ID"):
		return connector.Errorf(cause, "The SAML response does not answer this sign-in.")
	}
	return connector.Errorf(cause, "The identity provider's SAML response is not valid.")
}

// identity applies the attribute mapping. Without one, sub is the NameID and the other
// claims come from the attributes most IdPs send (matched on Name or FriendlyName).
func (c *Connector) identity(a *crewjam.Assertion) (connector.Identity, error) {
	attrs := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			for _, v := range at.Values {
				for _, k := range []string{at.Name, at.FriendlyName} {
					if k != "" {
						attrs[k] = append(attrs[k], v.Value)
					}
				}
			}
		}
	}
	get := func(claim string, defaults ...string) []string {
		if m := c.mapping[claim]; m != "" {
			return attrs[m]
		}
		for _, d := range defaults {
			if v := attrs[d]; len(v) > 0 {
				return v
			}
		}
		return nil
	}
	first := func(v []string) string {
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	id := connector.Identity{
		Username: first(get("preferred_username", "uid", "urn:oid:0.9.2342.19200300.100.1.1")),
		Name:     first(get("name", "displayName", "cn", "urn:oid:2.5.4.3")),
		Email:    first(get("email", "email", "mail", "urn:oid:0.9.2342.19200300.100.1.3")),
		Groups:   slices.Compact(slices.Sorted(slices.Values(get("groups", "groups", "memberOf", "eduPersonAffiliation")))),
	}
	if c.mapping["sub"] != "" {
		id.UserID = first(attrs[c.mapping["sub"]])
	} else if a.Subject != nil && a.Subject.NameID != nil {
		id.UserID = a.Subject.NameID.Value
	}
	if id.UserID == "" {
		return connector.Identity{}, connector.Errorf(nil, "The SAML assertion does not say who you are (no NameID or subject attribute).")
	}
	if m := c.mapping["email_verified"]; m != "" {
		id.EmailVerified = first(attrs[m]) == "true"
	} else {
		// The enterprise IdP asserts the address from its directory, which the user
		// cannot edit (as for LDAP).
		id.EmailVerified = id.Email != ""
	}
	return id, nil
}
