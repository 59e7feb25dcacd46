// Package config is the contract between the operator and the SSO server: the operator's
// render step produces a Config (internal/render), the server loads and serves it. It is also
// the file format of the standalone mode (`hallpass server --config config.yaml`).
//
// A Config is self-contained: every Secret reference of the cluster resources has already
// been resolved, so the server needs to read nothing but this document and its signing keys.
// Client secrets appear only as SHA-256 digests.
package config

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// Keys of the config and signing-keys Secrets that the operator writes and the server reads.
const (
	ConfigSecretKey = "config.yaml"
	KeysSecretKey   = "keys.json"
)

// Client types, as in SSOClient.spec.type.
const (
	ClientSinglePageApp    = "SinglePageApp"
	ClientRegularWebApp    = "RegularWebApp"
	ClientNative           = "Native"
	ClientMachineToMachine = "MachineToMachine"
)

// Connection types, as in IdentityConnection.spec.type.
const (
	ConnectionDatabase = "Database"
	ConnectionOIDC     = "OIDC"
	ConnectionGoogle   = "Google"
	ConnectionGitHub   = "GitHub"
	ConnectionSAML     = "SAML"
	ConnectionLDAP     = "LDAP"
)

// MFA policies, as in SSOServer.spec.mfa.policy.
const (
	MFAOff      = "Off"
	MFAOptional = "Optional"
	MFARequired = "Required"
)

// Factor kinds, as in SSOServer.spec.mfa.factors.
const (
	FactorTOTP     = "TOTP"
	FactorWebAuthn = "WebAuthn"
)

// Grant types a client may be allowed (Client.GrantTypes), as named at the token endpoint.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628), for Native clients.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantTokenExchange is token exchange (RFC 8693): a client trades a token this server
	// issued to it in a user's session for an access token of an API (ADR 0023).
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Storage types.
const (
	StorageSQLite   = "SQLite"
	StoragePostgres = "Postgres"
)

// Config is everything one SSO server serves.
type Config struct {
	// Issuer is the public https URL of the server, the `iss` of every token.
	Issuer string `json:"issuer"`
	// DevMode allows http redirect URIs and a non-Secure cookie on loopback http issuers.
	DevMode bool `json:"devMode,omitempty"`

	Session  Session  `json:"session"`
	Tokens   Tokens   `json:"tokens"`
	Storage  Storage  `json:"storage"`
	Signing  Signing  `json:"signing"`
	Branding Branding `json:"branding,omitzero"`
	MFA      MFA      `json:"mfa,omitzero"`
	// Email is the SMTP server of password reset and verification mail; nil sends none.
	Email *Email `json:"email,omitempty"`
	// TrustedProxies are CIDRs whose requests may name the client address in
	// X-Forwarded-For (login throttling keys on the client address).
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// Clients are sorted by ID; Connections by Name; APIs by Identifier.
	Clients     []Client     `json:"clients,omitempty"`
	Connections []Connection `json:"connections,omitempty"`
	APIs        []API        `json:"apis,omitempty"`
}

// Session is the central SSO session policy. A session is valid while
// now < created+AbsoluteLifetime and now < lastActivity+IdleTimeout.
type Session struct {
	AbsoluteLifetime Duration `json:"absoluteLifetime"`
	IdleTimeout      Duration `json:"idleTimeout"`
}

// MFA is the second-factor policy (ADR 0016).
type MFA struct {
	// Policy is who is asked for a second factor at sign-in: Off (empty) asks only where a
	// client requires it; Optional also asks every user who enrolled one; Required asks
	// everyone, enrolling those who have none.
	Policy string `json:"policy,omitempty"`
	// Factors are the kinds users may enrol and use; empty allows every kind.
	Factors []string `json:"factors,omitempty"`
	// EnrolmentGrace is how long, under Required, a user without a factor may skip enrolling
	// one, from the first time asked (ADR 0024); zero asks at once.
	EnrolmentGrace Duration `json:"enrolmentGrace,omitzero"`
}

// Email security modes, as in SSOServer.spec.email.security.
const (
	EmailSTARTTLS = "STARTTLS"
	EmailTLS      = "TLS"
	EmailNone     = "None"
)

// Email is an SMTP server (ADR 0020).
type Email struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Security string `json:"security"`
	From     string `json:"from"`
	Username string `json:"username,omitempty"`
	// Password is the resolved SMTP password of Username.
	Password string `json:"password,omitempty"`
	// RootCA is PEM CA certificates trusted for the SMTP server, besides the system's.
	RootCA string `json:"rootCA,omitempty"`
}

