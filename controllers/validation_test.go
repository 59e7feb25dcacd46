package controllers

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestAdmissionRejectsInvalidResources checks that the API server itself refuses invalid
// resources, with a message that names the field, so `kubectl apply` fails at once instead
// of leaving a broken object for the operator.
func TestAdmissionRejectsInvalidResources(t *testing.T) {
	ns := newNamespace(t, nil)
	ref := func(name string) *hallpassv1.SecretKeyReference {
		return &hallpassv1.SecretKeyReference{Name: name, Key: "value"}
	}
	server := func(mutate func(*hallpassv1.SSOServer)) client.Object {
		s := newServer(ns, "invalid")
		mutate(s)
		return s
	}
	sso := func(typ hallpassv1.ClientType, mutate func(*hallpassv1.SSOClient)) client.Object {
		c := newClient(ns, "invalid", ns, "any", typ)
		c.Spec.RequirePKCE = new(true)
		mutate(c)
		return c
	}
	conn := func(mutate func(*hallpassv1.IdentityConnection)) client.Object {
		c := newDatabaseConnection(ns, "invalid", "any", "users")
		mutate(c)
		return c
	}
	ldap := func() *hallpassv1.LDAPConnection {
		return &hallpassv1.LDAPConnection{
			URL: "ldaps://ldap.example.com", BindDN: "cn=admin", BindPasswordRef: *ref("ldap"),
			UserSearch: hallpassv1.LDAPUserSearch{BaseDN: "ou=people"},
		}
	}

	rotation := func(overlap, interval hallpassv1.Duration) *hallpassv1.ClientCredentials {
		return &hallpassv1.ClientCredentials{Rotation: &hallpassv1.SecretRotation{Overlap: overlap, Interval: interval}}
	}

	cases := map[string]struct {
		obj     client.Object
		message string
	}{
		"a single-page app with a client secret": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) {
				c.Spec.Credentials = &hallpassv1.ClientCredentials{ClientSecretRef: ref("secret")}
			}),
			"spec.credentials.clientSecretRef: SinglePageApp and Native clients are public clients and must not have a client secret",
		},
		"a single-page app without PKCE": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) { c.Spec.RequirePKCE = new(false) }),
			"spec.requirePKCE: SinglePageApp and Native clients must use PKCE",
		},
		"a native app without PKCE": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RequirePKCE = new(false) }),
			"spec.requirePKCE: SinglePageApp and Native clients must use PKCE",
		},
		"a wildcard in a redirect URI": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = []string{"https://*.example.com/callback"}
			}),
			"spec.redirectURIs must not contain wildcards",
		},
		"a fragment in a redirect URI": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = []string{"https://app.example.com/callback#done"}
			}),
			"spec.redirectURIs must not contain a fragment",
		},
		"a relative redirect URI": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"/callback"} }),
			"spec.redirectURIs must be absolute URLs",
		},
		"a wildcard in a post-logout redirect URI": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.PostLogoutRedirectURIs = []string{"https://app.example.com/*"}
			}),
			"spec.postLogoutRedirectURIs must not contain wildcards",
		},
		"an API audience with a space": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.AccessTokenAudience = "orders api" }),
			"spec.accessTokenAudience",
		},
		"a custom URI scheme on a single-page app": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = []string{"com.example.app:/callback"}
			}),
			"spec.redirectURIs: only Native clients may use custom URI schemes",
		},
		"the device code grant on a single-page app": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantAuthorizationCode, hallpassv1.GrantDeviceCode}
			}),
			"spec.grantTypes: the device code grant is for Native clients only",
		},
		"client credentials on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantClientCredentials}
			}),
			"spec.grantTypes: client_credentials is the one grant of MachineToMachine clients",
		},
		"a machine-to-machine client with the authorization code grant": {
			sso(hallpassv1.MachineToMachine, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantClientCredentials, hallpassv1.GrantAuthorizationCode}
			}),
			"spec.grantTypes: client_credentials is the one grant of MachineToMachine clients",
		},
		"refresh tokens without a grant that signs a user in": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantRefreshToken}
			}),
			"spec.grantTypes: refresh_token needs a grant that signs a user in",
		},
		"token exchange without a grant that signs a user in": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantTokenExchange}
			}),
			"spec.grantTypes: token exchange trades the client's own tokens of a user",
		},
		"token exchange on a machine-to-machine client": {
			sso(hallpassv1.MachineToMachine, func(c *hallpassv1.SSOClient) {
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantClientCredentials, hallpassv1.GrantTokenExchange}
			}),
			"spec.grantTypes: client_credentials is the one grant of MachineToMachine clients",
		},
		"an unknown grant type": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.GrantTypes = []hallpassv1.GrantType{"password"} }),
			"spec.grantTypes[0]: Unsupported value",
		},
		"a native client without redirect URIs that uses the authorization code grant": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = nil
				c.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantAuthorizationCode, hallpassv1.GrantDeviceCode}
			}),
			"every other type needs at least one, unless its grantTypes leave out authorization_code",
		},
		"a machine-to-machine client with redirect URIs": {
			sso(hallpassv1.MachineToMachine, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = []string{"https://m2m.example.com/callback"}
			}),
			"spec.redirectURIs: MachineToMachine clients have no redirect URIs",
		},
		"a regular web app without redirect URIs": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = nil }),
			"every other type needs at least one",
		},
		"a web origin with a path": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) {
				c.Spec.WebOrigins = []string{"https://app.example.com/app"}
			}),
			"spec.webOrigins must be origins like https://app.example.com",
		},
		"more redirect URIs than the bound": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.RedirectURIs = nil
				for i := range 33 {
					c.Spec.RedirectURIs = append(c.Spec.RedirectURIs, "https://app.example.com/cb"+strings.Repeat("x", i))
				}
			}),
			"spec.redirectURIs: Too many: 33: must have at most 32 items",
		},
		"a display name longer than the bound": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.DisplayName = strings.Repeat("a", 129) }),
			"spec.displayName: Too long: may not be more than 128",
		},
		"SQLite storage with two replicas": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Replicas = 2 }),
			"spec.replicas: more than one replica requires spec.storage.type Postgres",
		},
		"an idle timeout longer than the absolute lifetime": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Session = hallpassv1.SessionPolicy{AbsoluteLifetime: "24h", IdleTimeout: "48h"}
			}),
			"spec.session.idleTimeout must not be longer than spec.session.absoluteLifetime",
		},
		"a duration that does not parse": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.IDToken = "3 days" }),
			`spec.tokens.idToken: Invalid value: "3 days": must be a duration such as 72h, 90m or 30s`,
		},
		"an http issuer without dev mode": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Issuer = "http://sso.example.com" }),
			"spec.issuer must be an https URL (http is allowed only with spec.devMode)",
		},
		"an issuer with a fragment": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Issuer = "https://sso.example.com/#x" }),
			"spec.issuer must be an absolute URL without query or fragment",
		},
		"Postgres storage without a DSN reference": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Storage.Type = hallpassv1.StoragePostgres }),
			"spec.storage.postgres is required when spec.storage.type is Postgres",
		},
		"a negative replica count": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Replicas = -1 }),
			"spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
		},
		"a server name too long for its Service": {
			server(func(s *hallpassv1.SSOServer) { s.Name = strings.Repeat("s", 51) }),
			"metadata.name must be a DNS label of at most 50 characters",
		},
		"a branding colour that is not #rrggbb": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Branding.PrimaryColor = "blue" }),
			"spec.branding.primaryColor",
		},
		"an MFA policy that is not Off, Optional or Required": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.MFA.Policy = "Sometimes" }),
			"spec.mfa.policy",
		},
		"mail in clear text to a host that is not loopback": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", Security: hallpassv1.EmailNone, From: "sso@example.com"}
			}),
			"spec.email.security None is only allowed for a loopback host",
		},
		"an SMTP username without its password": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", From: "sso@example.com", Username: "sso"}
			}),
			"spec.email.username and spec.email.passwordSecretRef must be set together",
		},
		"a server speaking TLS on an http issuer": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Issuer, s.Spec.DevMode = "http://127.0.0.1:5556", true
				s.Spec.TLS = &hallpassv1.ServerTLS{SecretName: "sso-tls"}
			}),
			"spec.tls needs an https spec.issuer",
		},
		"a TLS Secret that is not a name": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.TLS = &hallpassv1.ServerTLS{SecretName: "../tls"} }),
			"spec.tls.secretName",
		},
		"a CA for a relay reached in clear text": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Email = &hallpassv1.Email{Host: "127.0.0.1", Security: hallpassv1.EmailNone, From: "sso@example.com",
					RootCARef: &hallpassv1.SecretKeyReference{Name: "smtp", Key: "ca.crt"}}
			}),
			"spec.email.rootCARef needs security STARTTLS or TLS",
		},
		"a sender that is not an address": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.Email = &hallpassv1.Email{Host: "smtp.example.com", From: "Hallpass"}
			}),
			"spec.email.from",
		},
		"an enrolment grace longer than 90 days": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.MFA = hallpassv1.MFA{Policy: hallpassv1.MFARequired, EnrolmentGrace: "2161h"}
			}),
			"spec.mfa.enrolmentGrace must be at most 2160h (90 days)",
		},
		"an unknown kind of second factor": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.MFA.Factors = []hallpassv1.FactorKind{"SMS"} }),
			"spec.mfa.factors",
		},
		"trust in the upstream's amr on a Database connection": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Spec.TrustUpstreamMFA = true }),
			"spec.trustUpstreamMFA: only OIDC and Google connections report the upstream amr",
		},
		"a connection whose block does not match its type": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Spec.Type = hallpassv1.ConnectionLDAP }),
			"spec: the typed block must match spec.type",
		},
		"a connection with two blocks": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Spec.LDAP = ldap() }),
			"spec: exactly one of database, oidc, google, github, saml or ldap must be set",
		},
		"an LDAP connection without TLS": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database, c.Spec.LDAP = hallpassv1.ConnectionLDAP, nil, ldap()
				c.Spec.LDAP.URL = "ldap://ldap.example.com"
			}),
			"spec.ldap: use an ldaps:// URL or startTLS",
		},
		"an OIDC connection with an http issuer": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database = hallpassv1.ConnectionOIDC, nil
				c.Spec.OIDC = &hallpassv1.OIDCConnection{Issuer: "http://idp.example.com", ClientIDRef: *ref("idp"), ClientSecretRef: *ref("idp")}
			}),
			"spec.oidc.issuer must be an https URL",
		},
		"a SAML connection with two metadata sources": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database = hallpassv1.ConnectionSAML, nil
				c.Spec.SAML = &hallpassv1.SAMLConnection{MetadataURL: "https://idp.example.com/metadata", MetadataSecretRef: ref("idp")}
			}),
			"spec.saml: exactly one of metadataURL, metadataSecretRef or metadataConfigMapRef must be set",
		},
		"a client secret overlap shorter than a minute": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.Credentials = rotation("30s", "") }),
			"spec.credentials.rotation.overlap must be between 1m and 720h",
		},
		"a client secret overlap longer than 30 days": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.Credentials = rotation("721h", "") }),
			"spec.credentials.rotation.overlap must be between 1m and 720h",
		},
		"a client secret rotated more often than hourly": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.Credentials = rotation("10m", "30m") }),
			"spec.credentials.rotation.interval must be between 1h and 8760h",
		},
		"a client secret rotated within its own overlap": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.Credentials = rotation("48h", "24h") }),
			"spec.credentials.rotation.interval must be longer than spec.credentials.rotation.overlap",
		},
		"a brought client secret rotated on a schedule": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.Credentials = rotation("1h", "720h")
				c.Spec.Credentials.ClientSecretRef = ref("secret")
			}),
			"spec.credentials.rotation.interval: a secret brought with clientSecretRef is rotated by changing that Secret",
		},
		"a single-page app with client secret rotation": {
			sso(hallpassv1.SinglePageApp, func(c *hallpassv1.SSOClient) { c.Spec.Credentials = rotation("1h", "") }),
			"spec.credentials.rotation: SinglePageApp and Native clients are public clients",
		},
		"credentials keys that name one key twice": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.Credentials = &hallpassv1.ClientCredentials{Keys: &hallpassv1.CredentialKeys{ClientID: "id", ClientSecret: "id"}}
			}),
			"spec.credentials.keys: clientID and clientSecret must name different keys",
		},
		"a credentials key the operator writes itself": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.Credentials = &hallpassv1.ClientCredentials{Keys: &hallpassv1.CredentialKeys{ClientSecret: "issuer"}}
			}),
			"spec.credentials.keys: issuer and discovery_url are keys the operator writes itself",
		},
		"a credentials key that is not a Secret key": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) {
				c.Spec.Credentials = &hallpassv1.ClientCredentials{Keys: &hallpassv1.CredentialKeys{ClientID: "client/id"}}
			}),
			"spec.credentials.keys.clientID must be a Secret key",
		},
		"a session that ends as soon as it starts": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Session.AbsoluteLifetime = "0s" }),
			"spec.session.absoluteLifetime must be between 5m and 8760h",
		},
		"a session idle timeout of zero": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Session.IdleTimeout = "0s" }),
			"spec.session.idleTimeout must be between 1m and 8760h",
		},
		"an ID token that expires at once": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.IDToken = "0s" }),
			"spec.tokens.idToken must be between 1m and 24h",
		},
		"an access token that lives a week": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.AccessToken = "168h" }),
			"spec.tokens.accessToken must be between 1m and 24h",
		},
		"a refresh token that expires at once": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.RefreshToken = "0s" }),
			"spec.tokens.refreshToken must be between 1m and 8760h",
		},
		"a refresh reuse window of an hour": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.RefreshReuseInterval = "1h" }),
			"spec.tokens.refreshReuseInterval must be between 0s and 1m",
		},
		"an authorization code that lives an hour": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Tokens.AuthorizationCode = "1h" }),
			"spec.tokens.authorizationCode must be between 10s and 10m",
		},
		"signing keys rotated every second": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.SigningKeys.RotationInterval = "1s" }),
			"spec.signingKeys.rotationInterval must be between 1h and 8760h",
		},
		"a logo URL without a host": {
			server(func(s *hallpassv1.SSOServer) { s.Spec.Branding.LogoURL = "https://:443/logo.png" }),
			"spec.branding.logoURL must be an https URL with a host",
		},
		"an allowed client namespace that is not a namespace name": {
			server(func(s *hallpassv1.SSOServer) {
				s.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Names: []string{"Team_A"}}
			}),
			"spec.allowedClientNamespaces.names must be namespace names",
		},
		"a javascript: redirect URI on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"javascript:/alert(document.cookie)"} }),
			"spec.redirectURIs must not use the javascript, data, vbscript, file, blob or about scheme",
		},
		"a JavaScript: redirect URI in capitals on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"JavaScript://%0aalert(1)"} }),
			"spec.redirectURIs must not use the javascript",
		},
		"a data: redirect URI on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"data:/text/html,<script>x</script>"} }),
			"spec.redirectURIs must not use the javascript",
		},
		"a vbscript: redirect URI on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"vbscript:/msgbox"} }),
			"spec.redirectURIs must not use the javascript",
		},
		"a file: redirect URI on a native app": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.RedirectURIs = []string{"file:///etc/passwd"} }),
			"spec.redirectURIs must not use the javascript",
		},
		"a javascript: post-logout redirect URI": {
			sso(hallpassv1.Native, func(c *hallpassv1.SSOClient) { c.Spec.PostLogoutRedirectURIs = []string{"javascript:/alert(1)"} }),
			"spec.postLogoutRedirectURIs must not use the javascript",
		},
		"a connection name that is not a DNS label": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.Connections = []string{"../../admin"} }),
			"spec.connections must be names of IdentityConnections",
		},
		"a server reference that is not a DNS label": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.ServerRef.Name = "Main.Server" }),
			"spec.serverRef.name must be the name of an SSOServer",
		},
		"a server namespace that is not a DNS label": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.ServerRef.Namespace = "kube_system" }),
			"spec.serverRef.namespace must be a namespace name",
		},
		"a back-channel logout URI without a host": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.BackchannelLogoutURI = "https://:8443/logout" }),
			"spec.backchannelLogoutURI must be an http(s) URL with a host",
		},
		"a front-channel logout URI without a host": {
			sso(hallpassv1.RegularWebApp, func(c *hallpassv1.SSOClient) { c.Spec.FrontchannelLogoutURI = "https://:8443/logout" }),
			"spec.frontchannelLogoutURI must be an http(s) URL with a host",
		},
		"an LDAP URL without a host": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database, c.Spec.LDAP = hallpassv1.ConnectionLDAP, nil, ldap()
				c.Spec.LDAP.URL = "ldaps://:636"
			}),
			"spec.ldap.url must name the directory's host",
		},
		"an OIDC issuer without a host": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database = hallpassv1.ConnectionOIDC, nil
				c.Spec.OIDC = &hallpassv1.OIDCConnection{Issuer: "https://:443/", ClientIDRef: *ref("idp"), ClientSecretRef: *ref("idp")}
			}),
			"spec.oidc.issuer must be an https URL with a host",
		},
		"a GitHub base URL without a host": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database = hallpassv1.ConnectionGitHub, nil
				c.Spec.GitHub = &hallpassv1.GitHubConnection{BaseURL: "https://:443", ClientIDRef: *ref("gh"), ClientSecretRef: *ref("gh")}
			}),
			"spec.github.baseURL must be an https URL with a host",
		},
		"a SAML metadata URL without a host": {
			conn(func(c *hallpassv1.IdentityConnection) {
				c.Spec.Type, c.Spec.Database = hallpassv1.ConnectionSAML, nil
				c.Spec.SAML = &hallpassv1.SAMLConnection{MetadataURL: "https://:443/metadata"}
			}),
			"spec.saml.metadataURL must be an https URL with a host",
		},
		"an IdentityConnection name that is not a DNS label": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Name = "corp.ldap" }),
			"metadata.name must be a DNS label",
		},
		"a connection whose server reference is not a DNS label": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Spec.ServerRef.Name = "Main" }),
			"spec.serverRef.name must be the name of an SSOServer",
		},
		"a Secret reference with an invalid name": {
			conn(func(c *hallpassv1.IdentityConnection) { c.Spec.Database.UsersSecretRef.Name = "Not_A_Name" }),
			"spec.database.usersSecretRef.name",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(context.Background(), tc.obj)
			g.Expect(err).To(HaveOccurred(), "the API server accepted the object")
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}
}

