package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/render"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// resolveReferences reads the referenced keys of Secrets and ConfigMaps in namespace into
// values. A missing object or key is simply absent, for render to report by name. Reads go
// to the API server, because the operator caches only the objects it manages.
func resolveReferences(ctx context.Context, r client.Reader, namespace string, secrets []hallpassv1.SecretKeyReference, configMaps []hallpassv1.ConfigMapKeyReference, values render.Values) error {
	fetched := map[render.Ref]map[string]string{}
	read := func(kind, name string) (map[string]string, error) {
		objKey := render.Ref{Kind: kind, Name: name}
		if data, seen := fetched[objKey]; seen {
			return data, nil
		}
		var data map[string]string
		var err error
		switch kind {
		case render.KindSecret:
			var s corev1.Secret
			if err = r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err == nil {
				data = map[string]string{}
				for k, v := range s.Data {
					data[k] = string(v)
				}
			}
		case render.KindConfigMap:
			var cm corev1.ConfigMap
			if err = r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cm); err == nil {
				data = cm.Data
			}
		}
		if client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
		}
		fetched[objKey] = data
		return data, nil
	}
	add := func(kind, name, key string) error {
		data, err := read(kind, name)
		if err != nil {
			return err
		}
		if v, ok := data[key]; ok {
			values[render.Ref{Kind: kind, Namespace: namespace, Name: name, Key: key}] = v
		}
		return nil
	}
	for _, ref := range secrets {
		if err := add(render.KindSecret, ref.Name, ref.Key); err != nil {
			return err
		}
	}
	for _, ref := range configMaps {
		if err := add(render.KindConfigMap, ref.Name, ref.Key); err != nil {
			return err
		}
	}
	return nil
}

// resolveConnection reads everything a connection references.
func resolveConnection(ctx context.Context, r client.Reader, c *hallpassv1.IdentityConnection, values render.Values) error {
	return resolveReferences(ctx, r, c.Namespace, c.SecretReferences(), c.ConfigMapReferences(), values)
}
