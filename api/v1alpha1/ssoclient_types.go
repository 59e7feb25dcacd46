package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClientType is the kind of application, as in Auth0's application types.
// +kubebuilder:validation:Enum=SinglePageApp;RegularWebApp;Native;MachineToMachine
type ClientType string

// Client types.
const (
	// SinglePageApp runs in the browser: a public client using PKCE, no secret.
	SinglePageApp ClientType = "SinglePageApp"
	// RegularWebApp runs on a server and keeps a client secret.
	RegularWebApp ClientType = "RegularWebApp"
	// Native is a mobile or desktop app: a public client using PKCE, no secret.
	Native ClientType = "Native"
	// MachineToMachine uses the client credentials grant; no user, no redirects.
	MachineToMachine ClientType = "MachineToMachine"
)

// Public reports whether clients of this type cannot keep a secret.
func (t ClientType) Public() bool { return t == SinglePageApp || t == Native }

// GrantType is an OAuth 2.0 grant a client may use.
// +kubebuilder:validation:Enum=authorization_code;refresh_token;client_credentials;"urn:ietf:params:oauth:grant-type:device_code";"urn:ietf:params:oauth:grant-type:token-exchange"
type GrantType string

// Grant types.
const (
	GrantAuthorizationCode GrantType = "authorization_code"
	GrantRefreshToken      GrantType = "refresh_token"
	GrantClientCredentials GrantType = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628): a command-line tool or
	// a device without a browser shows a code that the user confirms at the issuer.
	GrantDeviceCode GrantType = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantTokenExchange is token exchange (RFC 8693): the client trades its own ID token or
	// access token, issued in a user's session, for an access token of an API that an
	// SSOAPI grants it for user flows.
	GrantTokenExchange GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// DeletionPolicy decides what happens to the credentials Secret when the SSOClient goes.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