// TestServerRefIsImmutable checks that moving a client or connection to another server is
// refused: its client ID, sessions and tokens belong to the first server.
func TestServerRefIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	ctx := context.Background()

	sc := newClient(ns, "app", ns, "first", hallpassv1.RegularWebApp)
	conn := newDatabaseConnection(ns, "db", "first", "users")
	create(t, sc, conn)

	patch := client.MergeFrom(sc.DeepCopy())
	sc.Spec.ServerRef.Name = "second"
	err := k8s.Patch(ctx, sc, patch)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.serverRef is immutable"))

	patch = client.MergeFrom(conn.DeepCopy())
	conn.Spec.ServerRef.Name = "second"
	err = k8s.Patch(ctx, conn, patch)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.serverRef is immutable"))
}

// TestDefaultsAreFilledIn checks the documented defaults, which users rely on when they
// apply a minimal server.
func TestDefaultsAreFilledIn(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	s := newServer(ns, "defaults")
	create(t, s)
	s = get(g, ns, "defaults", &hallpassv1.SSOServer{})
	g.Expect(s.Spec.Session.AbsoluteLifetime).To(Equal(hallpassv1.Duration("168h")))
	g.Expect(s.Spec.Session.IdleTimeout).To(Equal(hallpassv1.Duration("72h")))
	g.Expect(s.Spec.Storage.Type).To(Equal(hallpassv1.StorageSQLite))
	g.Expect(s.Spec.Replicas).To(Equal(int32(1)))
	g.Expect(s.Spec.SigningKeys.Algorithm).To(Equal("RS256"))
	g.Expect(s.Spec.Tokens.RefreshReuseInterval).To(Equal(hallpassv1.Duration("3s")))

	c := newClient(ns, "app", ns, "defaults", hallpassv1.SinglePageApp)
	create(t, c)
	c = get(g, ns, "app", &hallpassv1.SSOClient{})
	g.Expect(c.Spec.SingleSignOn).To(HaveValue(BeTrue()))
	g.Expect(c.Spec.RequirePKCE).To(HaveValue(BeTrue()))
	g.Expect(c.Spec.DeletionPolicy).To(Equal(hallpassv1.DeletionPolicyDelete))

	// A kubectl login client: Native, device code grant, no redirect URIs needed.
	cli := newClient(ns, "kubectl", ns, "defaults", hallpassv1.Native)
	cli.Spec.RedirectURIs = nil
	cli.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantDeviceCode, hallpassv1.GrantRefreshToken}
	create(t, cli)

	// A command-line tool that also exchanges its tokens for API tokens (RFC 8693), and a
	// web app that does: token exchange goes with any grant that signs a user in.
	exchanger := newClient(ns, "exchanger", ns, "defaults", hallpassv1.Native)
	exchanger.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantAuthorizationCode, hallpassv1.GrantDeviceCode,
		hallpassv1.GrantRefreshToken, hallpassv1.GrantTokenExchange}
	backend := newClient(ns, "backend", ns, "defaults", hallpassv1.RegularWebApp)
	backend.Spec.GrantTypes = []hallpassv1.GrantType{hallpassv1.GrantAuthorizationCode, hallpassv1.GrantTokenExchange}
	create(t, exchanger, backend)

	web := newClient(ns, "web", ns, "defaults", hallpassv1.RegularWebApp)
	web.Spec.Credentials = &hallpassv1.ClientCredentials{Keys: &hallpassv1.CredentialKeys{}, Rotation: &hallpassv1.SecretRotation{}}
	create(t, web)
	web = get(g, ns, "web", &hallpassv1.SSOClient{})
	g.Expect(web.Spec.Credentials.Rotation.Overlap).To(Equal(hallpassv1.Duration("24h")))
	g.Expect(web.Spec.Credentials.Rotation.Interval).To(BeEmpty(), "no scheduled rotation unless asked for")
	g.Expect(*web.Spec.Credentials.Keys).To(Equal(hallpassv1.CredentialKeys{ClientID: "client_id", ClientSecret: "client_secret"}))
}
