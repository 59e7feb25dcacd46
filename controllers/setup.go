package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// Options configure the controllers.
type Options struct {
	// ServerImage is the default image of SSO server pods.
	ServerImage string
	// ServerLogLevel is the --log-level of SSO server pods (debug, info, warn, error).
	ServerLogLevel string
	// AllowedServerImages are the image repositories an SSOServer's spec.image may name
	// (a tag or digest in an entry is ignored). Defaults to the repository of ServerImage.
	AllowedServerImages []string
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Webhooks registers the admission webhooks with the manager's webhook server.
	Webhooks bool
	// ClientReconcilers is how many SSOClients are reconciled at once; clientReconcilers
	// when zero.
	ClientReconcilers int
}

// CacheOptions limits the manager's cache of the kinds the operator writes to the objects it
// manages, so its memory does not grow with every Secret and Deployment of the cluster.
// Secrets the resources reference are watched by metadata only and read on demand.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue})
	byObject := map[client.Object]cache.ByObject{}
	for _, obj := range []client.Object{
		&corev1.Secret{}, &corev1.Service{}, &corev1.ServiceAccount{}, &corev1.PersistentVolumeClaim{},
		&appsv1.Deployment{}, &rbacv1.Role{}, &rbacv1.RoleBinding{},
	} {
		byObject[obj] = cache.ByObject{Label: managed}
	}
	return cache.Options{ByObject: byObject, DefaultTransform: stripUnread}
}

// stripUnread drops from each object the caches receive what the operator never reads:
// managed fields, often the larger part of an object, and the copy of the whole object that
// client-side `kubectl apply` (and GitOps tools that use it) keeps in an annotation. That copy
// is as large as the spec, on every resource applied that way; on a Secret it holds the
// Secret's data, which the metadata cache exists not to hold. The operator writes these
// kinds back only by patches of what it changed, or by updates of Secrets it created, so the
// annotation is never written away.
func stripUnread(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if o, ok := obj.(metav1.Object); ok {
		if annotations := o.GetAnnotations(); annotations != nil {
			if _, ok := annotations[corev1.LastAppliedConfigAnnotation]; ok {
				delete(annotations, corev1.LastAppliedConfigAnnotation)
				o.SetAnnotations(annotations)
			}
		}
	}
	return obj, err
}

var stripManagedFields = cache.TransformStripManagedFields()

// MetadataCacheOptions are those of a second cache, metadata-only, that sees changes to any
// Secret or ConfigMap, so that edits to a referenced one re-render the config within
// seconds. The Secrets the operator manages are left to the first cache (CacheOptions),
// which holds them whole: held twice, ten thousand clients' records and credentials
// Secrets cost tens of megabytes more, and the API server sent each change twice.
func MetadataCacheOptions() cache.Options {
	notManaged, err := labels.Parse(hallpassv1.LabelManagedBy + "!=" + hallpassv1.ManagedByValue)
	if err != nil {
		panic(err) // a constant selector
	}
	return cache.Options{
		ByObject:         map[client.Object]cache.ByObject{partialObject("Secret"): {Label: notManaged}},
		DefaultTransform: stripUnread,
	}
}

// Setup registers the field indexes and the four controllers with the manager.
func Setup(ctx context.Context, mgr manager.Manager, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ClientReconcilers <= 0 {
		opts.ClientReconcilers = clientReconcilers
	}
	if len(opts.AllowedServerImages) == 0 {
		opts.AllowedServerImages = []string{imageRepository(opts.ServerImage)}
	}
	if err := setupIndexes(ctx, mgr); err != nil {
		return err
	}
	metaOpts := MetadataCacheOptions()
	metaOpts.Scheme, metaOpts.Mapper = mgr.GetScheme(), mgr.GetRESTMapper()
	metaCache, err := cache.New(mgr.GetConfig(), metaOpts)
	if err != nil {
		return fmt.Errorf("create metadata cache: %w", err)
	}
	if err := mgr.Add(metaCache); err != nil {
		return fmt.Errorf("start metadata cache: %w", err)
	}
	clients, err := newServerClients(ctx, mgr.GetCache())
	if err != nil {
		return err
	}
	records, err := newRecordsByClientID(ctx, mgr.GetCache())
	if err != nil {
		return err
	}
	cs := controllerSetup{mgr: mgr, opts: opts, metaCache: metaCache, c: mgr.GetClient(), m: mapper{mgr.GetClient(), clients, newVerdicts()}, records: records}
	for _, setup := range []func() error{cs.serverController, cs.clientController, cs.connectionController, cs.apiController} {
		if err := setup(); err != nil {
			return err
		}
	}
	if opts.Webhooks {
		if err := ctrl.NewWebhookManagedBy(mgr, &hallpassv1.SSOClient{}).WithValidator(ssoClientValidator{reader: cs.c}).Complete(); err != nil {
			return fmt.Errorf("set up SSOClient webhook: %w", err)
		}
	}
	return nil
}