// Loopback reports whether host names this machine: the only place mail may go in clear text.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Allows reports whether users may enrol and use factors of this kind.
func (m MFA) Allows(kind string) bool {
	return len(m.Factors) == 0 || slices.Contains(m.Factors, kind)
}

// Tokens holds token lifetimes.
type Tokens struct {
	IDToken      Duration `json:"idToken"`
	AccessToken  Duration `json:"accessToken"`
	RefreshToken Duration `json:"refreshToken"`
	// RefreshReuseInterval is the grace window in which the previous refresh token of a
	// family is still accepted (concurrent refreshes), instead of being treated as a replay.
	RefreshReuseInterval Duration `json:"refreshReuseInterval"`
	AuthorizationCode    Duration `json:"authorizationCode"`
}

// Storage selects the backend.
type Storage struct {
	Type string `json:"type"`
	// SQLitePath is the database file for SQLite.
	SQLitePath string `json:"sqlitePath,omitempty"`
	// PostgresDSN is the connection string for Postgres, resolved from its Secret.
	PostgresDSN string `json:"postgresDSN,omitempty"`
}

// Signing selects the algorithm of ID tokens; the keys themselves come from the keys Secret.
type Signing struct {
	// Algorithm is RS256 or ES256.
	Algorithm string `json:"algorithm"`
}

// Branding customises the login page.
type Branding struct {
	Title           string `json:"title,omitempty"`
	LogoURL         string `json:"logoURL,omitempty"`
	PrimaryColor    string `json:"primaryColor,omitempty"`
	BackgroundColor string `json:"backgroundColor,omitempty"`
}

// Client is one registered application.
type Client struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	// SecretSHA256 holds hex SHA-256 digests of the accepted client secrets (more than one
	// during a rotation overlap). Empty for public clients.
	SecretSHA256           []string `json:"secretSHA256,omitempty"`
	RedirectURIs           []string `json:"redirectURIs,omitempty"`
	PostLogoutRedirectURIs []string `json:"postLogoutRedirectURIs,omitempty"`
	WebOrigins             []string `json:"webOrigins,omitempty"`
	// SingleSignOn: the client reuses a valid central session instead of showing a login page.
	SingleSignOn bool `json:"singleSignOn"`
	// RequirePKCE requires a PKCE S256 challenge on every authorization request; always
	// true for public clients. PKCE is enforced whenever a challenge is sent regardless.
	RequirePKCE bool `json:"requirePKCE,omitempty"`
	// Connections are the names of the connections the client may use, sorted.
	Connections           []string `json:"connections,omitempty"`
	BackchannelLogoutURI  string   `json:"backchannelLogoutURI,omitempty"`
	FrontchannelLogoutURI string   `json:"frontchannelLogoutURI,omitempty"`
	// RequireMFA: a user signing in to this client must have presented a second factor in
	// the session; a session without one is stepped up.
	RequireMFA bool `json:"requireMFA,omitempty"`
	// GrantTypes are the grants the client may use, sorted; when empty, those of its type
	// (DefaultGrantTypes).
	GrantTypes []string `json:"grantTypes,omitempty"`
	// IDTokenSigningAlgorithm is the algorithm of the client's ID tokens and logout tokens,
	// RS256 or ES256; empty means the server's signing.algorithm.
	IDTokenSigningAlgorithm string `json:"idTokenSigningAlgorithm,omitempty"`
}

// Public reports whether the client cannot keep a secret (and so must use PKCE).
func (c Client) Public() bool {
	return c.Type == ClientSinglePageApp || c.Type == ClientNative
}

// DefaultGrantTypes are the grants of a client of type t that lists none: a user's
// authorization code and its refresh tokens, or client credentials for a machine. The device
// authorization grant is never a default: a client has to ask for it.
func DefaultGrantTypes(t string) []string {
	if t == ClientMachineToMachine {
		return []string{GrantClientCredentials}
	}
	return []string{GrantAuthorizationCode, GrantRefreshToken}
}

// AllowsGrant reports whether the client may use grant type g.
func (c Client) AllowsGrant(g string) bool {
	if len(c.GrantTypes) == 0 {
		return slices.Contains(DefaultGrantTypes(c.Type), g)
	}
	return slices.Contains(c.GrantTypes, g)
}

