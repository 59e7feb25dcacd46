package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectionType names an identity source, as in Auth0's connections.
// +kubebuilder:validation:Enum=Database;OIDC;Google;GitHub;SAML;LDAP
type ConnectionType string

// Connection types.
const (
	ConnectionDatabase ConnectionType = "Database"
	ConnectionOIDC     ConnectionType = "OIDC"
	ConnectionGoogle   ConnectionType = "Google"
	ConnectionGitHub   ConnectionType = "GitHub"
	ConnectionSAML     ConnectionType = "SAML"
	ConnectionLDAP     ConnectionType = "LDAP"
)

// IdentityConnectionSpec is one identity source of an SSO server: the built-in user
// database or an upstream identity provider. Exactly one typed block is set, the one
// matching type. Credentials are only ever Secret references.
// +kubebuilder:validation:XValidation:rule="[has(self.database), has(self.oidc), has(self.google), has(self.github), has(self.saml), has(self.ldap)].filter(x, x).size() == 1",message="spec: exactly one of database, oidc, google, github, saml or ldap must be set"
// +kubebuilder:validation:XValidation:rule="self.type == 'Database' ? has(self.database) : self.type == 'OIDC' ? has(self.oidc) : self.type == 'Google' ? has(self.google) : self.type == 'GitHub' ? has(self.github) : self.type == 'SAML' ? has(self.saml) : has(self.ldap)",message="spec: the typed block must match spec.type (type Database needs spec.database, OIDC needs spec.oidc, Google needs spec.google, GitHub needs spec.github, SAML needs spec.saml, LDAP needs spec.ldap)"
// +kubebuilder:validation:XValidation:rule="!has(self.trustUpstreamMFA) || !self.trustUpstreamMFA || self.type in ['OIDC', 'Google']",message="spec.trustUpstreamMFA: only OIDC and Google connections report the upstream amr"
type IdentityConnectionSpec struct {
	// serverRef is the SSOServer, in the same namespace, this connection belongs to. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.serverRef is immutable; create a new IdentityConnection for another server"
	ServerRef LocalServerReference `json:"serverRef"`

	// type of identity source.
	// +required
	Type ConnectionType `json:"type"`

	// displayName is the button label on the login page. Defaults to the object name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// trustUpstreamMFA counts a sign-in as multi-factor when the upstream identity provider
	// reports a second factor in the amr claim of its ID token ("mfa", "otp", "hwk", "swk",
	// "sms" or "fpt"), so its users are not asked for a second factor here again. Only for
	// type OIDC and Google, whose ID tokens carry amr. Defaults to false.
	// +optional
	TrustUpstreamMFA bool `json:"trustUpstreamMFA,omitempty"`

	// database configures the built-in user database (type Database).
	// +optional
	Database *DatabaseConnection `json:"database,omitempty"`
	// oidc configures an upstream OpenID provider (type OIDC).
	// +optional
	OIDC *OIDCConnection `json:"oidc,omitempty"`
	// google configures Google sign-in (type Google), an OIDC preset.
	// +optional
	Google *GoogleConnection `json:"google,omitempty"`
	// github configures GitHub sign-in (type GitHub).
	// +optional
	GitHub *GitHubConnection `json:"github,omitempty"`
	// saml configures a SAML 2.0 identity provider (type SAML).
	// +optional
	SAML *SAMLConnection `json:"saml,omitempty"`
	// ldap configures an LDAP directory (type LDAP).
	// +optional
	LDAP *LDAPConnection `json:"ldap,omitempty"`
}

// LocalServerReference names an SSOServer in the same namespace.
type LocalServerReference struct {
	// name of the SSOServer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="spec.serverRef.name must be the name of an SSOServer: a DNS label"
	Name string `json:"name"`
}

// DatabaseConnection is the built-in user database.
type DatabaseConnection struct {
	// usersSecretRef points at a Secret key holding a YAML list of users:
	// `- {username, email, emailVerified, name, groups, passwordHash}`, where passwordHash is
	// an argon2id PHC string (`hallpass hash-password` makes one); bcrypt hashes are
	// accepted on import.
	// +optional
	UsersSecretRef *SecretKeyReference `json:"usersSecretRef,omitempty"`
	// signupEnabled lets people create an account on the login page. Defaults to false.
	// +optional
	SignupEnabled bool `json:"signupEnabled,omitempty"`
}

// ClaimMapping maps upstream claims or attributes to Hallpass claims. Each field names the
// upstream claim; empty fields use the standard claim of the same meaning.
type ClaimMapping struct {
	// subject claim. Defaults to sub.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Subject string `json:"subject,omitempty"`
	// email claim. Defaults to email.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Email string `json:"email,omitempty"`
	// emailVerified claim. Defaults to email_verified.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	EmailVerified string `json:"emailVerified,omitempty"`
	// name claim. Defaults to name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
	// preferredUsername claim. Defaults to preferred_username.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PreferredUsername string `json:"preferredUsername,omitempty"`
	// groups claim. Defaults to groups.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Groups string `json:"groups,omitempty"`
}