// controllerSetup is what the four controllers are built from.
type controllerSetup struct {
	mgr       manager.Manager
	opts      Options
	metaCache cache.Cache
	c         client.Client
	m         mapper
	records   recordsByClientID
}

// configMaps is a source of events on any ConfigMap for mapFn, from the metadata-only cache.
func (cs controllerSetup) configMaps(mapFn metadataMapFunc) source.Source {
	return source.Kind(cs.metaCache, partialObject("ConfigMap"), handler.TypedEnqueueRequestsFromMapFunc(mapFn))
}

type metadataMapFunc = handler.TypedMapFunc[*metav1.PartialObjectMetadata, reconcile.Request]

// secrets are the two sources of events on any Secret for mapFn, its requests delayed by
// delayBy (none when zero): the metadata cache's for the Secrets the operator does not
// manage, and the manager's cache's for those it does (MetadataCacheOptions).
func (cs controllerSetup) secrets(mapFn metadataMapFunc, delayBy time.Duration) (unmanaged, managed source.Source) {
	onMetadata := handler.TypedEnqueueRequestsFromMapFunc(mapFn)
	onSecret := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *corev1.Secret) []reconcile.Request {
		return mapFn(ctx, &metav1.PartialObjectMetadata{TypeMeta: s.TypeMeta, ObjectMeta: s.ObjectMeta})
	})
	if delayBy > 0 {
		onMetadata, onSecret = delay(delayBy, onMetadata), delay(delayBy, onSecret)
	}
	return source.Kind(cs.metaCache, partialObject("Secret"), onMetadata), source.Kind(cs.mgr.GetCache(), &corev1.Secret{}, onSecret)
}

func partialObject(kind string) *metav1.PartialObjectMetadata {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(kind))
	return obj
}

