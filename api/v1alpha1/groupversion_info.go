// Package v1alpha1 contains the Hallpass API: SSOServer, IdentityConnection and SSOClient.
// +kubebuilder:object:generate=true
// +groupName=sso.hallpass.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Hallpass API.
	GroupVersion = schema.GroupVersion{Group: "sso.hallpass.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Hallpass types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Hallpass types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