// Deletion policies.
const (
	// DeletionPolicyDelete deletes the credentials Secret with the SSOClient.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan keeps the credentials Secret, so that an SSOClient of the same
	// name created later gets the same client ID and secret back.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// SSOClientSpec is the desired state of one application registered with an SSO server.
// +kubebuilder:validation:XValidation:rule="!(self.type in ['SinglePageApp', 'Native']) || !has(self.credentials) || !has(self.credentials.clientSecretRef)",message="spec.credentials.clientSecretRef: SinglePageApp and Native clients are public clients and must not have a client secret"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['SinglePageApp', 'Native']) || !has(self.credentials) || !has(self.credentials.rotation)",message="spec.credentials.rotation: SinglePageApp and Native clients are public clients and have no client secret to rotate"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['SinglePageApp', 'Native']) || !has(self.requirePKCE) || self.requirePKCE",message="spec.requirePKCE: SinglePageApp and Native clients must use PKCE"
// +kubebuilder:validation:XValidation:rule="self.type == 'MachineToMachine' ? !has(self.redirectURIs) || size(self.redirectURIs) == 0 : (has(self.redirectURIs) && size(self.redirectURIs) > 0) || (has(self.grantTypes) && !('authorization_code' in self.grantTypes))",message="spec.redirectURIs: MachineToMachine clients have no redirect URIs; every other type needs at least one, unless its grantTypes leave out authorization_code"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || !('urn:ietf:params:oauth:grant-type:device_code' in self.grantTypes) || self.type == 'Native'",message="spec.grantTypes: the device code grant is for Native clients only"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || (self.type == 'MachineToMachine' ? self.grantTypes.all(g, g == 'client_credentials') : !('client_credentials' in self.grantTypes))",message="spec.grantTypes: client_credentials is the one grant of MachineToMachine clients, and only theirs"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || !('refresh_token' in self.grantTypes) || 'authorization_code' in self.grantTypes || 'urn:ietf:params:oauth:grant-type:device_code' in self.grantTypes",message="spec.grantTypes: refresh_token needs a grant that signs a user in (authorization_code or the device code grant)"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || !('urn:ietf:params:oauth:grant-type:token-exchange' in self.grantTypes) || 'authorization_code' in self.grantTypes || 'urn:ietf:params:oauth:grant-type:device_code' in self.grantTypes",message="spec.grantTypes: token exchange trades the client's own tokens of a user, so it needs a grant that signs a user in (authorization_code or the device code grant)"
// +kubebuilder:validation:XValidation:rule="self.type == 'Native' || !has(self.redirectURIs) || self.redirectURIs.all(u, u.startsWith('https://') || u.startsWith('http://'))",message="spec.redirectURIs: only Native clients may use custom URI schemes"
type SSOClientSpec struct {
	// serverRef is the SSOServer this client registers with. The server's
	// allowedClientNamespaces must admit the client's namespace. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.serverRef is immutable; create a new SSOClient to register with another server"
	ServerRef ServerReference `json:"serverRef"`

	// displayName is shown on the login page. Defaults to the object name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// type of application. SinglePageApp and Native are public clients (PKCE, no secret);
	// RegularWebApp and MachineToMachine get a client secret.
	// +required
	Type ClientType `json:"type"`

	// redirectURIs are the callback URLs, matched exactly (no wildcards, no fragments).
	// They must be https, or http on a loopback host (localhost, 127.0.0.1, [::1]); http on
	// other hosts only when the server is in devMode.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('*')",message="spec.redirectURIs must not contain wildcards: redirect URIs are matched exactly"
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('#')",message="spec.redirectURIs must not contain a fragment"
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:/') && (!self.startsWith('http') || (isURL(self) && url(self).getHostname() != ''))",message="spec.redirectURIs must be absolute URLs"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('^(?i)(javascript|data|vbscript|file|blob|about):')",message="spec.redirectURIs must not use the javascript, data, vbscript, file, blob or about scheme: the browser would run or read it instead of returning to an application"
	RedirectURIs []string `json:"redirectURIs,omitempty"`

	// postLogoutRedirectURIs are where logout may send the user back to (OIDC
	// post_logout_redirect_uri, Auth0 returnTo), matched exactly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('*')",message="spec.postLogoutRedirectURIs must not contain wildcards: they are matched exactly"
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('#')",message="spec.postLogoutRedirectURIs must not contain a fragment"
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:/') && (!self.startsWith('http') || (isURL(self) && url(self).getHostname() != ''))",message="spec.postLogoutRedirectURIs must be absolute URLs"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches('^(?i)(javascript|data|vbscript|file|blob|about):')",message="spec.postLogoutRedirectURIs must not use the javascript, data, vbscript, file, blob or about scheme: the browser would run or read it instead of returning to an application"
	PostLogoutRedirectURIs []string `json:"postLogoutRedirectURIs,omitempty"`

	// webOrigins are the origins (scheme://host[:port]) allowed to call the token endpoint
	// from a browser (CORS) and to receive responses with response_mode=web_message.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^https?://[^/?#*]+$')",message="spec.webOrigins must be origins like https://app.example.com, without path or wildcard"
	WebOrigins []string `json:"webOrigins,omitempty"`

	// singleSignOn makes the client reuse a valid central session instead of showing the
	// login page (Auth0's "Use Auth0 instead of the IdP to do Single Sign On"). When false,
	// the client always shows the login page, prompt=none gets login_required, and its
	// logins do not create sessions other clients reuse. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	SingleSignOn *bool `json:"singleSignOn,omitempty"`

	// requirePKCE requires a PKCE S256 challenge on every authorization request. Always true
	// for SinglePageApp and Native; PKCE is enforced whenever a challenge is sent.
	// Defaults to true.
	// +optional
	// +kubebuilder:default=true
	RequirePKCE *bool `json:"requirePKCE,omitempty"`

	// requireMFA makes every sign-in to this client need a second factor, whatever the
	// server's mfa.policy. A user whose central session has none is asked for one (and
	// enrols one if needed) without entering the password again; a silent request
	// (prompt=none) gets interaction_required instead. Defaults to false.
	// +optional
	RequireMFA bool `json:"requireMFA,omitempty"`

	// connections are the names of IdentityConnections of the server this client may use.
	// When empty, the client may use every connection of its server.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.connections must be names of IdentityConnections: DNS labels (lower-case letters, digits and '-')"
	Connections []string `json:"connections,omitempty"`

	// allowedScopes is deprecated and grants nothing: which client may get which scope of
	// an API is declared by the platform team in an SSOAPI's grants, never by the client.
	// The operator reports the field with the Deprecated condition until it is removed;
	// the next API version drops it.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	AllowedScopes []string `json:"allowedScopes,omitempty"`

	// grantTypes are the OAuth 2.0 grants the client may use. When unset, those of its type:
	// authorization_code and refresh_token for SinglePageApp, RegularWebApp and Native;
	// client_credentials for MachineToMachine. The device code grant
	// (urn:ietf:params:oauth:grant-type:device_code, RFC 8628), with which a command-line
	// tool such as kubectl signs in on a machine without a browser, is for Native clients
	// and only when listed. Token exchange
	// (urn:ietf:params:oauth:grant-type:token-exchange, RFC 8693) lets the client trade its
	// own ID token or access token of a signed-in user for an access token of an API that
	// an SSOAPI grants it for user flows. Leaving out refresh_token gives no refresh tokens;
	// leaving out authorization_code lets a Native client have no redirect URIs.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	GrantTypes []GrantType `json:"grantTypes,omitempty"`

	// accessTokenAudience is deprecated and grants nothing: a client asks for an API with
	// the audience (or resource) parameter, and gets a token for it only when an SSOAPI
	// grants it. The operator reports the field with the Deprecated condition until it is
	// removed; the next API version drops it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^[\x21-\x7E]+$`
	AccessTokenAudience string `json:"accessTokenAudience,omitempty"`

	// idTokenSigningAlgorithm is the algorithm of this client's ID tokens and back-channel
	// logout tokens: RS256 or ES256. Defaults to the server's spec.signingKeys.algorithm.
	// The server always serves keys of both algorithms, so any client may pick either.
	// +optional
	// +kubebuilder:validation:Enum=RS256;ES256
	IDTokenSigningAlgorithm string `json:"idTokenSigningAlgorithm,omitempty"`

	// backchannelLogoutURI receives OIDC Back-Channel Logout tokens when a session this
	// client took part in ends.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://')) && url(self).getHostname() != '' && !self.contains('#')",message="spec.backchannelLogoutURI must be an http(s) URL with a host and without fragment"
	BackchannelLogoutURI string `json:"backchannelLogoutURI,omitempty"`

	// frontchannelLogoutURI is embedded in the signed-out page (OIDC Front-Channel Logout).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://')) && url(self).getHostname() != '' && !self.contains('#')",message="spec.frontchannelLogoutURI must be an http(s) URL with a host and without fragment"
	FrontchannelLogoutURI string `json:"frontchannelLogoutURI,omitempty"`

	// credentials configures the Secret the operator writes for the application.
	// +optional
	Credentials *ClientCredentials `json:"credentials,omitempty"`

	// deletionPolicy: Delete removes the credentials Secret with the SSOClient; Orphan keeps
	// it, so that recreating the SSOClient restores the same client ID and secret.
	// Defaults to Delete.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ServerReference names an SSOServer.
type ServerReference struct {
	// name of the SSOServer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="spec.serverRef.name must be the name of an SSOServer: a DNS label"
	Name string `json:"name"`
	// namespace of the SSOServer. Defaults to the namespace of the referring object.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.serverRef.namespace must be a namespace name: a DNS label"
	Namespace string `json:"namespace,omitempty"`
}

// ClientCredentials configures the credentials Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.clientSecretRef) || !has(self.rotation) || !has(self.rotation.interval)",message="spec.credentials.rotation.interval: a secret brought with clientSecretRef is rotated by changing that Secret, not on a schedule"
type ClientCredentials struct {
	// secretName of the Secret, in the client's namespace, that receives the client ID,
	// the client secret (confidential clients), issuer and discovery_url.
	// Defaults to <name>-sso-credentials.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName,omitempty"`
	// keys names the keys of the credentials Secret that hold the client ID and secret, for
	// applications that expect other names. Defaults to client_id and client_secret.
	// +optional
	Keys *CredentialKeys `json:"keys,omitempty"`
	// clientSecretRef brings your own client secret instead of a generated one
	// (confidential clients only). It must be at least 32 characters. When its value
	// changes, the server keeps accepting the previous one for rotation.overlap.
	// +optional
	ClientSecretRef *SecretKeyReference `json:"clientSecretRef,omitempty"`
	// rotation configures how the client secret is replaced: on demand (the annotation
	// sso.hallpass.dev/rotate-client-secret set to a new value) and optionally on a
	// schedule, with an overlap during which the server accepts the previous secret too.
	// +optional
	Rotation *SecretRotation `json:"rotation,omitempty"`
}

// CredentialKeys names keys of the credentials Secret.
// +kubebuilder:validation:XValidation:rule="!has(self.clientID) || !has(self.clientSecret) || self.clientID != self.clientSecret",message="spec.credentials.keys: clientID and clientSecret must name different keys"
// +kubebuilder:validation:XValidation:rule="!(has(self.clientID) && self.clientID in ['issuer', 'discovery_url']) && !(has(self.clientSecret) && self.clientSecret in ['issuer', 'discovery_url'])",message="spec.credentials.keys: issuer and discovery_url are keys the operator writes itself"
type CredentialKeys struct {
	// clientID is the key that holds the client ID. Defaults to client_id.
	// +optional
	// +kubebuilder:default=client_id
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="spec.credentials.keys.clientID must be a Secret key: letters, digits, '-', '_' and '.'"
	ClientID string `json:"clientID,omitempty"`
	// clientSecret is the key that holds the client secret (confidential clients).
	// Defaults to client_secret.
	// +optional
	// +kubebuilder:default=client_secret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="spec.credentials.keys.clientSecret must be a Secret key: letters, digits, '-', '_' and '.'"
	ClientSecret string `json:"clientSecret,omitempty"`
}

// SecretRotation configures client secret rotation.
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || !has(self.overlap) || duration(self.interval) > duration(self.overlap)",message="spec.credentials.rotation.interval must be longer than spec.credentials.rotation.overlap"
type SecretRotation struct {
	// overlap is how long the server keeps accepting the previous client secret after a
	// rotation, so that every replica of the application can pick up the new one from the
	// credentials Secret. At least 1m, at most 720h. Defaults to 24h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('720h'))",message="spec.credentials.rotation.overlap must be between 1m and 720h"
	Overlap Duration `json:"overlap,omitempty"`
	// interval rotates a generated client secret on a schedule: this long after the last
	// rotation. At least 1h, at most 8760h, and longer than overlap. When unset, the secret
	// rotates only on demand.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1h') && duration(self) <= duration('8760h'))",message="spec.credentials.rotation.interval must be between 1h and 8760h"
	Interval Duration `json:"interval,omitempty"`
}

// SSOClientStatus is the observed state of an SSOClient.
type SSOClientStatus struct {
	// conditions: Ready, Accepted (the server admits the client and its namespace's budget
	// has room), ConnectionsResolved, CredentialsReady, Served (the server's pods report applying a
	// config that serves the client's current generation), and Deprecated while the spec sets fields that have no
	// effect.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// clientID is the OAuth 2.0 client identifier, stable for the life of the client.
	// +optional
	ClientID string `json:"clientID,omitempty"`
	// credentialsSecret is the name of the Secret holding the client's credentials.
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
	// clientSecret describes the client secret's rotation. The credentials Secret is the
	// durable record; this is a copy for kubectl.
	// +optional
	ClientSecret ClientSecretStatus `json:"clientSecret,omitzero"`
}

// ClientSecretStatus describes the rotation of a client secret.
type ClientSecretStatus struct {
	// rotatedAt is when the current client secret was written.
	// +optional
	RotatedAt *metav1.Time `json:"rotatedAt,omitempty"`
	// previousAcceptedUntil is when the server stops accepting the previous client secret;
	// unset when no previous secret is accepted.
	// +optional
	PreviousAcceptedUntil *metav1.Time `json:"previousAcceptedUntil,omitempty"`
	// rotationRequest is the last value of the sso.hallpass.dev/rotate-client-secret
	// annotation the operator acted on.
	// +optional
	RotationRequest string `json:"rotationRequest,omitempty"`
	// revocationRequest is the last value of the sso.hallpass.dev/revoke-client-secret
	// annotation the operator acted on.
	// +optional
	RevocationRequest string `json:"revocationRequest,omitempty"`
}

// SSOClient condition types and reasons.
const (
	// SSOClientAccepted is True when the server admits the client.
	SSOClientAccepted = "Accepted"
	// SSOClientConnectionsResolved is True when every named connection exists and is ready.
	SSOClientConnectionsResolved = "ConnectionsResolved"
	// SSOClientCredentialsReady is True when the credentials Secret is written.
	SSOClientCredentialsReady = "CredentialsReady"
	// SSOClientServed is True when the server's pods report applying a config that serves
	// the client's current generation; False while they have not yet (reason
	// WaitingForServer) or when the server left the client out (the reason says why).
	SSOClientServed = "Served"
	// SSOClientDeprecated is True while the spec sets fields that no longer have an effect;
	// its message says what to do instead. It never affects Ready.
	SSOClientDeprecated = "Deprecated"

	// ReasonNamespaceNotAllowed: the server's allowedClientNamespaces excludes the namespace.
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonInsecureRedirectURI: an http redirect URI on a non-loopback host, server not in devMode.
	ReasonInsecureRedirectURI = "InsecureRedirectURI"
	// ReasonDuplicateClientID: an older SSOClient already has this client ID.
	ReasonDuplicateClientID = "DuplicateClientID"
	// ReasonSecretConflict: the credentials Secret belongs to something else.
	ReasonSecretConflict = "SecretConflict"
	// ReasonConnectionNotFound: a named connection does not exist on the server.
	ReasonConnectionNotFound = "ConnectionNotFound"
	// ReasonConnectionNotReady: a named connection exists but is not ready.
	ReasonConnectionNotReady = "ConnectionNotReady"
	// ReasonPending: the server has not yet rendered the client's current generation.
	ReasonPending = "Pending"
	// ReasonWaitingForServer: the server's config serves the client's current generation,
	// and the server's pods have not yet all reported applying it.
	ReasonWaitingForServer = "WaitingForServer"
	// ReasonNotAccepted: Ready is False because Accepted is False.
	ReasonNotAccepted = "NotAccepted"
	// ReasonClientSecretRotated: a new client secret was written; the previous one is
	// accepted for the overlap.
	ReasonClientSecretRotated = "ClientSecretRotated"
	// ReasonClientSecretRevoked: the previous client secret is no longer accepted (and a
	// generated one was replaced), without overlap.
	ReasonClientSecretRevoked = "ClientSecretRevoked"
	// ReasonClientSecretChanged: the Secret of clientSecretRef holds a new value.
	ReasonClientSecretChanged = "ClientSecretChanged"
	// ReasonIgnoredFields: the spec sets deprecated fields, which are ignored.
	ReasonIgnoredFields = "IgnoredFields"
	// ReasonRotationIgnored: a rotation was requested for a secret the operator does not
	// generate (clientSecretRef).
	ReasonRotationIgnored = "RotationIgnored"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ssoc,categories=hallpass
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverRef.name`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="SSO",type=boolean,JSONPath=`.spec.singleSignOn`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// SSOClient is one application registered with an SSO server (an Auth0 application). The
// operator gives it a client ID and, for confidential types, a client secret, written to a
// Secret in the client's namespace.
type SSOClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec SSOClientSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status SSOClientStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// SSOClientList is a list of SSOClients.
type SSOClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SSOClient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SSOClient{}, &SSOClientList{})
}

// ServerKey returns the namespace and name of the client's SSOServer.
func (c *SSOClient) ServerKey() (namespace, name string) {
	namespace = c.Spec.ServerRef.Namespace
	if namespace == "" {
		namespace = c.Namespace
	}
	return namespace, c.Spec.ServerRef.Name
}

// SSOEnabled reports whether the client reuses the central session (default true).
func (s *SSOClientSpec) SSOEnabled() bool { return s.SingleSignOn == nil || *s.SingleSignOn }

// PKCERequired reports whether every authorization request must carry a PKCE challenge.
func (s *SSOClientSpec) PKCERequired() bool {
	return s.RequirePKCE == nil || *s.RequirePKCE || s.Type.Public()
}

// Default names of the credentials Secret keys.
const (
	DefaultClientIDKey     = "client_id"
	DefaultClientSecretKey = "client_secret"
)

// CredentialKeyNames returns the keys of the credentials Secret that hold the client ID
// and the client secret.
func (c *SSOClient) CredentialKeyNames() (clientID, clientSecret string) {
	clientID, clientSecret = DefaultClientIDKey, DefaultClientSecretKey
	if c.Spec.Credentials != nil && c.Spec.Credentials.Keys != nil {
		if c.Spec.Credentials.Keys.ClientID != "" {
			clientID = c.Spec.Credentials.Keys.ClientID
		}
		if c.Spec.Credentials.Keys.ClientSecret != "" {
			clientSecret = c.Spec.Credentials.Keys.ClientSecret
		}
	}
	return clientID, clientSecret
}

// CredentialsSecretName is the name of the client's credentials Secret.
func (c *SSOClient) CredentialsSecretName() string {
	if c.Spec.Credentials != nil && c.Spec.Credentials.SecretName != "" {
		return c.Spec.Credentials.SecretName
	}
	return c.Name + "-sso-credentials"
}