// API token formats.
const (
	// TokenJWT access tokens are RFC 9068 JWTs (typ at+jwt) that an API verifies with the
	// JWKS alone; each costs a signature.
	TokenJWT = "JWT"
	// TokenOpaque access tokens are random; an API checks them by introspection.
	TokenOpaque = "Opaque"
)

// API is a resource server clients may get access tokens for (an SSOAPI), with the grants
// resolved to client IDs. A client asks for it by its Identifier with the audience or
// resource parameter; the token's aud is the Identifier.
type API struct {
	Identifier string `json:"identifier"`
	// Name names the API in messages (the SSOAPI's namespace/name or display name).
	Name string `json:"name"`
	// Scopes are the scopes the API defines, sorted.
	Scopes        []string `json:"scopes,omitempty"`
	TokenFormat   string   `json:"tokenFormat"`
	TokenLifetime Duration `json:"tokenLifetime"`
	// Grants are sorted by ClientID, one per client; a client without one gets nothing.
	Grants []APIGrant `json:"grants,omitempty"`
}

// APIGrant is what one client may get of an API. A nil flow is not granted; a flow with
// no scopes grants a token for the API without scopes.
type APIGrant struct {
	ClientID          string         `json:"clientID"`
	UserFlows         *GrantedScopes `json:"userFlows,omitempty"`
	ClientCredentials *GrantedScopes `json:"clientCredentials,omitempty"`
}

// GrantedScopes are the scopes a grant allows in one kind of flow, sorted.
type GrantedScopes struct {
	Scopes []string `json:"scopes,omitempty"`
}

// OpenIDScopes are the scopes the server itself defines; no API may define them.
var OpenIDScopes = []string{"openid", "profile", "email", "groups", "offline_access"}

// Grant returns what the API grants the client.
func (a API) Grant(clientID string) (APIGrant, bool) {
	i, ok := slices.BinarySearchFunc(a.Grants, clientID, func(g APIGrant, id string) int { return compare(g.ClientID, id) })
	if !ok {
		return APIGrant{}, false
	}
	return a.Grants[i], true
}

// Connection is one identity source, with its credentials resolved.
type Connection struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	DisplayName string `json:"displayName,omitempty"`
	// TrustUpstreamMFA: a login whose upstream reports a second factor in its amr counts
	// as multi-factor here, and is not asked for one again.
	TrustUpstreamMFA bool                `json:"trustUpstreamMFA,omitempty"`
	Database         *DatabaseConnection `json:"database,omitempty"`
	OIDC             *OIDCConnection     `json:"oidc,omitempty"`
	GitHub           *GitHubConnection   `json:"github,omitempty"`
	SAML             *SAMLConnection     `json:"saml,omitempty"`
	LDAP             *LDAPConnection     `json:"ldap,omitempty"`
}

// DatabaseConnection is the built-in user database.
type DatabaseConnection struct {
	// SignupEnabled lets users register themselves into storage.
	SignupEnabled bool           `json:"signupEnabled,omitempty"`
	Users         []DatabaseUser `json:"users,omitempty"`
}

// DatabaseUser is a user imported from the connection's users Secret.
type DatabaseUser struct {
	Username string `json:"username"`
	Email    string `json:"email,omitempty"`
	// EmailVerified defaults to false.
	EmailVerified bool     `json:"emailVerified,omitempty"`
	Name          string   `json:"name,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// PasswordHash is a PHC-format argon2id hash ($argon2id$...) or a bcrypt hash ($2a$...).
	PasswordHash string `json:"passwordHash"`
}

// OIDCConnection is an upstream OpenID provider (also Google, with Issuer preset).
type OIDCConnection struct {
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"clientID"`
	ClientSecret string   `json:"clientSecret"`
	Scopes       []string `json:"scopes,omitempty"`
	// HostedDomain restricts Google sign-ins to a Workspace domain (the hd claim).
	HostedDomain string            `json:"hostedDomain,omitempty"`
	ClaimMapping map[string]string `json:"claimMapping,omitempty"`
	RootCA       string            `json:"rootCA,omitempty"`
}

// GitHubConnection is GitHub's OAuth2 web flow.
type GitHubConnection struct {
	ClientID     string      `json:"clientID"`
	ClientSecret string      `json:"clientSecret"`
	BaseURL      string      `json:"baseURL,omitempty"`
	Orgs         []GitHubOrg `json:"orgs,omitempty"`
}