func (cs controllerSetup) serverController() error {
	// Secrets change in bursts, such as the credentials Secrets of many clients: one render
	// serves a burst.
	unmanagedSecrets, managedSecrets := cs.secrets(cs.m.serversOfSecret, renderCoalesceDelay)
	err := ctrl.NewControllerManagedBy(cs.mgr).
		For(&hallpassv1.SSOServer{}, builder.WithPredicates(notOwnStatus)).
		// Client records change in bursts, as clients do: one render serves a burst.
		Watches(&corev1.Secret{}, coalesce(handler.EnqueueRequestForOwner(cs.mgr.GetScheme(), cs.mgr.GetRESTMapper(), &hallpassv1.SSOServer{}, handler.OnlyControllerOwner()))).
		Owns(&appsv1.Deployment{}).Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).Owns(&rbacv1.Role{}).Owns(&rbacv1.RoleBinding{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Watches(&hallpassv1.SSOClient{}, coalesce(handler.EnqueueRequestsFromMapFunc(cs.m.serverOfClient)),
			builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// Render reads a connection's spec, not its status (the count of its clients changes
		// with every burst of clients).
		Watches(&hallpassv1.IdentityConnection{}, handler.EnqueueRequestsFromMapFunc(cs.m.serverOfConnection),
			builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&hallpassv1.SSOAPI{}, handler.EnqueueRequestsFromMapFunc(cs.m.serverOfAPI)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(cs.m.serversSelectingNamespaces)).
		WatchesRawSource(unmanagedSecrets).WatchesRawSource(managedSecrets).
		WatchesRawSource(cs.configMaps(cs.m.serversOfConfigMap)).
		Complete(&SSOServerReconciler{
			Client: cs.c, APIReader: cs.mgr.GetAPIReader(), Recorder: cs.mgr.GetEventRecorder("ssoserver-controller"), clients: cs.m.clients, verdicts: cs.m.verdicts,
			ServerImage: cs.opts.ServerImage, ServerLogLevel: cs.opts.ServerLogLevel, AllowedImages: cs.opts.AllowedServerImages, Now: cs.opts.Now,
		})
	if err != nil {
		return fmt.Errorf("set up SSOServer controller: %w", err)
	}
	return nil
}

func (cs controllerSetup) clientController() error {
	unmanagedSecrets, managedSecrets := cs.secrets(cs.m.clientsOfSecret, 0)
	err := ctrl.NewControllerManagedBy(cs.mgr).
		// Its annotations are news to a client (requests).
		For(&hallpassv1.SSOClient{}, builder.WithPredicates(notOwnStatus)).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, delay(verdictDelay, handler.EnqueueRequestsFromMapFunc(cs.m.clientOfOwnSecret))).
		Watches(&hallpassv1.SSOServer{}, clientsOfServerHandler{cs.m}).
		WithOptions(controller.Options{MaxConcurrentReconciles: cs.opts.ClientReconcilers}).
		// A client cares whether its connections exist and are ready, not about their other
		// status (such as their count of clients, which each accepted client changes).
		Watches(&hallpassv1.IdentityConnection{}, handler.EnqueueRequestsFromMapFunc(cs.m.clientsOfConnectionServer),
			builder.WithPredicates(readinessChanged{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(cs.m.clientsInNamespace)).
		WatchesRawSource(unmanagedSecrets).WatchesRawSource(managedSecrets).
		// The render's verdicts on clients come from the SSOServer controller, in memory.
		WatchesRawSource(cs.m.verdicts.source()).
		Complete(&SSOClientReconciler{Client: cs.c, APIReader: cs.mgr.GetAPIReader(), Recorder: cs.mgr.GetEventRecorder("ssoclient-controller"), Now: cs.opts.Now, verdicts: cs.m.verdicts, clients: cs.m.clients, records: cs.records})
	if err != nil {
		return fmt.Errorf("set up SSOClient controller: %w", err)
	}
	return nil
}

func (cs controllerSetup) connectionController() error {
	unmanagedSecrets, managedSecrets := cs.secrets(cs.m.connectionsOfSecret, 0)
	err := ctrl.NewControllerManagedBy(cs.mgr).
		// The connection's own status writes are no news to it: during a burst of clients each
		// count it wrote made it count again, about four times a second.
		For(&hallpassv1.IdentityConnection{}, builder.WithPredicates(notOwnStatus)).
		// A connection reads its server's spec (the issuer) and existence, never its status,
		// which moves with every render.
		Watches(&hallpassv1.SSOServer{}, handler.EnqueueRequestsFromMapFunc(cs.m.connectionsOfServer),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A connection counts its accepted clients: one count per burst of clients.
		Watches(&hallpassv1.SSOClient{}, delay(countCoalesceDelay, handler.EnqueueRequestsFromMapFunc(cs.m.connectionsOfClientServer)),
			builder.WithPredicates(countChanged{})).
		WatchesRawSource(unmanagedSecrets).WatchesRawSource(managedSecrets).
		WatchesRawSource(cs.configMaps(cs.m.connectionsOfConfigMap)).
		Owns(&corev1.Secret{}).
		Complete(&IdentityConnectionReconciler{Client: cs.c, APIReader: cs.mgr.GetAPIReader(), Recorder: cs.mgr.GetEventRecorder("identityconnection-controller"), Now: cs.opts.Now, clients: cs.m.clients})
	if err != nil {
		return fmt.Errorf("set up IdentityConnection controller: %w", err)
	}
	return nil
}

func (cs controllerSetup) apiController() error {
	err := ctrl.NewControllerManagedBy(cs.mgr).
		// An API's own status writes, and those of the other APIs of its server, are no news
		// to it: it reads their specs.
		For(&hallpassv1.SSOAPI{}, builder.WithPredicates(notOwnStatus)).
		Watches(&hallpassv1.SSOAPI{}, handler.EnqueueRequestsFromMapFunc(cs.m.apisOfAPIServer),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&hallpassv1.SSOServer{}, handler.EnqueueRequestsFromMapFunc(cs.m.apisOfServer),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&hallpassv1.SSOClient{}, delay(countCoalesceDelay, handler.EnqueueRequestsFromMapFunc(cs.m.apisOfClientServer)),
			builder.WithPredicates(countChanged{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(cs.m.allAPIs)).
		Complete(&SSOAPIReconciler{Client: cs.c, APIReader: cs.mgr.GetAPIReader(), Recorder: cs.mgr.GetEventRecorder("ssoapi-controller"), clients: cs.m.clients})
	if err != nil {
		return fmt.Errorf("set up SSOAPI controller: %w", err)
	}
	return nil
}

// mapper turns events on related objects into requests for the objects that depend on them.
type mapper struct {
	c        client.Client
	clients  serverClients
	verdicts *verdicts
}

func (m mapper) serverOfClient(_ context.Context, o client.Object) []reconcile.Request {
	ns, name := o.(*hallpassv1.SSOClient).ServerKey()
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

func (m mapper) serverOfConnection(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.(*hallpassv1.IdentityConnection).Spec.ServerRef.Name}}}
}

func (m mapper) serverOfAPI(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.(*hallpassv1.SSOAPI).Spec.ServerRef.Name}}}
}

// serversSelectingNamespaces maps a namespace change to the servers whose admitted
// namespaces or whose APIs' grants select namespaces by label.
func (m mapper) serversSelectingNamespaces(ctx context.Context, _ client.Object) []reconcile.Request {
	var servers hallpassv1.SSOServerList
	if err := m.c.List(ctx, &servers); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, s := range servers.Items {
		if s.Spec.AllowedClientNamespaces != nil && s.Spec.AllowedClientNamespaces.Selector != nil {
			reqs = append(reqs, requestFor(&s))
		}
	}
	var apis hallpassv1.SSOAPIList
	if err := m.c.List(ctx, &apis); err != nil {
		return reqs
	}
	for i := range apis.Items {
		if slices.ContainsFunc(apis.Items[i].Spec.Grants, func(g hallpassv1.APIGrant) bool { return g.Clients.NamespaceSelector != nil }) {
			reqs = append(reqs, m.serverOfAPI(ctx, &apis.Items[i])...)
		}
	}
	return reqs
}

// apisOfAPIServer maps an SSOAPI to every SSOAPI of its server: which of two holds an
// identifier changes when either changes or goes.
func (m mapper) apisOfAPIServer(ctx context.Context, o client.Object) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.SSOAPIList{}, client.MatchingFields{indexServer: key(o.GetNamespace(), o.(*hallpassv1.SSOAPI).Spec.ServerRef.Name)})
}

