package controllers

import (
	"context"
	"maps"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// How the controllers take bursts (docs/adr/0021).
const (
	// renderCoalesceDelay is how long a change of a client or client record waits before
	// its server renders, so that a burst of changes (a GitOps sync of a thousand clients)
	// is rendered a few times instead of once per change. The work queue holds a key once,
	// so every change within the delay, or during the render, joins the next render.
	renderCoalesceDelay = 500 * time.Millisecond
	// countCoalesceDelay is how long a change of a client waits before the connections and
	// APIs of its server count their clients again. The counts are reports, and each one
	// written is an update of a custom resource, which costs the API server as much as a
	// client's own status.
	countCoalesceDelay = 5 * time.Second
	// verdictDelay is how long a render's verdict on a client (docs/adr/0030), or a change
	// of its record, waits before the client is reconciled. The server's pods apply a config
	// within about a second of its render, and the revision they applied reaches the
	// client at once (clientsOfServerHandler): a verdict that waits this long finds the
	// client served, and the client's status is written once, not first as
	// WaitingForServer and then again as served.
	verdictDelay = 2 * time.Second
	// clientReconcilers is how many SSOClients are reconciled at once. Each reconcile
	// waits mostly on the API server; chosen by measurement (docs/benchmarks.md).
	clientReconcilers = 8
)

// coalesce delays the requests of h by renderCoalesceDelay.
func coalesce[T client.Object](h handler.TypedEventHandler[T, reconcile.Request]) handler.TypedEventHandler[T, reconcile.Request] {
	return delay(renderCoalesceDelay, h)
}

// delay delays the requests of h by d.
func delay[T client.Object](d time.Duration, h handler.TypedEventHandler[T, reconcile.Request]) handler.TypedEventHandler[T, reconcile.Request] {
	return delaying[T]{h, d}
}

type delaying[T client.Object] struct {
	handler.TypedEventHandler[T, reconcile.Request]
	delay time.Duration
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// delayedQueue turns Add into AddAfter; a key already waiting keeps its earlier time.
type delayedQueue struct {
	queue
	delay time.Duration
}

func (q delayedQueue) Add(r reconcile.Request) { q.AddAfter(r, q.delay) }

func (c delaying[T]) Create(ctx context.Context, e event.TypedCreateEvent[T], q queue) {
	c.TypedEventHandler.Create(ctx, e, delayedQueue{q, c.delay})
}

func (c delaying[T]) Update(ctx context.Context, e event.TypedUpdateEvent[T], q queue) {
	c.TypedEventHandler.Update(ctx, e, delayedQueue{q, c.delay})
}

func (c delaying[T]) Delete(ctx context.Context, e event.TypedDeleteEvent[T], q queue) {
	c.TypedEventHandler.Delete(ctx, e, delayedQueue{q, c.delay})
}

func (c delaying[T]) Generic(ctx context.Context, e event.TypedGenericEvent[T], q queue) {
	c.TypedEventHandler.Generic(ctx, e, delayedQueue{q, c.delay})
}

// notOwnStatus passes the events of a controller's own kind that are news to it: a change
// of spec, annotations (requests) or labels. Its own status writes are not.
var notOwnStatus = predicate.Or[client.Object](
	predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{})

// countChanged passes the SSOClient events that can change what a connection or an API
// counts: a client created or deleted, its spec or labels changed, its client ID issued, or
// its Accepted condition changed. A client's other status (Served, Ready, its credentials)
// counts for neither.
type countChanged struct {
	predicate.Funcs // passes creations, deletions and generic events
}

func (countChanged) Update(e event.UpdateEvent) bool {
	before, ok1 := e.ObjectOld.(*hallpassv1.SSOClient)
	after, ok2 := e.ObjectNew.(*hallpassv1.SSOClient)
	if !ok1 || !ok2 || before.Generation != after.Generation || !maps.Equal(before.Labels, after.Labels) ||
		before.Status.ClientID != after.Status.ClientID || !before.DeletionTimestamp.Equal(after.DeletionTimestamp) {
		return true
	}
	accepted := func(c *hallpassv1.SSOClient) metav1.ConditionStatus {
		if cond := meta.FindStatusCondition(c.Status.Conditions, hallpassv1.SSOClientAccepted); cond != nil {
			return cond.Status
		}
		return metav1.ConditionUnknown
	}
	return accepted(before) != accepted(after)
}

// readinessChanged passes the creation and deletion of an object, and an update that changes
// its generation (spec) or the status of its Ready condition.
type readinessChanged struct {
	predicate.Funcs // passes creations, deletions and generic events
}

func (readinessChanged) Update(e event.UpdateEvent) bool {
	before, ok1 := e.ObjectOld.(*hallpassv1.IdentityConnection)
	after, ok2 := e.ObjectNew.(*hallpassv1.IdentityConnection)
	if !ok1 || !ok2 || before.Generation != after.Generation || !before.DeletionTimestamp.Equal(after.DeletionTimestamp) {
		return true
	}
	return meta.IsStatusConditionTrue(before.Status.Conditions, hallpassv1.ConditionReady) !=
		meta.IsStatusConditionTrue(after.Status.Conditions, hallpassv1.ConditionReady)
}

// clientsOfServerHandler maps an SSOServer event to the SSOClients that depend on it: all of
// them when the server's spec changes or it comes or goes; when only the config revision the
// pods applied moves on, those whose served revision it now covers and that are not yet
// Served. Status writes that change neither are no news to any client, which matters with
// ten thousand clients on one server.
type clientsOfServerHandler struct{ m mapper }

func (h clientsOfServerHandler) Create(ctx context.Context, e event.CreateEvent, q queue) {
	addAll(q, h.m.clientsOfServer(ctx, e.Object))
}

func (h clientsOfServerHandler) Delete(ctx context.Context, e event.DeleteEvent, q queue) {
	addAll(q, h.m.clientsOfServer(ctx, e.Object))
}

func (h clientsOfServerHandler) Generic(ctx context.Context, e event.GenericEvent, q queue) {
	addAll(q, h.m.clientsOfServer(ctx, e.Object))
}

func (h clientsOfServerHandler) Update(ctx context.Context, e event.UpdateEvent, q queue) {
	before, ok1 := e.ObjectOld.(*hallpassv1.SSOServer)
	after, ok2 := e.ObjectNew.(*hallpassv1.SSOServer)
	switch {
	case !ok1 || !ok2:
		return
	case before.Generation != after.Generation || !before.DeletionTimestamp.Equal(after.DeletionTimestamp) ||
		before.Status.Issuer != after.Status.Issuer:
		addAll(q, h.m.clientsOfServer(ctx, after))
	case before.Status.AppliedConfigRevision != after.Status.AppliedConfigRevision:
		addAll(q, h.m.clientsNowServed(after))
	}
}

func addAll(q queue, reqs []reconcile.Request) {
	for _, r := range reqs {
		q.Add(r)
	}
}

// clientsNowServed lists the clients of srv that are not Served at their generation and
// whose verdict says the config revision the pods applied serves them.
func (m mapper) clientsNowServed(srv *hallpassv1.SSOServer) []reconcile.Request {
	clients, err := m.clients.of(srv.Namespace, srv.Name)
	if err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, sc := range clients {
		if c := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.SSOClientServed); c != nil &&
			c.Status == "True" && c.ObservedGeneration == sc.Generation {
			continue
		}
		if v, found, _ := m.verdicts.of(client.ObjectKeyFromObject(srv), sc.UID); found && v.served() &&
			v.generation == sc.Generation && v.revision <= srv.Status.AppliedConfigRevision {
			reqs = append(reqs, requestFor(sc))
		}
	}
	return reqs
}
