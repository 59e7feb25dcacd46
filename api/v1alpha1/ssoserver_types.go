package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SSOServerSpec is the desired state of one central SSO service.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || (has(self.storage) && has(self.storage.type) && self.storage.type == 'Postgres')",message="spec.replicas: more than one replica requires spec.storage.type Postgres; SQLite is a single-writer file"
// +kubebuilder:validation:XValidation:rule="self.issuer.startsWith('https://') || (self.devMode && self.issuer.startsWith('http://'))",message="spec.issuer must be an https URL (http is allowed only with spec.devMode)"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || self.issuer.startsWith('https://')",message="spec.tls needs an https spec.issuer"
type SSOServerSpec struct {
	// issuer is the public URL of the server, used as the `iss` of every token and the base
	// of every endpoint (discovery is at issuer + "/.well-known/openid-configuration").
	// It must be https unless devMode is set, and has no query or fragment.
	// +required
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != '' && url(self).getQuery().size() == 0 && !self.contains('#')",message="spec.issuer must be an absolute URL without query or fragment"
	Issuer string `json:"issuer"`

	// devMode allows http issuers and http redirect URIs on any host, and drops the Secure
	// flag of the session cookie on loopback http. Never enable it for a server users rely on.
	// Defaults to false.
	// +optional
	DevMode bool `json:"devMode,omitempty"`

	// session is the central session policy.
	// +optional
	// +kubebuilder:default={}
	Session SessionPolicy `json:"session,omitzero"`

	// tokens sets token lifetimes.
	// +optional
	// +kubebuilder:default={}
	Tokens TokenPolicy `json:"tokens,omitzero"`

	// storage selects where sessions, codes and tokens live.
	// +optional
	// +kubebuilder:default={}
	Storage Storage `json:"storage,omitzero"`

	// replicas is the number of server pods. More than one needs Postgres storage.
	// Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	Replicas int32 `json:"replicas,omitempty"`

	// signingKeys configures the keys that sign ID tokens.
	// +optional
	// +kubebuilder:default={}
	SigningKeys SigningKeyPolicy `json:"signingKeys,omitzero"`

	// allowedClientNamespaces decides which other namespaces may register SSOClients with
	// this server; the server's own namespace always may. When unset, no other namespace may.
	// +optional
	AllowedClientNamespaces *NamespaceSelection `json:"allowedClientNamespaces,omitempty"`

	// budgets limit what the SSOClients of one namespace may take of this server, so that no
	// application team can crowd out the others or grow the config past what the server can
	// load. A client over its namespace's budget, or whose addition would overflow it, is
	// left out of the config and reported on that client (Accepted False, reason
	// OverBudget); the others keep being served. Clients are counted oldest first, so a new
	// client never pushes out one already served.
	// +optional
	// +kubebuilder:default={}
	Budgets NamespaceBudgets `json:"budgets,omitzero"`

	// branding customises the login page.
	// +optional
	Branding Branding `json:"branding,omitzero"`

	// mfa is the server's second-factor policy: who is asked for a second factor at sign-in
	// and which kinds of factor users may enrol. Defaults to policy Off.
	// +optional
	MFA MFA `json:"mfa,omitzero"`

	// email is the SMTP server through which the server sends password reset links and
	// email address verification links to users who signed up into a Database connection.
	// When unset, no mail is sent: the login page offers no password reset and sign-up
	// sends no verification link.
	// +optional
	Email *Email `json:"email,omitempty"`

	// trustedProxies are the CIDRs of the proxies in front of the server (ingress
	// controllers, load balancers). Only requests from these peers may name the client's
	// address in X-Forwarded-For, which login throttling keys on. When unset, throttling uses
	// the peer address, which behind a proxy is the proxy's.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="spec.trustedProxies must be CIDRs such as 10.0.0.0/8 or fd00::/8"
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// tls makes the server pods speak https themselves, with the certificate of a
	// kubernetes.io/tls Secret in the server's namespace (one cert-manager keeps, for
	// example); a renewed certificate is served without a restart. Needs an https issuer.
	// When unset the pods speak http and TLS ends in front of them (an Ingress or a Gateway).
	// +optional
	TLS *ServerTLS `json:"tls,omitempty"`

	// image overrides the server image. Defaults to the image of the operator's own version.
	// It must be in a repository the operator allows (its --allowed-server-images, by
	// default only the repository of its own server image); otherwise nothing is deployed
	// and the ImageAllowed condition says why.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// resources of each server pod. Defaults to requests of 50m CPU and 64Mi memory and a
	// 256Mi memory limit.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// ServerTLS names the certificate the server pods serve https with.
type ServerTLS struct {
	// secretName is a Secret of type kubernetes.io/tls (keys tls.crt and tls.key) in the
	// server's namespace. The server pods may read it and nothing else of the namespace's
	// Secrets; a pod without it does not start, and a replacement that is not a valid
	// pair is refused while the last good certificate keeps serving.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	SecretName string `json:"secretName"`
}

// SessionPolicy is the lifetime of a central session. A session is valid while
// now < created + absoluteLifetime and now < last activity + idleTimeout; any authorization
// request of any client that uses the session counts as activity.
// +kubebuilder:validation:XValidation:rule="!has(self.idleTimeout) || !has(self.absoluteLifetime) || duration(self.idleTimeout) <= duration(self.absoluteLifetime)",message="spec.session.idleTimeout must not be longer than spec.session.absoluteLifetime"
type SessionPolicy struct {
	// absoluteLifetime is the longest a session lasts, however active. At least 5m, at most
	// 8760h (a year). Defaults to 168h.
	// +optional
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('5m') && duration(self) <= duration('8760h'))",message="spec.session.absoluteLifetime must be between 5m and 8760h"
	AbsoluteLifetime Duration `json:"absoluteLifetime,omitempty"`
	// idleTimeout ends a session after this long without activity. At least 1m, at most 8760h,
	// and not longer than absoluteLifetime. Defaults to 72h.
	// +optional
	// +kubebuilder:default="72h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('8760h'))",message="spec.session.idleTimeout must be between 1m and 8760h"
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
}

