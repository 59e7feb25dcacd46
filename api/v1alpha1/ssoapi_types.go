package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APITokenFormat is how access tokens for an API are issued.
// +kubebuilder:validation:Enum=JWT;Opaque
type APITokenFormat string

// API token formats.
const (
	// APITokenJWT issues RFC 9068 JWT access tokens (typ at+jwt), which the API verifies
	// with the server's JWKS alone.
	APITokenJWT APITokenFormat = "JWT"
	// APITokenOpaque issues random access tokens, which the API checks with the server's
	// introspection endpoint (the response's aud is the API's identifier).
	APITokenOpaque APITokenFormat = "Opaque"
)

// SSOAPISpec declares one API of an SSO server and which clients may get tokens for it.
// Audiences and scopes are not self-service: only who may write SSOAPIs in the server's
// namespace decides them, never an SSOClient.
// +kubebuilder:validation:XValidation:rule="!has(self.grants) || self.grants.all(g, !has(g.userFlows) || !has(g.userFlows.scopes) || g.userFlows.scopes.all(s, has(self.scopes) && self.scopes.exists(d, d.name == s)))",message="spec.grants[].userFlows.scopes: every granted scope must be declared in spec.scopes"
// +kubebuilder:validation:XValidation:rule="!has(self.grants) || self.grants.all(g, !has(g.clientCredentials) || !has(g.clientCredentials.scopes) || g.clientCredentials.scopes.all(s, has(self.scopes) && self.scopes.exists(d, d.name == s)))",message="spec.grants[].clientCredentials.scopes: every granted scope must be declared in spec.scopes"
type SSOAPISpec struct {
	// serverRef is the SSOServer, in the same namespace, this API belongs to. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.serverRef is immutable; create a new SSOAPI for another server"
	ServerRef LocalServerReference `json:"serverRef"`

	// identifier is the API's audience (Auth0's API identifier): the `aud` of its access
	// tokens, and the value clients send as the `audience` (Auth0) or `resource` (RFC 8707)
	// parameter. An absolute URI such as https://api.example.com/orders or a URN such as
	// urn:example:orders, without fragment or whitespace. It can never equal a client ID
	// (client IDs have no ':') or the server's issuer (the operator refuses that).
	// Immutable: tokens already issued carry it.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:[!-~]+$') && !self.contains('#')",message="spec.identifier must be an absolute URI (https://api.example.com/orders) or a URN (urn:example:orders), without fragment or whitespace"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('http') || (isURL(self) && url(self).getHostname() != '')",message="spec.identifier: an http(s) identifier must be a URL with a host"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.identifier is immutable; create a new SSOAPI for another audience"
	Identifier string `json:"identifier"`

	// displayName names the API in messages. Defaults to the object name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// scopes are the permissions the API defines, such as orders:read. A token carries
	// only scopes declared here and granted to its client.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Scopes []APIScope `json:"scopes,omitempty"`

	// token configures the API's access tokens.
	// +optional
	Token APIToken `json:"token,omitzero"`

	// grants say which clients may get tokens for this API, and with which scopes, in user
	// flows and with client credentials (Auth0's client grants). A client no grant selects
	// gets no token for the API. When several grants select a client, it gets the union.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Grants []APIGrant `json:"grants,omitempty"`
}

// APIScope is one permission of an API.
type APIScope struct {
	// name of the scope, as clients request it: printable ASCII without spaces, quotes or
	// backslashes (RFC 6749 §3.3). It must not be one of the OpenID scopes (openid,
	// profile, email, groups, offline_access), which the server itself defines.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	// +kubebuilder:validation:XValidation:rule="!(self in ['openid', 'profile', 'email', 'groups', 'offline_access'])",message="spec.scopes[].name must not be an OpenID scope (openid, profile, email, groups, offline_access)"
	Name string `json:"name"`
	// description says what the scope allows.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`
}