// GitHubOrg restricts sign-in to members of an org (and optionally some of its teams).
type GitHubOrg struct {
	Name  string   `json:"name"`
	Teams []string `json:"teams,omitempty"`
}

// SAMLConnection is an SP-initiated SAML 2.0 IdP.
type SAMLConnection struct {
	MetadataURL      string            `json:"metadataURL,omitempty"`
	MetadataXML      string            `json:"metadataXML,omitempty"`
	SPKeyPEM         string            `json:"spKeyPEM,omitempty"`
	SPCertificatePEM string            `json:"spCertificatePEM,omitempty"`
	AttributeMapping map[string]string `json:"attributeMapping,omitempty"`
}

// LDAPConnection is bind + search against a directory.
type LDAPConnection struct {
	URL          string `json:"url"`
	StartTLS     bool   `json:"startTLS,omitempty"`
	RootCA       string `json:"rootCA,omitempty"`
	BindDN       string `json:"bindDN"`
	BindPassword string `json:"bindPassword"`
	UserBaseDN   string `json:"userBaseDN"`
	UserFilter   string `json:"userFilter,omitempty"`
	UsernameAttr string `json:"usernameAttr,omitempty"`
	GroupBaseDN  string `json:"groupBaseDN,omitempty"`
	GroupFilter  string `json:"groupFilter,omitempty"`
}

// Client returns the client with the given ID.
func (c *Config) Client(id string) (Client, bool) {
	i, ok := slices.BinarySearchFunc(c.Clients, id, func(cl Client, id string) int { return compare(cl.ID, id) })
	if !ok {
		return Client{}, false
	}
	return c.Clients[i], true
}

// API returns the API with the given identifier.
func (c *Config) API(identifier string) (API, bool) {
	i, ok := slices.BinarySearchFunc(c.APIs, identifier, func(a API, id string) int { return compare(a.Identifier, id) })
	if !ok {
		return API{}, false
	}
	return c.APIs[i], true
}

// Connection returns the connection with the given name.
func (c *Config) Connection(name string) (Connection, bool) {
	i, ok := slices.BinarySearchFunc(c.Connections, name, func(cn Connection, n string) int { return compare(cn.Name, n) })
	if !ok {
		return Connection{}, false
	}
	return c.Connections[i], true
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Marshal renders the config as YAML. Output is deterministic for equal configs.
func Marshal(c *Config) ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return b, nil
}

// MarshalJSON renders the config as compact JSON, which is YAML too: what the operator
// writes. At ten thousand clients it is about a hundred times faster to write and to read
// than YAML (docs/adr/0021). Output is deterministic for equal configs.
func MarshalJSON(c *Config) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return b, nil
}

// Parse decodes and validates a config, YAML or JSON; unknown fields are an error, so that a
// typo in a hand-written standalone config is not silently ignored.
func Parse(data []byte) (*Config, error) {
	var c Config
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		// JSON (as the operator writes it) is decoded directly: the YAML decoder would first
		// build a generic tree of it and convert that back to JSON.
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		if dec.More() {
			return nil, errors.New("parse config: data after the config's JSON object")
		}
	} else if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate reports every problem of the config at once.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	c.validateClients(&p)
	c.validateConnections(&p)
	c.validateAPIs(&p)
	if len(p) > 0 {
		return fmt.Errorf("invalid config: %w", errors.Join(p...))
	}
	return nil
}

// problems collects what is wrong with a config, so that one validation reports it all.
type problems []error

// check records the problem that format describes when bad is true.
func (p *problems) check(bad bool, format string, args ...any) {
	if bad {
		*p = append(*p, fmt.Errorf(format, args...))
	}
}

