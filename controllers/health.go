package controllers

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/connectors"
)

const (
	// healthCheckInterval is how often the operator checks that each upstream answers.
	healthCheckInterval = 5 * time.Minute
	// healthCheckTimeout bounds one check, so a dead upstream cannot hold a worker.
	healthCheckTimeout = 10 * time.Second
	// certificateWarning is how long before expiry a signing certificate is warned about.
	certificateWarning = 30 * 24 * time.Hour
	// maxHealthResponse bounds what a check reads from an upstream.
	maxHealthResponse = 4 << 20
)

// healthResult is the outcome of one check of an upstream.
type healthResult struct {
	// err is nil when the upstream answered as expected.
	err error
	// certificateExpiry is the earliest expiry of the upstream's signing certificates, when
	// the check could see them.
	certificateExpiry time.Time
}

// upstreamChecker checks one kind of upstream. It is nil for kinds without an upstream
// (Database) or not checked yet.
type upstreamChecker func(ctx context.Context, c config.Connection) healthResult

// upstreamCheckers are the checks the operator runs, by connection type.
var upstreamCheckers = map[string]upstreamChecker{
	config.ConnectionOIDC:   checkOIDC,
	config.ConnectionGoogle: checkOIDC,
	config.ConnectionGitHub: checkGitHub,
	config.ConnectionSAML:   checkSAML,
	config.ConnectionLDAP:   checkByPing,
}

// checkByPing asks the connector itself, for upstreams only its protocol can reach (an
// LDAP service bind).
func checkByPing(ctx context.Context, c config.Connection) healthResult {
	conn, err := connectors.Open(ctx, c, connector.Options{})
	if err != nil {
		return healthResult{err: err}
	}
	p, ok := conn.(interface{ Ping(context.Context) error })
	if !ok {
		return healthResult{err: fmt.Errorf("connection type %s cannot be checked", c.Type)}
	}
	return healthResult{err: p.Ping(ctx)}
}

// checkOIDC fetches discovery and the JWKS: what the server needs at every login.
func checkOIDC(ctx context.Context, c config.Connection) healthResult {
	client, err := connector.HTTPClient(connector.Options{}, c.OIDC.RootCA)
	if err != nil {
		return healthResult{err: err}
	}
	var discovery struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	issuer := strings.TrimSuffix(c.OIDC.Issuer, "/")
	if err := fetchJSON(ctx, client, issuer+"/.well-known/openid-configuration", &discovery); err != nil {
		return healthResult{err: err}
	}
	if discovery.Issuer != c.OIDC.Issuer {
		return healthResult{err: fmt.Errorf("discovery names issuer %q, not %q", discovery.Issuer, c.OIDC.Issuer)}
	}
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := fetchJSON(ctx, client, discovery.JWKSURI, &jwks); err != nil {
		return healthResult{err: err}
	}
	if len(jwks.Keys) == 0 {
		return healthResult{err: fmt.Errorf("JWKS at %s holds no keys", discovery.JWKSURI)}
	}
	return healthResult{}
}

// checkGitHub asks the API's meta endpoint, which answers without credentials.
func checkGitHub(ctx context.Context, c config.Connection) healthResult {
	api := "https://api.github.com"
	if c.GitHub.BaseURL != "" {
		api = strings.TrimSuffix(c.GitHub.BaseURL, "/") + "/api/v3"
	}
	var meta map[string]any
	return healthResult{err: fetchJSON(ctx, http.DefaultClient, api+"/meta", &meta)}
}

// checkSAML reads the IdP metadata (fetching it when it comes from a URL) and finds the
// earliest expiry of its certificates.
func checkSAML(ctx context.Context, c config.Connection) healthResult {
	metadata := []byte(c.SAML.MetadataXML)
	if c.SAML.MetadataURL != "" {
		var err error
		if metadata, err = fetch(ctx, http.DefaultClient, c.SAML.MetadataURL); err != nil {
			return healthResult{err: err}
		}
	}
	expiry, err := earliestCertificateExpiry(metadata)
	if err != nil {
		return healthResult{err: err}
	}
	return healthResult{certificateExpiry: expiry}
}

// earliestCertificateExpiry walks every X509Certificate element of SAML metadata.
func earliestCertificateExpiry(metadata []byte) (time.Time, error) {
	decoder := xml.NewDecoder(strings.NewReader(string(metadata)))
	var earliest time.Time
	for {
		tok, err := decoder.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("parse SAML metadata: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "X509Certificate" {
			continue
		}
		var b64 string
		if err := decoder.DecodeElement(&b64, &start); err != nil {
			return time.Time{}, fmt.Errorf("parse SAML metadata certificate: %w", err)
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
		if err != nil {
			return time.Time{}, fmt.Errorf("decode SAML metadata certificate: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return time.Time{}, fmt.Errorf("parse SAML metadata certificate: %w", err)
		}
		if earliest.IsZero() || cert.NotAfter.Before(earliest) {
			earliest = cert.NotAfter
		}
	}
	if earliest.IsZero() {
		return time.Time{}, errors.New("SAML metadata holds no certificate, so no assertion could be verified")
	}
	return earliest, nil
}

func fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthResponse))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return body, nil
}

func fetchJSON(ctx context.Context, client *http.Client, url string, into any) error {
	body, err := fetch(ctx, client, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}
