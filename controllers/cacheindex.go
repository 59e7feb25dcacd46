package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// cacheIndex reads objects straight from an index of the cache's own informer. A List
// copies every item into its slice: at ten thousand clients, the lists behind the
// connections' and APIs' counts, the render and the mappers were a quarter of the
// operator's CPU. And a controller-runtime field index holds each value twice (within its
// namespace and across all): for the client IDs of ten thousand clients and their records,
// forty thousand sets of one. The objects returned are the cache's: read them, never change
// them.
type cacheIndex[T client.Object] struct {
	indexer toolscache.Indexer
	name    string
}

// newCacheIndex adds the index name of values to the cache's informer of obj's kind; it
// must be called before the cache starts.
func newCacheIndex[T client.Object](ctx context.Context, c cache.Cache, obj T, name string, values func(T) []string) (cacheIndex[T], error) {
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return cacheIndex[T]{}, fmt.Errorf("get the %T informer: %w", obj, err)
	}
	err = informer.AddIndexers(toolscache.Indexers{name: func(o any) ([]string, error) {
		if t, ok := o.(T); ok {
			return values(t), nil
		}
		return nil, nil
	}})
	if err != nil {
		return cacheIndex[T]{}, fmt.Errorf("index %T by %s: %w", obj, name, err)
	}
	indexed, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return cacheIndex[T]{}, fmt.Errorf("the %T informer has no indexer", obj)
	}
	return cacheIndex[T]{indexed.GetIndexer(), name}, nil
}

// get returns the cached objects the index holds under value, in no particular order.
func (i cacheIndex[T]) get(value string) ([]T, error) {
	objs, err := i.indexer.ByIndex(i.name, value)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", i.name, err)
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// serverClients are the cached SSOClients by server.
type serverClients struct {
	cacheIndex[*hallpassv1.SSOClient]
}

func newServerClients(ctx context.Context, c cache.Cache) (serverClients, error) {
	i, err := newCacheIndex(ctx, c, &hallpassv1.SSOClient{}, "hallpass.serverClients", func(sc *hallpassv1.SSOClient) []string {
		return []string{key(sc.ServerKey())}
	})
	return serverClients{i}, err
}

// of returns the cached SSOClients of server namespace/name.
func (s serverClients) of(namespace, name string) ([]*hallpassv1.SSOClient, error) {
	clients, err := s.get(key(namespace, name))
	if err != nil {
		return nil, fmt.Errorf("list SSOClients of SSOServer %s/%s: %w", namespace, name, err)
	}
	return clients, nil
}

// recordsByClientID are the cached client records by the server and client ID they hold.
type recordsByClientID struct{ cacheIndex[*corev1.Secret] }

func newRecordsByClientID(ctx context.Context, c cache.Cache) (recordsByClientID, error) {
	i, err := newCacheIndex(ctx, c, &corev1.Secret{}, "hallpass.recordsByClientID", func(s *corev1.Secret) []string {
		if s.Labels[labelRecord] != recordClient || len(s.Data[recordClientIDKey]) == 0 {
			return nil
		}
		return []string{recordIndexKey(s.Namespace, s.Labels[hallpassv1.LabelServer], string(s.Data[recordClientIDKey]))}
	})
	return recordsByClientID{i}, err
}

// holding returns the cached records of server namespace/name that hold clientID.
func (r recordsByClientID) holding(namespace, server, clientID string) ([]*corev1.Secret, error) {
	records, err := r.get(recordIndexKey(namespace, server, clientID))
	if err != nil {
		return nil, fmt.Errorf("list client records with the same client ID: %w", err)
	}
	return records, nil
}

func recordIndexKey(namespace, server, clientID string) string {
	return namespace + "/" + server + "/" + clientID
}