func (m mapper) apisOfServer(ctx context.Context, o client.Object) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.SSOAPIList{}, client.MatchingFields{indexServer: key(o.GetNamespace(), o.GetName())})
}

func (m mapper) apisOfClientServer(ctx context.Context, o client.Object) []reconcile.Request {
	ns, name := o.(*hallpassv1.SSOClient).ServerKey()
	return m.listRequests(ctx, &hallpassv1.SSOAPIList{}, client.MatchingFields{indexServer: key(ns, name)})
}

func (m mapper) allAPIs(ctx context.Context, _ client.Object) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.SSOAPIList{})
}

// serversOfSecret maps a Secret to the servers that render it: those whose Postgres DSN or
// connections reference it, and the server of the client whose credentials it holds.
func (m mapper) serversOfSecret(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
	k := key(o.Namespace, o.Name)
	reqs := m.listRequests(ctx, &hallpassv1.SSOServerList{}, client.MatchingFields{indexSecretRefs: k})
	reqs = append(reqs, m.serversOfConnections(ctx, client.MatchingFields{indexSecretRefs: k})...)
	if clientName := o.Labels[hallpassv1.LabelClient]; clientName != "" {
		var sc hallpassv1.SSOClient
		if err := m.c.Get(ctx, types.NamespacedName{Namespace: o.Namespace, Name: clientName}, &sc); err == nil {
			reqs = append(reqs, m.serverOfClient(ctx, &sc)...)
		}
	}
	return reqs
}

