package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// An SSOServer creates only what is absent or already its own. Server-side apply with force
// would otherwise take over any object of the same name: a ServiceAccount that other pods
// run as, a Secret its pods would then be granted read on, and garbage-collect them with the
// SSOServer. An object of one of the server's names that the server does not control is a
// conflict, reported on the server, and left untouched.

// claim reports whether obj (a typed object with name and namespace set) may be written by
// the server: it does not exist, or its controller is this SSOServer. On a conflict it
// records the object in the scope and returns false.
func (r *SSOServerReconciler) claim(ctx context.Context, s *serverScope, obj client.Object) (bool, error) {
	key := client.ObjectKeyFromObject(obj)
	gvk, err := apiutil.GVKForObject(obj, r.Scheme())
	if err != nil {
		return false, fmt.Errorf("kind of %T: %w", obj, err)
	}
	// The cache holds only objects labelled as Hallpass's, and no ConfigMaps; what it does
	// not hold is looked up on the API server.
	if _, isConfigMap := obj.(*corev1.ConfigMap); isConfigMap {
		err = r.APIReader.Get(ctx, key, obj)
	} else if err = r.Get(ctx, key, obj); client.IgnoreNotFound(err) == nil && err != nil {
		err = r.APIReader.Get(ctx, key, obj)
	}
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("get %s %s: %w", gvk.Kind, key.Name, err)
	}
	if owner := metav1.GetControllerOf(obj); owner != nil && owner.UID == s.server.UID {
		return true, nil
	}
	s.conflicts = append(s.conflicts, fmt.Sprintf("%s %s", gvk.Kind, key.Name))
	return false, nil
}

// reportConflicts sets ObjectsOwned from the conflicts found while reconciling.
func reportConflicts(s *serverScope) {
	if len(s.conflicts) == 0 {
		s.conds.set(hallpassv1.SSOServerObjectsOwned, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
		return
	}
	s.conds.set(hallpassv1.SSOServerObjectsOwned, metav1.ConditionFalse, hallpassv1.ReasonObjectConflict, fmt.Sprintf(
		"%s already exist and are not controlled by this SSOServer; the operator leaves them untouched. Delete or rename them, or give the SSOServer another name",
		strings.Join(s.conflicts, ", ")))
}

// imageRepository is the repository of an image reference: without its tag and digest.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// imageAllowed reports whether image is in one of the allowed repositories.
func imageAllowed(image string, allowed []string) bool {
	repo := imageRepository(image)
	for _, a := range allowed {
		if repo == imageRepository(a) {
			return true
		}
	}
	return false
}
