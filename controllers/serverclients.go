package controllers

import (
	"context"
	"errors"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// serverClients reads the SSOClients of one server straight from the cache's own index.
// A List copies every item into its slice: at ten thousand clients, the lists behind the
// connections' and APIs' counts, the render and the mappers were a quarter of the
// operator's CPU. The clients returned are the cache's: read them, never change them.
type serverClients struct{ indexer toolscache.Indexer }

// serverClientsIndex indexes the cached SSOClients by "namespace/name" of their server.
const serverClientsIndex = "hallpass.serverClients"

// newServerClients adds the index to the cache's SSOClient informer; it must be called
// before the cache starts.
func newServerClients(ctx context.Context, c cache.Cache) (serverClients, error) {
	informer, err := c.GetInformer(ctx, &hallpassv1.SSOClient{})
	if err != nil {
		return serverClients{}, fmt.Errorf("get the SSOClient informer: %w", err)
	}
	err = informer.AddIndexers(toolscache.Indexers{serverClientsIndex: func(obj any) ([]string, error) {
		if sc, ok := obj.(*hallpassv1.SSOClient); ok {
			return []string{key(sc.ServerKey())}, nil
		}
		return nil, nil
	}})
	if err != nil {
		return serverClients{}, fmt.Errorf("index SSOClients by server: %w", err)
	}
	indexed, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return serverClients{}, errors.New("the SSOClient informer has no indexer")
	}
	return serverClients{indexed.GetIndexer()}, nil
}

// of returns the cached SSOClients of server namespace/name, in no particular order.
func (s serverClients) of(namespace, name string) ([]*hallpassv1.SSOClient, error) {
	objs, err := s.indexer.ByIndex(serverClientsIndex, key(namespace, name))
	if err != nil {
		return nil, fmt.Errorf("list SSOClients of SSOServer %s/%s: %w", namespace, name, err)
	}
	out := make([]*hallpassv1.SSOClient, 0, len(objs))
	for _, o := range objs {
		if sc, ok := o.(*hallpassv1.SSOClient); ok {
			out = append(out, sc)
		}
	}
	return out, nil
}
