package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// Field indexes. Values are "namespace/name" so one index serves lookups across namespaces.
const (
	// indexServer indexes IdentityConnections and SSOAPIs by their server (SSOClients and
	// client records have indexes of their own, in cacheindex.go).
	indexServer = "hallpass.server"
	// indexSecretRefs indexes SSOServers, SSOClients and IdentityConnections by the Secrets
	// they reference, so that a change to one re-renders only what depends on it.
	indexSecretRefs = "hallpass.secretRefs"
	// indexConfigMapRefs indexes IdentityConnections by the ConfigMaps they reference.
	indexConfigMapRefs = "hallpass.configMapRefs"
)

func key(namespace, name string) string { return namespace + "/" + name }

// setupIndexes registers every field index the controllers use.
func setupIndexes(ctx context.Context, mgr manager.Manager) error {
	indexer := mgr.GetFieldIndexer()
	indexes := []struct {
		obj     client.Object
		field   string
		extract client.IndexerFunc
	}{
		{&hallpassv1.IdentityConnection{}, indexServer, func(o client.Object) []string {
			c := o.(*hallpassv1.IdentityConnection)
			return []string{key(c.Namespace, c.Spec.ServerRef.Name)}
		}},
		{&hallpassv1.SSOAPI{}, indexServer, func(o client.Object) []string {
			a := o.(*hallpassv1.SSOAPI)
			return []string{key(a.Namespace, a.Spec.ServerRef.Name)}
		}},
		{&hallpassv1.IdentityConnection{}, indexSecretRefs, func(o client.Object) []string {
			c := o.(*hallpassv1.IdentityConnection)
			var keys []string
			for _, ref := range c.SecretReferences() {
				keys = append(keys, key(c.Namespace, ref.Name))
			}
			return keys
		}},
		{&hallpassv1.IdentityConnection{}, indexConfigMapRefs, func(o client.Object) []string {
			c := o.(*hallpassv1.IdentityConnection)
			var keys []string
			for _, ref := range c.ConfigMapReferences() {
				keys = append(keys, key(c.Namespace, ref.Name))
			}
			return keys
		}},
		{&hallpassv1.SSOServer{}, indexSecretRefs, func(o client.Object) []string {
			s := o.(*hallpassv1.SSOServer)
			var keys []string
			for _, ref := range s.SecretReferences() {
				keys = append(keys, key(s.Namespace, ref.Name))
			}
			return keys
		}},
		{&hallpassv1.SSOClient{}, indexSecretRefs, func(o client.Object) []string {
			c := o.(*hallpassv1.SSOClient)
			if c.Spec.Credentials == nil || c.Spec.Credentials.ClientSecretRef == nil {
				return nil
			}
			return []string{key(c.Namespace, c.Spec.Credentials.ClientSecretRef.Name)}
		}},
	}
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.extract); err != nil {
			return fmt.Errorf("index %T by %s: %w", ix.obj, ix.field, err)
		}
	}
	return nil
}