// OIDCConnection is an upstream OpenID provider.
type OIDCConnection struct {
	// issuer of the upstream provider; discovery is read from it. https, or http on a
	// loopback host for local testing.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != '' && (self.startsWith('https://') || url(self).getHostname() in ['localhost', '127.0.0.1', '::1'])",message="spec.oidc.issuer must be an https URL with a host (http only on a loopback host)"
	Issuer string `json:"issuer"`
	// clientIDRef is the Secret key holding the client ID registered at the provider.
	// +required
	ClientIDRef SecretKeyReference `json:"clientIDRef"`
	// clientSecretRef is the Secret key holding the client secret registered at the provider.
	// +required
	ClientSecretRef SecretKeyReference `json:"clientSecretRef"`
	// scopes to request. Defaults to openid, profile and email.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=128
	Scopes []string `json:"scopes,omitempty"`
	// claimMapping renames upstream claims.
	// +optional
	ClaimMapping *ClaimMapping `json:"claimMapping,omitempty"`
	// rootCARef is a Secret key holding PEM CA certificates to trust for the provider.
	// +optional
	RootCARef *SecretKeyReference `json:"rootCARef,omitempty"`
}

// GoogleConnection is Google sign-in, an OIDC connection with a fixed issuer.
type GoogleConnection struct {
	// clientIDRef is the Secret key holding the OAuth client ID.
	// +required
	ClientIDRef SecretKeyReference `json:"clientIDRef"`
	// clientSecretRef is the Secret key holding the OAuth client secret.
	// +required
	ClientSecretRef SecretKeyReference `json:"clientSecretRef"`
	// hostedDomain restricts sign-in to one Google Workspace domain (checked on the hd claim).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	HostedDomain string `json:"hostedDomain,omitempty"`
}

// GitHubConnection is GitHub's OAuth2 web flow.
type GitHubConnection struct {
	// clientIDRef is the Secret key holding the OAuth app's client ID.
	// +required
	ClientIDRef SecretKeyReference `json:"clientIDRef"`
	// clientSecretRef is the Secret key holding the OAuth app's client secret.
	// +required
	ClientSecretRef SecretKeyReference `json:"clientSecretRef"`
	// baseURL of a GitHub Enterprise Server. Defaults to github.com.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname() != ''",message="spec.github.baseURL must be an https URL with a host"
	BaseURL string `json:"baseURL,omitempty"`
	// orgs restricts sign-in to members of these organizations (and, per org, teams).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Orgs []GitHubOrg `json:"orgs,omitempty"`
}

// GitHubOrg is one allowed organization.
type GitHubOrg struct {
	// name of the organization.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`
	// teams (slugs) of the organization whose members may sign in. Empty means any member.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	Teams []string `json:"teams,omitempty"`
}

// SAMLConnection is an SP-initiated SAML 2.0 identity provider. The operator generates the
// service provider's key and certificate.
// +kubebuilder:validation:XValidation:rule="[has(self.metadataURL), has(self.metadataSecretRef), has(self.metadataConfigMapRef)].filter(x, x).size() == 1",message="spec.saml: exactly one of metadataURL, metadataSecretRef or metadataConfigMapRef must be set"
type SAMLConnection struct {
	// metadataURL is an https URL of the IdP's metadata.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname() != ''",message="spec.saml.metadataURL must be an https URL with a host"
	MetadataURL string `json:"metadataURL,omitempty"`
	// metadataSecretRef is a Secret key holding the IdP's metadata XML.
	// +optional
	MetadataSecretRef *SecretKeyReference `json:"metadataSecretRef,omitempty"`
	// metadataConfigMapRef is a ConfigMap key holding the IdP's metadata XML.
	// +optional
	MetadataConfigMapRef *ConfigMapKeyReference `json:"metadataConfigMapRef,omitempty"`
	// attributeMapping maps SAML attributes to claims.
	// +optional
	AttributeMapping *ClaimMapping `json:"attributeMapping,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the ConfigMap's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// LDAPConnection authenticates users by binding to a directory.
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('ldaps://') || self.startTLS",message="spec.ldap: use an ldaps:// URL or startTLS, so passwords never cross the network in clear text"
type LDAPConnection struct {
	// url of the directory, ldaps://host:636 or ldap://host:389 with startTLS.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^ldaps?://[^/?#]+$`
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="spec.ldap.url must name the directory's host, as in ldaps://ldap.example.com:636"
	URL string `json:"url"`
	// startTLS upgrades an ldap:// connection to TLS before binding.
	// +optional
	StartTLS bool `json:"startTLS,omitempty"`
	// rootCARef is a Secret key holding PEM CA certificates to trust for the directory.
	// +optional
	RootCARef *SecretKeyReference `json:"rootCARef,omitempty"`
	// bindDN of the service account used to search for users.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BindDN string `json:"bindDN"`
	// bindPasswordRef is the Secret key holding the service account's password.
	// +required
	BindPasswordRef SecretKeyReference `json:"bindPasswordRef"`
	// userSearch finds the entry of the user signing in.
	// +required
	UserSearch LDAPUserSearch `json:"userSearch"`
	// groupSearch finds the groups of a user.
	// +optional
	GroupSearch *LDAPGroupSearch `json:"groupSearch,omitempty"`
}