// validateServer checks the settings of the server itself: issuer, lifetimes, storage,
// signing, MFA and email.
func (c *Config) validateServer(p *problems) {
	check := p.check
	u, err := url.Parse(c.Issuer)
	check(err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "", "issuer %q is not an absolute URL without query or fragment", c.Issuer)
	check(err == nil && u.Scheme != "https" && (!c.DevMode || u.Scheme != "http"), "issuer %q must use https (http only in dev mode)", c.Issuer)
	check(c.Session.AbsoluteLifetime.Duration <= 0, "session.absoluteLifetime must be positive")
	check(c.Session.IdleTimeout.Duration <= 0, "session.idleTimeout must be positive")
	check(c.Session.IdleTimeout.Duration > c.Session.AbsoluteLifetime.Duration, "session.idleTimeout must not exceed session.absoluteLifetime")
	for name, d := range map[string]Duration{"idToken": c.Tokens.IDToken, "accessToken": c.Tokens.AccessToken, "refreshToken": c.Tokens.RefreshToken, "authorizationCode": c.Tokens.AuthorizationCode} {
		check(d.Duration <= 0, "tokens.%s must be positive", name)
	}
	check(c.Tokens.RefreshReuseInterval.Duration < 0, "tokens.refreshReuseInterval must not be negative")
	switch c.Storage.Type {
	case StorageSQLite:
		check(c.Storage.SQLitePath == "", "storage.sqlitePath is required for SQLite")
	case StoragePostgres:
		check(c.Storage.PostgresDSN == "", "storage.postgresDSN is required for Postgres")
	default:
		check(true, "storage.type %q is not SQLite or Postgres", c.Storage.Type)
	}
	check(c.Signing.Algorithm != "RS256" && c.Signing.Algorithm != "ES256", "signing.algorithm %q is not RS256 or ES256", c.Signing.Algorithm)
	check(!slices.Contains([]string{"", MFAOff, MFAOptional, MFARequired}, c.MFA.Policy), "mfa.policy %q is not Off, Optional or Required", c.MFA.Policy)
	for i, f := range c.MFA.Factors {
		check(f != FactorTOTP && f != FactorWebAuthn, "mfa.factors[%d] %q is not a known factor (TOTP or WebAuthn)", i, f)
	}
	check(c.MFA.EnrolmentGrace.Duration < 0, "mfa.enrolmentGrace %s is negative", c.MFA.EnrolmentGrace)
	if e := c.Email; e != nil {
		check(e.Host == "" || e.Port < 1 || e.Port > 65535, "email.host and email.port (1-65535) are required")
		check(!strings.Contains(e.From, "@"), "email.from %q is not an address", e.From)
		check(!slices.Contains([]string{EmailSTARTTLS, EmailTLS, EmailNone}, e.Security), "email.security %q is not STARTTLS, TLS or None", e.Security)
		check(e.Security == EmailNone && !Loopback(e.Host), "email.security None is only allowed for a loopback host, not %q", e.Host)
		check(e.RootCA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(e.RootCA)), "email.rootCA holds no PEM certificate")
	}
}

// validateClients checks every client: unique IDs, a known type, a secret exactly when
// confidential, grants its type may use and connections that exist.
func (c *Config) validateClients(p *problems) {
	check := p.check
	check(!slices.IsSortedFunc(c.Clients, func(a, b Client) int { return compare(a.ID, b.ID) }), "clients must be sorted by id")
	for i, cl := range c.Clients {
		check(cl.ID == "", "clients[%d].id is empty", i)
		check(i > 0 && c.Clients[i-1].ID == cl.ID, "clients[%d].id %q is not unique", i, cl.ID)
		check(cl.IDTokenSigningAlgorithm != "" && !slices.Contains(Algorithms, cl.IDTokenSigningAlgorithm),
			"clients[%d].idTokenSigningAlgorithm %q is not RS256 or ES256", i, cl.IDTokenSigningAlgorithm)
		check(!slices.Contains([]string{ClientSinglePageApp, ClientRegularWebApp, ClientNative, ClientMachineToMachine}, cl.Type), "clients[%d].type %q is unknown", i, cl.Type)
		check(cl.Public() && len(cl.SecretSHA256) > 0, "clients[%d] is a public client but has a secret", i)
		check(!cl.Public() && len(cl.SecretSHA256) == 0, "clients[%d] is a confidential client without a secret", i)
		for _, g := range cl.GrantTypes {
			check(!slices.Contains([]string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantDeviceCode, GrantTokenExchange}, g),
				"clients[%d].grantTypes: %q is unknown", i, g)
			check((g == GrantClientCredentials) != (cl.Type == ClientMachineToMachine),
				"clients[%d].grantTypes: %s is for MachineToMachine clients only, and the only grant they have", i, GrantClientCredentials)
			check(g == GrantDeviceCode && cl.Type != ClientNative, "clients[%d].grantTypes: the device code grant is for Native clients only", i)
		}
		for _, n := range cl.Connections {
			_, ok := c.Connection(n)
			check(!ok, "clients[%d].connections names unknown connection %q", i, n)
		}
	}
}

