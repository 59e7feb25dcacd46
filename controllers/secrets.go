package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/render"
)

// resolveSecrets reads the referenced keys of Secrets in namespace into values. A missing
// Secret or key is simply absent, for render to report by name. Reads go to the API server,
// because the operator caches only the Secrets it manages.
func resolveSecrets(ctx context.Context, r client.Reader, namespace string, refs []hallpassv1.SecretKeyReference, values render.SecretValues) error {
	fetched := map[string]*corev1.Secret{}
	for _, ref := range refs {
		secret, seen := fetched[ref.Name]
		if !seen {
			secret = &corev1.Secret{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, secret); err != nil {
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("get Secret %s/%s: %w", namespace, ref.Name, err)
				}
				secret = nil
			}
			fetched[ref.Name] = secret
		}
		if secret == nil {
			continue
		}
		if v, ok := secret.Data[ref.Key]; ok {
			values[render.SecretKey{Namespace: namespace, Name: ref.Name, Key: ref.Key}] = string(v)
		}
	}
	return nil
}
