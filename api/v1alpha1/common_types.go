package v1alpha1

// Duration is a Go duration string made of hours, minutes, seconds and milliseconds, such as
// "72h", "1h30m" or "45s".
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}(ms|s|m|h))+$')",message="must be a duration such as 72h, 90m or 30s"
type Duration string

// SecretKeyReference names one key of a Secret in the same namespace as the object that holds
// the reference.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
	// key within the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Condition types shared by the Hallpass kinds.
const (
	// ConditionReady is True when the object is fully served by its SSO server.
	ConditionReady = "Ready"
)

// Condition reasons shared by the Hallpass kinds.
const (
	// ReasonReconciled means everything the condition covers is in place.
	ReasonReconciled = "Reconciled"
	// ReasonServerNotFound means serverRef names no SSOServer.
	ReasonServerNotFound = "ServerNotFound"
	// ReasonSecretNotFound means a referenced Secret or one of its keys does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSecret means a referenced Secret exists but its content cannot be used.
	ReasonInvalidSecret = "InvalidSecret"
)

// Well-known labels and annotations written by the operator.
const (
	// LabelManagedBy marks objects the operator owns; its cache holds only such Secrets.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "hallpass"
	// LabelServer names the SSOServer an object belongs to.
	LabelServer = "sso.hallpass.dev/server"
	// LabelClient names the SSOClient whose credentials a Secret holds.
	LabelClient = "sso.hallpass.dev/client"
)

// Annotations users set to ask for a rotation now. Each acts once per distinct value: set
// it to something new (a timestamp, a ticket number) to ask again, as with
// `kubectl rollout restart`. The operator records the value it acted on next to the keys or
// the secret it rotated, so a value is never acted on twice, even after a restart or a
// status restored from a backup.
const (
	// AnnotationRotateSigningKeys on an SSOServer rotates its signing keys once: the next
	// key, already published in the JWKS, becomes current, the current one stays published
	// as previous, and a new next key is generated. The operator waits until the next key
	// has been published long enough for relying parties to have it and the previous key
	// has no unexpired tokens left; status.signingKeys and the KeysReady condition say so.
	AnnotationRotateSigningKeys = "sso.hallpass.dev/rotate-signing-keys"
	// AnnotationRevokeSigningKeys on an SSOServer is the emergency rotation for a
	// compromised key: at once, the next key becomes current and the current and previous
	// keys are removed from the JWKS. Every token they signed stops verifying.
	AnnotationRevokeSigningKeys = "sso.hallpass.dev/revoke-signing-keys"
	// AnnotationRotateClientSecret on an SSOClient replaces its generated client secret;
	// the server accepts the previous one too for spec.credentials.rotation.overlap.
	AnnotationRotateClientSecret = "sso.hallpass.dev/rotate-client-secret"
	// AnnotationRevokeClientSecret on an SSOClient ends any overlap at once: the server
	// stops accepting the previous client secret, and a generated secret is also replaced
	// without overlap. It is the response to a leaked client secret.
	AnnotationRevokeClientSecret = "sso.hallpass.dev/revoke-client-secret"
)