// validateConnections checks that connection names are unique and that each connection
// has the block of its type.
func (c *Config) validateConnections(p *problems) {
	check := p.check
	check(!slices.IsSortedFunc(c.Connections, func(a, b Connection) int { return compare(a.Name, b.Name) }), "connections must be sorted by name")
	for i, cn := range c.Connections {
		check(cn.Name == "", "connections[%d].name is empty", i)
		check(i > 0 && c.Connections[i-1].Name == cn.Name, "connections[%d].name %q is not unique", i, cn.Name)
		check(cn.Type == ConnectionDatabase && cn.Database == nil, "connections[%d] of type Database has no database block", i)
		check((cn.Type == ConnectionOIDC || cn.Type == ConnectionGoogle) && cn.OIDC == nil, "connections[%d] of type %s has no oidc block", i, cn.Type)
		check(cn.Type == ConnectionGitHub && cn.GitHub == nil, "connections[%d] of type GitHub has no github block", i)
		check(cn.Type == ConnectionSAML && cn.SAML == nil, "connections[%d] of type SAML has no saml block", i)
		check(cn.Type == ConnectionLDAP && cn.LDAP == nil, "connections[%d] of type LDAP has no ldap block", i)
	}
}

// validateAPIs checks that every API is well formed and that no audience can be mistaken
// for another: an identifier that equals a client ID would make an access token pass as
// that client's ID token, and one that equals the issuer would make it pass where the
// issuer itself is the audience.
func (c *Config) validateAPIs(p *problems) {
	check := p.check
	check(!slices.IsSortedFunc(c.APIs, func(a, b API) int { return compare(a.Identifier, b.Identifier) }), "apis must be sorted by identifier")
	for i, a := range c.APIs {
		check(!strings.Contains(a.Identifier, ":") || len(a.Identifier) > 2048 || strings.ContainsFunc(a.Identifier, unicode.IsSpace),
			"apis[%d].identifier %q must be an absolute URI of at most 2048 characters without spaces", i, a.Identifier)
		check(i > 0 && c.APIs[i-1].Identifier == a.Identifier, "apis[%d].identifier %q is not unique", i, a.Identifier)
		check(a.Identifier == c.Issuer, "apis[%d].identifier %q is the issuer", i, a.Identifier)
		_, isClient := c.Client(a.Identifier)
		check(isClient, "apis[%d].identifier %q is a client ID", i, a.Identifier)
		check(a.TokenFormat != TokenJWT && a.TokenFormat != TokenOpaque, "apis[%d].tokenFormat %q is not JWT or Opaque", i, a.TokenFormat)
		check(a.TokenLifetime.Duration <= 0, "apis[%d].tokenLifetime must be positive", i)
		for _, sc := range a.Scopes {
			check(slices.Contains(OpenIDScopes, sc) || sc == "" || strings.ContainsFunc(sc, unicode.IsSpace),
				"apis[%d].scopes: %q is not a scope an API may define", i, sc)
		}
		check(!slices.IsSortedFunc(a.Grants, func(x, y APIGrant) int { return compare(x.ClientID, y.ClientID) }), "apis[%d].grants must be sorted by clientID", i)
		for j, g := range a.Grants {
			_, ok := c.Client(g.ClientID)
			check(!ok, "apis[%d].grants[%d] names unknown client %q", i, j, g.ClientID)
			check(j > 0 && a.Grants[j-1].ClientID == g.ClientID, "apis[%d].grants[%d].clientID %q is not unique", i, j, g.ClientID)
			for _, flow := range []*GrantedScopes{g.UserFlows, g.ClientCredentials} {
				if flow == nil {
					continue
				}
				for _, sc := range flow.Scopes {
					check(!slices.Contains(a.Scopes, sc), "apis[%d].grants[%d] grants scope %q, which the API does not define", i, j, sc)
				}
			}
		}
	}
}

// Duration is a time.Duration written as a Go duration string ("168h").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1h30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	d.Duration = v
	return nil
}

// URL paths, under the issuer, of what an upstream identity provider calls back. The server
// routes them; the operator shows them in IdentityConnection status, for administrators to
// register at the IdP.

// ConnectionCallbackPath is the OAuth2 redirect URI and SAML assertion consumer service.
func ConnectionCallbackPath(connection string) string {
	return "/connections/" + connection + "/callback"
}

// SAMLMetadataPath serves the SAML service provider metadata; its URL is the entity ID.
func SAMLMetadataPath(connection string) string {
	return "/connections/" + connection + "/saml/metadata"
}