// TokenPolicy sets token lifetimes.
type TokenPolicy struct {
	// idToken lifetime. At least 1m, at most 24h. Defaults to 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",message="spec.tokens.idToken must be between 1m and 24h"
	IDToken Duration `json:"idToken,omitempty"`
	// accessToken lifetime. At least 1m, at most 24h. Defaults to 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",message="spec.tokens.accessToken must be between 1m and 24h"
	AccessToken Duration `json:"accessToken,omitempty"`
	// refreshToken is the absolute lifetime of a refresh token family. At least 1m, at most
	// 8760h. Defaults to 720h.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('8760h'))",message="spec.tokens.refreshToken must be between 1m and 8760h"
	RefreshToken Duration `json:"refreshToken,omitempty"`
	// refreshReuseInterval is how long the previous refresh token of a family stays usable
	// after a rotation, so that concurrent refreshes do not log the user out. Presenting an
	// older token, or the previous one after this window, revokes the whole family.
	// At most 1m; 0s disables the window. Defaults to 3s.
	// +optional
	// +kubebuilder:default="3s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('0s') && duration(self) <= duration('1m'))",message="spec.tokens.refreshReuseInterval must be between 0s and 1m"
	RefreshReuseInterval Duration `json:"refreshReuseInterval,omitempty"`
	// authorizationCode lifetime. At least 10s, at most 10m (RFC 6749 section 4.1.2).
	// Defaults to 60s.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('10s') && duration(self) <= duration('10m'))",message="spec.tokens.authorizationCode must be between 10s and 10m"
	AuthorizationCode Duration `json:"authorizationCode,omitempty"`
}

// StorageType names a storage backend.
// +kubebuilder:validation:Enum=SQLite;Postgres
type StorageType string

// Storage backends.
const (
	StorageSQLite   StorageType = "SQLite"
	StoragePostgres StorageType = "Postgres"
)