// serversOfConfigMap maps a ConfigMap to the servers of the connections that reference it
// and, for a server's status ConfigMap, to that server: a pod's report is news.
func (m mapper) serversOfConfigMap(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
	reqs := m.serversOfConnections(ctx, client.MatchingFields{indexConfigMapRefs: key(o.Namespace, o.Name)})
	if server := o.Labels[hallpassv1.LabelServer]; server != "" && o.Labels[hallpassv1.LabelManagedBy] == hallpassv1.ManagedByValue &&
		o.Name == statusConfigMapName(server) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: server}})
	}
	return reqs
}

// serversOfConnections maps the connections that match to their servers.
func (m mapper) serversOfConnections(ctx context.Context, match client.MatchingFields) []reconcile.Request {
	var conns hallpassv1.IdentityConnectionList
	if err := m.c.List(ctx, &conns, match); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(conns.Items))
	for i := range conns.Items {
		reqs = append(reqs, m.serverOfConnection(ctx, &conns.Items[i])...)
	}
	return reqs
}

func (m mapper) connectionsOfConfigMap(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.IdentityConnectionList{}, client.MatchingFields{indexConfigMapRefs: key(o.Namespace, o.Name)})
}

func (m mapper) clientsOfServer(_ context.Context, o client.Object) []reconcile.Request {
	return m.requestsForClientsOf(o.GetNamespace(), o.GetName())
}

func (m mapper) clientsOfConnectionServer(_ context.Context, o client.Object) []reconcile.Request {
	c := o.(*hallpassv1.IdentityConnection)
	return m.requestsForClientsOf(c.Namespace, c.Spec.ServerRef.Name)
}

func (m mapper) requestsForClientsOf(namespace, server string) []reconcile.Request {
	clients, err := m.clients.of(namespace, server)
	if err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(clients))
	for _, sc := range clients {
		reqs = append(reqs, requestFor(sc))
	}
	return reqs
}

func (m mapper) clientsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.SSOClientList{}, client.InNamespace(o.GetName()))
}

func (m mapper) clientsOfSecret(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
	reqs := m.listRequests(ctx, &hallpassv1.SSOClientList{}, client.MatchingFields{indexSecretRefs: key(o.Namespace, o.Name)})
	if name := o.Labels[hallpassv1.LabelClient]; name != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: name}})
	}
	return reqs
}

// clientOfOwnSecret maps a client record, or a credentials Secret, to the SSOClient it is
// for: a record or credentials Secret deleted or changed by someone else (with the Orphan policy it has no owner
// reference to be watched by). It watches the cache the client's reconcile reads both from,
// so the reconcile sees the change that triggered it.
func (m mapper) clientOfOwnSecret(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[labelRecord] == recordClient {
		a := o.GetAnnotations()
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: a[annotationRecordNamespace], Name: a[annotationRecordName]}}}
	}
	if name := o.GetLabels()[hallpassv1.LabelClient]; name != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	}
	return nil
}

func (m mapper) connectionsOfServer(ctx context.Context, o client.Object) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.IdentityConnectionList{}, client.MatchingFields{indexServer: key(o.GetNamespace(), o.GetName())})
}

func (m mapper) connectionsOfClientServer(ctx context.Context, o client.Object) []reconcile.Request {
	ns, name := o.(*hallpassv1.SSOClient).ServerKey()
	return m.listRequests(ctx, &hallpassv1.IdentityConnectionList{}, client.MatchingFields{indexServer: key(ns, name)})
}

func (m mapper) connectionsOfSecret(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
	return m.listRequests(ctx, &hallpassv1.IdentityConnectionList{}, client.MatchingFields{indexSecretRefs: key(o.Namespace, o.Name)})
}

// listRequests lists objects and returns a request for each. A failed list maps to nothing;
// the cache only fails when it is not yet synced, and the initial sync enqueues everything.
func (m mapper) listRequests(ctx context.Context, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := m.c.List(ctx, list, opts...); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		reqs = append(reqs, requestFor(o.(client.Object)))
		return nil
	})
	return reqs
}

func requestFor(o client.Object) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
}
