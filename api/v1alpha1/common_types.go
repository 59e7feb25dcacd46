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
