package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// verdict is what a render did with a client: served it at a generation, first in a config
// revision, or left it out and why.
type verdict struct {
	// generation is the client's generation the config serves; revision is the config
	// revision that first served that generation: the client is Served once the pods have
	// applied that revision or a later one.
	generation, revision          int64
	leftOutReason, leftOutMessage string
}

func (v verdict) served() bool { return v.leftOutReason == "" }

// clientVerdict is a render's verdict on one client, with the client it is for.
type clientVerdict struct {
	client types.NamespacedName
	verdict
}

// verdicts holds the verdicts of each server's last render on its clients, by SSOClient UID.
// The SSOServer controller publishes them after each render; the SSOClient controller reads
// them. They live in the operator's memory: written into each client's record they cost the
// API server a write per new client (docs/adr/0030). A restarted operator has none until
// each server's first render, which every server gets when its controller starts; until
// then clients keep their Served condition.
type verdicts struct {
	mu      sync.Mutex
	servers map[types.NamespacedName]map[types.UID]clientVerdict
	// queue is the SSOClient controller's, once its source has started.
	queue queue
}

func newVerdicts() *verdicts {
	return &verdicts{servers: map[types.NamespacedName]map[types.UID]clientVerdict{}}
}

// source tells the SSOClient controller of changed verdicts, verdictDelay after a render.
func (v *verdicts) source() source.Source {
	return source.Func(func(_ context.Context, q queue) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.queue = q
		return nil
	})
}

// publish replaces the verdicts on server's clients with those of a render and queues every
// client whose verdict changed (every one, on the server's first render since the operator
// started). A generation served since an earlier revision keeps that revision: it is in
// every config since, so the pods' applying any of them serves it.
func (v *verdicts) publish(server types.NamespacedName, next map[types.UID]clientVerdict) {
	v.mu.Lock()
	defer v.mu.Unlock()
	previous := v.servers[server]
	for uid, cv := range next {
		had, ok := previous[uid]
		if ok && had.served() && cv.served() && had.generation == cv.generation {
			cv.revision = had.revision
			next[uid] = cv
		}
		if (!ok || had != cv) && v.queue != nil {
			v.queue.AddAfter(reconcile.Request{NamespacedName: cv.client}, verdictDelay)
		}
	}
	v.servers[server] = next
}

// forget drops the verdicts of a server that is gone.
func (v *verdicts) forget(server types.NamespacedName) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.servers, server)
}

// of returns the last render's verdict on the client with uid, whether there was one, and
// whether the server has rendered since the operator started.
func (v *verdicts) of(server types.NamespacedName, uid types.UID) (verdict verdict, found, rendered bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	clients, rendered := v.servers[server]
	cv, found := clients[uid]
	return cv.verdict, found, rendered
}
