package controllers

import (
	"bytes"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

// verdictAnnotations are the annotations of a client record that the SSOServer controller
// of operators before ADR 0030 wrote under its own field manager; the SSOClient
// controller's apply leaves them alone.
var verdictAnnotations = []string{annotationServedGeneration, annotationServedRevision, annotationLeftOutReason, annotationLeftOutMessage}

// appliedAlready reports whether applying desired to existing (as read from the cache)
// would change nothing: same data, labels, owner references and type, and the same
// annotations apart from those of another field manager (ignored). A write that changes
// nothing still costs the API server a request, and at ten thousand clients these add up.
func appliedAlready(existing *corev1.Secret, desired *corev1ac.SecretApplyConfiguration, ignored ...string) bool {
	if existing == nil || existing.UID == "" {
		return false
	}
	if desired.Type != nil && existing.Type != *desired.Type {
		return false
	}
	if len(existing.Data) != len(desired.Data) {
		return false
	}
	for k, v := range desired.Data {
		if got, ok := existing.Data[k]; !ok || !bytes.Equal(got, v) {
			return false
		}
	}
	annotations := maps.Clone(existing.Annotations)
	for _, k := range ignored {
		delete(annotations, k)
	}
	if !maps.Equal(annotations, desired.Annotations) && len(annotations)+len(desired.Annotations) > 0 {
		return false
	}
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	return sameOwners(existing.OwnerReferences, desired.OwnerReferences)
}

func sameOwners(existing []metav1.OwnerReference, desired []metav1ac.OwnerReferenceApplyConfiguration) bool {
	if len(existing) != len(desired) {
		return false
	}
	for i, d := range desired {
		e := existing[i]
		if d.UID == nil || e.UID != *d.UID || d.Controller == nil || e.Controller == nil || *e.Controller != *d.Controller {
			return false
		}
	}
	return true
}