// APIToken configures the access tokens of an API.
type APIToken struct {
	// format of the access tokens: JWT (RFC 9068, typ at+jwt; the API needs nothing but
	// the JWKS) or Opaque (the API asks the introspection endpoint). Defaults to JWT.
	// +optional
	// +kubebuilder:default=JWT
	Format APITokenFormat `json:"format,omitempty"`
	// lifetime of the access tokens, between 1m and 24h. Defaults to the server's
	// spec.tokens.accessToken.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",message="spec.token.lifetime must be between 1m and 24h"
	Lifetime Duration `json:"lifetime,omitempty"`
}

// APIGrant lets some clients get tokens for the API.
// +kubebuilder:validation:XValidation:rule="has(self.userFlows) || has(self.clientCredentials)",message="spec.grants[]: set userFlows, clientCredentials or both; a grant of neither grants nothing"
type APIGrant struct {
	// clients selects the SSOClients this grant is for.
	// +required
	Clients GrantedClients `json:"clients"`
	// userFlows lets the clients get tokens for the API on behalf of a user (authorization
	// code, refresh token, and token exchange of their own tokens for clients that list
	// that grant), with these scopes at most. Unset: not in user flows.
	// +optional
	UserFlows *GrantedScopes `json:"userFlows,omitempty"`
	// clientCredentials lets the clients (MachineToMachine) get tokens for the API on
	// their own behalf, with these scopes at most. Unset: not with client credentials.
	// +optional
	ClientCredentials *GrantedScopes `json:"clientCredentials,omitempty"`
}

// GrantedClients selects SSOClients: first the namespaces (by name or by label), then, in
// them, the clients (by name, by label, or all). Namespace labels are usually the cluster
// administrators'; SSOClient labels are written by the application team that owns the
// namespace, so a client selector only chooses among clients of namespaces already trusted.
// +kubebuilder:validation:XValidation:rule="has(self.namespace) != has(self.namespaceSelector)",message="spec.grants[].clients: set exactly one of namespace or namespaceSelector"
// +kubebuilder:validation:XValidation:rule="!(has(self.names) && has(self.selector))",message="spec.grants[].clients: set names or selector, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.names) || has(self.namespace)",message="spec.grants[].clients.names needs spec.grants[].clients.namespace"
type GrantedClients struct {
	// namespace of the clients.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
	// namespaceSelector selects the namespaces of the clients by their labels.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// names of the SSOClients in namespace. Unset with no selector: every client there.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Names []string `json:"names,omitempty"`
	// selector selects SSOClients in the chosen namespaces by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// GrantedScopes lists the scopes of a grant.
type GrantedScopes struct {
	// scopes the clients may get, each declared in spec.scopes. Empty: a token for the API
	// without scopes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=128
	Scopes []string `json:"scopes,omitempty"`
}

// SSOAPIStatus is the observed state of an SSOAPI.
type SSOAPIStatus struct {
	// conditions: Ready (the server serves the API: its identifier is unique and is no
	// client ID and not the issuer).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// clients is the number of the server's clients with a client ID that a grant selects.
	// +optional
	Clients int32 `json:"clients,omitempty"`
}

// SSOAPI condition reasons.
const (
	// ReasonDuplicateIdentifier: an older SSOAPI of the server has the same identifier.
	ReasonDuplicateIdentifier = "DuplicateIdentifier"
	// ReasonIdentifierIsIssuer: the identifier is the server's issuer.
	ReasonIdentifierIsIssuer = "IdentifierIsIssuer"
	// ReasonIdentifierIsClientID: the identifier is the client ID of a client of the server.
	ReasonIdentifierIsClientID = "IdentifierIsClientID"
	// ReasonInvalidSpec: a label selector or duration of the spec does not parse.
	ReasonInvalidSpec = "InvalidSpec"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ssoapi,categories=hallpass
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.serverRef.name`
// +kubebuilder:printcolumn:name="Identifier",type=string,JSONPath=`.spec.identifier`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clients`
// +kubebuilder:printcolumn:name="Format",type=string,JSONPath=`.spec.token.format`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// SSOAPI is an API of an SSO server (an Auth0 API) with its client grants: the audience
// access tokens may name, its scopes, and which clients may get which of them.
type SSOAPI struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec SSOAPISpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status SSOAPIStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// SSOAPIList is a list of SSOAPIs.
type SSOAPIList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SSOAPI `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SSOAPI{}, &SSOAPIList{})
}