// Storage selects where the server keeps its state.
// +kubebuilder:validation:XValidation:rule="(has(self.type) && self.type == 'Postgres') == has(self.postgres)",message="spec.storage.postgres is required when spec.storage.type is Postgres, and not allowed otherwise"
type Storage struct {
	// type is SQLite (a file on a PersistentVolumeClaim, one replica) or Postgres.
	// Defaults to SQLite.
	// +optional
	// +kubebuilder:default=SQLite
	Type StorageType `json:"type,omitempty"`
	// sqlite configures the volume of SQLite storage.
	// +optional
	SQLite SQLiteStorage `json:"sqlite,omitzero"`
	// postgres configures PostgreSQL storage.
	// +optional
	Postgres *PostgresStorage `json:"postgres,omitempty"`
}

// SQLiteStorage is the volume that holds the SQLite file.
type SQLiteStorage struct {
	// size of the PersistentVolumeClaim. Defaults to 1Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// storageClassName of the PersistentVolumeClaim. Defaults to the cluster default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// PostgresStorage points at a PostgreSQL database.
type PostgresStorage struct {
	// dsnSecretRef is the Secret key holding the connection string
	// (postgres://user:password@host:5432/db?sslmode=verify-full).
	// +required
	DSNSecretRef SecretKeyReference `json:"dsnSecretRef"`
}

// SigningKeyPolicy configures ID token signing keys.
type SigningKeyPolicy struct {
	// algorithm signs ID tokens (of clients that pick no idTokenSigningAlgorithm), JWT
	// access tokens and logout tokens: RS256 or ES256. Defaults to RS256. The keys Secret
	// holds keys of both algorithms, rotated together, and the JWKS publishes both, so a
	// change takes effect at once.
	// +optional
	// +kubebuilder:default=RS256
	// +kubebuilder:validation:Enum=RS256;ES256
	Algorithm string `json:"algorithm,omitempty"`
	// rotationInterval is how often the next key is promoted to current. The next key is
	// published in the JWKS a full interval before it signs anything, and the previous key
	// stays published for another interval. Defaults to 720h. To rotate now, set the
	// annotation sso.hallpass.dev/rotate-signing-keys to a new value; for a compromised key,
	// sso.hallpass.dev/revoke-signing-keys (see docs/adr/0010). At least 1h, at most 8760h.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || (duration(self) >= duration('1h') && duration(self) <= duration('8760h'))",message="spec.signingKeys.rotationInterval must be between 1h and 8760h"
	RotationInterval Duration `json:"rotationInterval,omitempty"`
}

// NamespaceSelection selects namespaces by name or by label. A namespace is selected when
// it is listed in names or matches selector. An empty selector ({}) selects every namespace.
type NamespaceSelection struct {
	// names of namespaces.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.allowedClientNamespaces.names must be namespace names: DNS labels"
	Names []string `json:"names,omitempty"`
	// selector matches namespace labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// MFAPolicy says who is asked for a second factor at sign-in.
// +kubebuilder:validation:Enum=Off;Optional;Required
type MFAPolicy string

const (
	MFAOff      MFAPolicy = "Off"
	MFAOptional MFAPolicy = "Optional"
	MFARequired MFAPolicy = "Required"
)

// FactorKind is a kind of second factor.
// +kubebuilder:validation:Enum=TOTP;WebAuthn
type FactorKind string

const (
	FactorTOTP     FactorKind = "TOTP"
	FactorWebAuthn FactorKind = "WebAuthn"
)

// MFA is the second-factor policy of a server.
type MFA struct {
	// policy says who is asked for a second factor at sign-in. Off: only users of a client
	// with requireMFA, or of a request whose acr_values ask for
	// urn:hallpass:acr:mfa. Optional: those, and every user who has enrolled a factor.
	// Required: every user; a user without a factor enrols one (an authenticator app or a
	// passkey) right after the password, or after enrolmentGrace. Defaults to Off.
	// +optional
	// +kubebuilder:default=Off
	Policy MFAPolicy `json:"policy,omitempty"`

	// factors are the kinds of factor users may enrol and use (TOTP: authenticator apps,
	// RFC 6238; WebAuthn: passkeys and security keys, which also sign in without a
	// username or password on a Database connection). Recovery codes come with every factor. Defaults to every kind.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	Factors []FactorKind `json:"factors,omitempty"`

	// enrolmentGrace is how long, under policy Required, a user without a factor may still
	// sign in without one, counted from the first sign-in that asked the user to enrol: until
	// it ends, the enrolment page offers "Not now"; after it, enrolment completes the sign-in.
	// It does not soften a client's requireMFA or a request's acr_values. At most 2160h
	// (90 days). Defaults to none: enrolment at the first sign-in.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}(ms|s|m|h))+$') || duration(self) <= duration('2160h')",message="spec.mfa.enrolmentGrace must be at most 2160h (90 days)"
	EnrolmentGrace Duration `json:"enrolmentGrace,omitempty"`
}

// NamespaceBudgets are the per-namespace limits of a server's clients.
type NamespaceBudgets struct {
	// clientsPerNamespace is how many SSOClients of one namespace the server serves. At
	// least 1, at most 10000. Defaults to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	ClientsPerNamespace int32 `json:"clientsPerNamespace,omitempty"`
	// configBytesPerNamespace is how many bytes of the server's config the SSOClients of one
	// namespace may take together, counted as each client's rendered entry. A typical client
	// takes 300 to 500 bytes; one with every list at its bound about 150 KiB. At least 4096,
	// at most 8388608 (8 MiB). Defaults to 131072 (128 KiB).
	// +optional
	// +kubebuilder:default=131072
	// +kubebuilder:validation:Minimum=4096
	// +kubebuilder:validation:Maximum=8388608
	ConfigBytesPerNamespace int32 `json:"configBytesPerNamespace,omitempty"`
}

// EmailSecurity is how the connection to the SMTP server is protected.
// +kubebuilder:validation:Enum=STARTTLS;TLS;None
type EmailSecurity string

const (
	// EmailSTARTTLS upgrades a plain connection (usually port 587) with STARTTLS, and fails
	// when the server does not offer it.
	EmailSTARTTLS EmailSecurity = "STARTTLS"
	// EmailTLS speaks TLS from the first byte (implicit TLS, usually port 465).
	EmailTLS EmailSecurity = "TLS"
	// EmailNone sends in clear text: only to a loopback host (a relay in the same pod or on
	// the same machine in development), since reset links are credentials.
	EmailNone EmailSecurity = "None"
)

// Email is the SMTP server that delivers the server's mail.
// +kubebuilder:validation:XValidation:rule="!has(self.security) || self.security != 'None' || self.host == 'localhost' || (isIP(self.host) && ip(self.host).isLoopback())",message="spec.email.security None is only allowed for a loopback host (localhost, 127.0.0.0/8 or ::1): reset links are credentials"
// +kubebuilder:validation:XValidation:rule="has(self.username) == has(self.passwordSecretRef)",message="spec.email.username and spec.email.passwordSecretRef must be set together"
// +kubebuilder:validation:XValidation:rule="!has(self.rootCARef) || !has(self.security) || self.security != 'None'",message="spec.email.rootCARef needs security STARTTLS or TLS"
type Email struct {
	// host name or IP address of the SMTP server. The server's TLS certificate must be
	// valid for it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$`
	Host string `json:"host"`
	// port of the SMTP server. Defaults to 587 (submission with STARTTLS).
	// +optional
	// +kubebuilder:default=587
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// security of the connection: STARTTLS (default), TLS (implicit TLS, usually port 465)
	// or None, which is only allowed for a loopback host.
	// +optional
	// +kubebuilder:default=STARTTLS
	Security EmailSecurity `json:"security,omitempty"`
	// from is the sender address of every message, such as no-reply@example.com.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@ <>]+@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$`
	From string `json:"from"`
	// username for SMTP authentication (PLAIN, only over TLS or to a loopback host). When
	// unset, the server sends without authenticating.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Username string `json:"username,omitempty"`
	// passwordSecretRef is the Secret key holding the SMTP password of username.
	// +optional
	PasswordSecretRef *SecretKeyReference `json:"passwordSecretRef,omitempty"`
	// rootCARef is a Secret key holding PEM CA certificates to trust for the SMTP server's
	// certificate, in addition to the system's (a relay with a certificate of a private CA).
	// Only with security STARTTLS or TLS.
	// +optional
	RootCARef *SecretKeyReference `json:"rootCARef,omitempty"`
}

// Branding customises the login page.
type Branding struct {
	// title shown on the login page. Defaults to "Sign in".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Title string `json:"title,omitempty"`
	// logoURL is an https URL of a logo image.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && self.startsWith('https://') && url(self).getHostname() != ''",message="spec.branding.logoURL must be an https URL with a host"
	LogoURL string `json:"logoURL,omitempty"`
	// primaryColor of buttons and links, as #rrggbb.
	// +optional
	// +kubebuilder:validation:Pattern=`^#[0-9a-fA-F]{6}$`
	PrimaryColor string `json:"primaryColor,omitempty"`
	// backgroundColor of the page, as #rrggbb.
	// +optional
	// +kubebuilder:validation:Pattern=`^#[0-9a-fA-F]{6}$`
	BackgroundColor string `json:"backgroundColor,omitempty"`
}

// SSOServerStatus is the observed state of an SSOServer.
type SSOServerStatus struct {
	// conditions: Ready (the server serves the latest config), ConfigRendered, KeysReady,
	// Available (at least one server pod is ready) and ConfigApplied (every ready pod
	// reports serving the config of configHash).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// issuer the server serves.
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// discoveryURL is the server's OpenID Connect discovery document.
	// +optional
	DiscoveryURL string `json:"discoveryURL,omitempty"`
	// readyReplicas is the number of ready server pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// configHash is the SHA-256 of the rendered server config.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`
	// appliedReplicas is the number of server pods that report, within the last 3 minutes,
	// that they serve the config of configHash. Pods report into the ConfigMap
	// <server>-status after each reload and every minute.
	// +optional
	AppliedReplicas int32 `json:"appliedReplicas,omitempty"`
	// appliedConfigHash is the config hash that every ready server pod reports serving, or
	// empty while the pods disagree or have not all reported. It equals configHash once a
	// config change has reached every ready pod.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AppliedConfigHash string `json:"appliedConfigHash,omitempty"`
	// configRevision numbers the config of configHash: it grows with every config that
	// differs from the one before (it is the render's time in milliseconds, or one more than
	// the last revision if the clock is behind), and is recorded on the config Secret.
	// +optional
	ConfigRevision int64 `json:"configRevision,omitempty"`
	// appliedConfigRevision is the highest configRevision every ready server pod has
	// reported serving. An SSOClient is Served, and so Ready, once the config revision that
	// first served its current generation is at most this.
	// +optional
	AppliedConfigRevision int64 `json:"appliedConfigRevision,omitempty"`
	// clients is the number of SSOClients the config serves.
	// +optional
	Clients int32 `json:"clients,omitempty"`
	// connections is the number of IdentityConnections the config serves.
	// +optional
	Connections int32 `json:"connections,omitempty"`
	// signingKeys describes the keys in the signing-keys Secret, which is the durable record
	// of rotations; this is a copy for kubectl.
	// +optional
	SigningKeys SigningKeysStatus `json:"signingKeys,omitzero"`
}

// SigningKeysStatus names the published signing keys and the last rotation.
type SigningKeysStatus struct {
	// currentKeyID is the `kid` of the key that signs.
	// +optional
	CurrentKeyID string `json:"currentKeyID,omitempty"`
	// nextKeyID is the `kid` of the key published to sign after the next rotation.
	// +optional
	NextKeyID string `json:"nextKeyID,omitempty"`
	// previousKeyID is the `kid` of the key that signed before the last rotation, still
	// published so that the tokens it signed verify until they expire.
	// +optional
	PreviousKeyID string `json:"previousKeyID,omitempty"`
	// rotatedAt is when the keys last rotated (or were generated).
	// +optional
	RotatedAt *metav1.Time `json:"rotatedAt,omitempty"`
	// rotationRequest is the last value of the sso.hallpass.dev/rotate-signing-keys
	// annotation the operator acted on.
	// +optional
	RotationRequest string `json:"rotationRequest,omitempty"`
	// revocationRequest is the last value of the sso.hallpass.dev/revoke-signing-keys
	// annotation the operator acted on.
	// +optional
	RevocationRequest string `json:"revocationRequest,omitempty"`
}

// SSOServer condition types.
const (
	// SSOServerConfigRendered is True when the config Secret holds the current resources.
	SSOServerConfigRendered = "ConfigRendered"
	// SSOServerKeysReady is True when the signing-keys Secret is valid.
	SSOServerKeysReady = "KeysReady"
	// SSOServerAvailable is True when at least one server pod is ready.
	SSOServerAvailable = "Available"
	// SSOServerConfigApplied is True when every ready server pod reports serving the config
	// of status.configHash. It is not part of Ready: see docs/adr/0011.
	SSOServerConfigApplied = "ConfigApplied"

	// SSOServerObjectsOwned is True when every object the server needs (ServiceAccount,
	// Role, RoleBinding, Secrets, ConfigMap, PersistentVolumeClaim, Deployment, Service) is
	// absent or controlled by this SSOServer. The operator never takes over another's.
	SSOServerObjectsOwned = "ObjectsOwned"
	// SSOServerImageAllowed is True when the server's image is in a repository the operator
	// is allowed to run (its --allowed-server-images).
	SSOServerImageAllowed = "ImageAllowed"

	// ReasonOverBudget: a client was left out of the config because its namespace is over
	// spec.budgets, or the config is at its size limit.
	ReasonOverBudget = "OverBudget"

	// ReasonObjectConflict: an object with one of the server's names belongs to something else.
	ReasonObjectConflict = "ObjectConflict"
	// ReasonImageNotAllowed: spec.image is outside the operator's allowed server images.
	ReasonImageNotAllowed = "ImageNotAllowed"

	// ReasonConfigApplied: every ready pod serves the current config.
	ReasonConfigApplied = "Applied"
	// ReasonConfigPending: some ready pod has not reported the current config (yet).
	ReasonConfigPending = "Pending"
	// ReasonNoReadyReplicas: no server pod is ready, so none can serve a config.
	ReasonNoReadyReplicas = "NoReadyReplicas"

	// ReasonKeysRotated: the next signing key became current.
	ReasonKeysRotated = "KeysRotated"
	// ReasonKeysRevoked: the current and previous signing keys were removed at once.
	ReasonKeysRevoked = "KeysRevoked"
	// ReasonRotationWaiting: a requested rotation waits until it is safe for relying parties.
	ReasonRotationWaiting = "RotationWaiting"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ssos,categories=hallpass
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuer`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Applied",type=integer,JSONPath=`.status.appliedReplicas`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.clients`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 50 characters: it names the server's Service, Deployment and Secrets"

// SSOServer is one central SSO service: an OpenID Connect provider with its session policy,
// storage, signing keys and login page. IdentityConnections and SSOClients attach to it.
type SSOServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec SSOServerSpec `json:"spec"`
	// status is the observed state.
	// +optional
	Status SSOServerStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// SSOServerList is a list of SSOServers.
type SSOServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SSOServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SSOServer{}, &SSOServerList{})
}

// SecretReferences returns every Secret key the server reads: the PostgreSQL DSN, the SMTP
// password and the SMTP server's CA.
func (s *SSOServer) SecretReferences() []SecretKeyReference {
	var refs []SecretKeyReference
	if s.Spec.Storage.Postgres != nil {
		refs = append(refs, s.Spec.Storage.Postgres.DSNSecretRef)
	}
	if e := s.Spec.Email; e != nil {
		for _, ref := range []*SecretKeyReference{e.PasswordSecretRef, e.RootCARef} {
			if ref != nil {
				refs = append(refs, *ref)
			}
		}
	}
	return refs
}