// LDAPUserSearch finds users.
type LDAPUserSearch struct {
	// baseDN to search under.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN"`
	// filter added to the search, e.g. (objectClass=person).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Filter string `json:"filter,omitempty"`
	// usernameAttribute matched against the username typed in. Defaults to uid.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	UsernameAttribute string `json:"usernameAttribute,omitempty"`
}

// LDAPGroupSearch finds groups.
type LDAPGroupSearch struct {
	// baseDN to search under.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN"`
	// filter added to the search, e.g. (objectClass=groupOfNames).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Filter string `json:"filter,omitempty"`
}

// IdentityConnectionStatus is the observed state of an IdentityConnection.
type IdentityConnectionStatus struct {
	// conditions: Ready, CredentialsResolved (every Secret reference resolves) and
	// Reachable (the upstream answered the last health check).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// clients is the number of accepted SSOClients that may use this connection.
	// +optional
	Clients int32 `json:"clients,omitempty"`
	// lastCheckTime is when the operator last checked that the upstream answers.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// certificateExpiry is the earliest expiry of the upstream's signing certificates (SAML).
	// +optional
	CertificateExpiry *metav1.Time `json:"certificateExpiry,omitempty"`
	// callbackURL is what to register at the identity provider: the OAuth2/OIDC redirect URI,
	// or the SAML assertion consumer service URL.
	// +optional
	CallbackURL string `json:"callbackURL,omitempty"`
	// serviceProviderMetadataURL serves the SAML service provider metadata; it is also the
	// service provider's entity ID (SAML only).
	// +optional
	ServiceProviderMetadataURL string `json:"serviceProviderMetadataURL,omitempty"`
}

// IdentityConnection condition types.
const (
	// IdentityConnectionCredentialsResolved is True when every Secret reference resolves.
	IdentityConnectionCredentialsResolved = "CredentialsResolved"
	// IdentityConnectionReachable is True when the upstream answered the last health check.
	// It never affects Ready: a failing check does not take a connection off a server.
	IdentityConnectionReachable = "Reachable"

	// ReasonUnreachable: the upstream did not answer the health check as expected.
	ReasonUnreachable = "Unreachable"
	// ReasonCertificateExpiring: a signing certificate of the upstream expires soon.
	ReasonCertificateExpiring = "CertificateExpiring"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=idc,categories=hallpass
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverRef.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clients`
// +kubebuilder:printcolumn:name="Reachable",type=string,JSONPath=`.status.conditions[?(@.type=="Reachable")].status`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label: SSOClients name the connection in spec.connections and the server in its callback path"

// IdentityConnection is one identity source of an SSO server (an Auth0 connection).
type IdentityConnection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec IdentityConnectionSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status IdentityConnectionStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// IdentityConnectionList is a list of IdentityConnections.
type IdentityConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IdentityConnection `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IdentityConnection{}, &IdentityConnectionList{})
}

// Keys of the Secret holding a SAML connection's service provider key pair.
const (
	SAMLServiceProviderKey         = "tls.key"
	SAMLServiceProviderCertificate = "tls.crt"
)

// SAMLServiceProviderSecretName is the Secret, generated by the operator, that holds the key
// and certificate the server signs SAML requests with as a service provider.
func (c *IdentityConnection) SAMLServiceProviderSecretName() string {
	return c.Name + "-saml-sp"
}

// ConfigMapReferences returns every ConfigMap key the connection reads.
func (c *IdentityConnection) ConfigMapReferences() []ConfigMapKeyReference {
	if c.Spec.SAML != nil && c.Spec.SAML.MetadataConfigMapRef != nil {
		return []ConfigMapKeyReference{*c.Spec.SAML.MetadataConfigMapRef}
	}
	return nil
}

// SecretReferences returns every Secret key the connection reads.
func (c *IdentityConnection) SecretReferences() []SecretKeyReference {
	var refs []SecretKeyReference
	add := func(r *SecretKeyReference) {
		if r != nil {
			refs = append(refs, *r)
		}
	}
	s := &c.Spec
	if s.Database != nil {
		add(s.Database.UsersSecretRef)
	}
	if s.OIDC != nil {
		add(&s.OIDC.ClientIDRef)
		add(&s.OIDC.ClientSecretRef)
		add(s.OIDC.RootCARef)
	}
	if s.Google != nil {
		add(&s.Google.ClientIDRef)
		add(&s.Google.ClientSecretRef)
	}
	if s.GitHub != nil {
		add(&s.GitHub.ClientIDRef)
		add(&s.GitHub.ClientSecretRef)
	}
	if s.SAML != nil {
		add(s.SAML.MetadataSecretRef)
		sp := c.SAMLServiceProviderSecretName()
		add(&SecretKeyReference{Name: sp, Key: SAMLServiceProviderKey})
		add(&SecretKeyReference{Name: sp, Key: SAMLServiceProviderCertificate})
	}
	if s.LDAP != nil {
		add(&s.LDAP.BindPasswordRef)
		add(s.LDAP.RootCARef)
	}
	return refs
}
