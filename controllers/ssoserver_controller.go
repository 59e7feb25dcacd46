package controllers

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/render"
)

// fieldOwner is the server-side apply field manager of everything the operator writes.
var fieldOwner = client.FieldOwner("hallpass-operator")

// Annotations on the signing-keys Secret, the durable record of rotations.
const (
	// annotationRotatedAt records when the keys last rotated.
	annotationRotatedAt = "sso.hallpass.dev/rotated-at"
	// annotationRotationRequest and annotationRevocationRequest record the last values of the
	// SSOServer's request annotations the operator acted on. They live beside the keys and
	// are written with them, not in status, which a restore from backup can lose.
	annotationRotationRequest   = "sso.hallpass.dev/rotation-request"
	annotationRevocationRequest = "sso.hallpass.dev/revocation-request"
)

// SSOServerReconciler turns an SSOServer and everything attached to it into a running
// server: RBAC, signing keys, the rendered config, storage, Deployment and Service.
type SSOServerReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold (ConfigMap data, Secrets the operator
	// does not manage) or holds an older copy of.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// ServerImage is the image of `hallpass server` used when spec.image is empty.
	ServerImage string
	// ServerLogLevel is the --log-level of `hallpass server`; empty leaves the server's default.
	ServerLogLevel string
	// AllowedImages are the image repositories a server may run; an SSOServer whose image
	// is in none of them is not deployed.
	AllowedImages []string
	// Now is the clock for key rotation; tests move it.
	Now func() time.Time

	clients  serverClients
	verdicts *verdicts
}

type serverScope struct {
	server *hallpassv1.SSOServer
	conds  *conditionSetter
	// records are the client records of the clients offered to render, by SSOClient UID.
	records map[types.UID]namedRecord
	// recordSecrets are the server's client records by name, as the cache holds them
	// (read only).
	recordSecrets map[string]*corev1.Secret
	// allowedNamespaces says, for each namespace a render has asked about, whether the
	// server admits its clients.
	allowedNamespaces map[string]bool
	// conflicts name the objects of the server's names that belong to something else;
	// noWorkload is set when the server's pods must not be deployed.
	conflicts  []string
	noWorkload bool
	result     ctrl.Result
}

type namedRecord struct {
	name string
	rec  *clientRecord
	// generation is that of the SSOClient offered to render.
	generation int64
}

// Names of the objects of a server.
func configSecretName(server string) string { return server + "-config" }
func keysSecretName(server string) string   { return server + "-signing-keys" }
func dataClaimName(server string) string    { return server + "-data" }

// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoservers,verbs=get;list;watch
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoservers/status,verbs=get;patch
// Owner references block the owner's deletion until what it owns is gone; clusters that
// enforce owner reference permissions (OpenShift) allow that only to whoever may update the
// owner's finalizers. The operator sets no finalizers.
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoservers/finalizers,verbs=update
// None of these is ever deleted by the operator: what it creates goes with its owner by
// garbage collection.
// +kubebuilder:rbac:groups="",resources=serviceaccounts;services;persistentvolumeclaims,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch

// Reconcile brings one SSOServer to its desired state.
func (r *SSOServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	server := &hallpassv1.SSOServer{}
	// Everything the server owns lives in its namespace and goes by owner reference.
	if live, err := getLive(ctx, r.Client, req.NamespacedName, server); !live {
		if err == nil {
			r.verdicts.forget(req.NamespacedName)
			renderSeconds.DeleteLabelValues(req.Namespace, req.Name)
		}
		return ctrl.Result{}, err
	}
	before := server.DeepCopy()
	s := &serverScope{server: server, conds: newConditionSetter(ctx, server, r.Recorder)}
	server.Status.Issuer = server.Spec.Issuer
	server.Status.DiscoveryURL = discoveryURL(server.Spec.Issuer)
	defer func() {
		if reterr == nil {
			reportConflicts(s)
		}
		s.conds.readyFrom(hallpassv1.SSOServerObjectsOwned, hallpassv1.SSOServerImageAllowed,
			hallpassv1.SSOServerKeysReady, hallpassv1.SSOServerConfigRendered, hallpassv1.SSOServerAvailable)
		reterr = patchStatus(ctx, r.Client, r.APIReader, before, s.conds, &server.Status.ObservedGeneration, reterr)
	}()

	for _, phase := range []func(context.Context, *serverScope) error{
		r.reconcileRBAC,
		r.reconcileSigningKeys,
		r.reconcileConfig,
		r.reconcileStorage,
		r.reconcileWorkload,
		r.reconcileAvailability,
		r.reconcileConfigApplied,
	} {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	return s.result, nil
}

// reconcileSigningKeys creates the signing keys once and rotates them on schedule. An
// existing Secret is never regenerated: losing keys would invalidate every issued token.
func (r *SSOServerReconciler) reconcileSigningKeys(ctx context.Context, s *serverScope) error {
	srv := s.server
	name := keysSecretName(srv.Name)
	alg := srv.Spec.SigningKeys.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: srv.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		keys, err := config.NewSigningKeys(alg)
		if err != nil {
			return err
		}
		data, err := config.MarshalSigningKeys(keys)
		if err != nil {
			return err
		}
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: srv.Namespace,
				Labels: serverLabels(srv),
				Annotations: requestsOf(srv, hallpassv1.AnnotationRotateSigningKeys, annotationRotationRequest,
					hallpassv1.AnnotationRevokeSigningKeys, annotationRevocationRequest),
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{config.KeysSecretKey: data},
		}
		// Fresh keys answer any request already on the server: nothing to rotate yet.
		secret.Annotations[annotationRotatedAt] = r.Now().UTC().Format(time.RFC3339)
		if err := ctrl.SetControllerReference(srv, secret, r.Scheme()); err != nil {
			return fmt.Errorf("own signing keys: %w", err)
		}
		// Create, not apply: if another writer got there first, its keys win.
		if err := r.Create(ctx, secret); err != nil {
			return fmt.Errorf("create signing keys Secret %s: %w", name, err)
		}
		srv.Status.SigningKeys = signingKeysStatus(secret, keys, alg)
		s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionTrue, "KeysGenerated", fmt.Sprintf("generated %s signing keys in Secret %s", alg, name))
		s.requeueAfter(rotationInterval(srv))
		return nil
	}
	if err != nil {
		return fmt.Errorf("get signing keys Secret %s: %w", name, err)
	}
	if owner := metav1.GetControllerOf(secret); owner == nil || owner.UID != srv.UID {
		s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionFalse, hallpassv1.ReasonSecretConflict,
			fmt.Sprintf("Secret %s exists and is not controlled by this SSOServer; delete or rename it", name))
		s.conflicts = append(s.conflicts, "Secret "+name)
		s.noWorkload = true
		return nil
	}
	keys, err := config.ParseSigningKeys(secret.Data[config.KeysSecretKey])
	if err != nil {
		s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret,
			fmt.Sprintf("Secret %s: %v; delete it to generate new keys (every issued token becomes invalid)", name, err))
		return nil
	}
	// A Secret from before RS256 and ES256 were served side by side holds one algorithm's
	// keys: the other's are added, published at once (relying parties fetch the JWKS again
	// for an unknown kid) and used only by clients that pick that algorithm until
	// signingKeys.algorithm names it.
	added, err := keys.Complete()
	if err != nil {
		return fmt.Errorf("complete signing keys: %w", err)
	}
	if added {
		data, err := config.MarshalSigningKeys(keys)
		if err != nil {
			return err
		}
		secret.Data[config.KeysSecretKey] = data
		if err := r.Update(ctx, secret); err != nil {
			return fmt.Errorf("add %s signing keys to Secret %s: %w", config.KeyAlgorithm(keys.Other.Current), name, err)
		}
	}
	return r.rotateIfDue(ctx, s, secret, keys, alg)
}

// rotateIfDue rotates the keys when the schedule or the SSOServer's request annotations say
// so. Which request values were acted on is recorded on the keys Secret in the same update
// as the keys, so a crash between the two cannot rotate twice for one value.
func (r *SSOServerReconciler) rotateIfDue(ctx context.Context, s *serverScope, secret *corev1.Secret, keys *config.SigningKeys, alg string) error {
	srv := s.server
	now := r.Now()
	interval := rotationInterval(srv)
	rotatedAt, err := time.Parse(time.RFC3339, secret.Annotations[annotationRotatedAt])
	if err != nil {
		rotatedAt = secret.CreationTimestamp.Time
	}
	defer func() { srv.Status.SigningKeys = signingKeysStatus(secret, keys, alg) }()

	revokeReq, revoke := pendingRequest(srv, hallpassv1.AnnotationRevokeSigningKeys, secret.Annotations, annotationRevocationRequest)
	rotateReq, rotate := pendingRequest(srv, hallpassv1.AnnotationRotateSigningKeys, secret.Annotations, annotationRotationRequest)
	due := rotatedAt.Add(interval)
	var reason, message string
	switch {
	case revoke:
		// The emergency: nothing that has signed stays published. The next keys were never
		// used, so they are the keys known not to be compromised through a token.
		revoked, err := keys.Revoke()
		if err != nil {
			return fmt.Errorf("revoke signing keys: %w", err)
		}
		reason = hallpassv1.ReasonKeysRevoked
		message = fmt.Sprintf("revoked signing keys %v on request %q (annotation %s): signing keys %v are now current; tokens signed by the revoked keys no longer verify",
			revoked, revokeReq, hallpassv1.AnnotationRevokeSigningKeys, currentKeyIDs(keys))
	case rotate:
		if earliest := rotatedAt.Add(safeRotationDelay(srv, keys)); now.Before(earliest) {
			s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionTrue, hallpassv1.ReasonRotationWaiting,
				fmt.Sprintf("rotation requested by annotation %s=%q waits until %s, so that relying parties have fetched next keys %v and tokens signed by the previous keys have expired",
					hallpassv1.AnnotationRotateSigningKeys, rotateReq, earliest.UTC().Format(time.RFC3339), keyIDs(keys, func(c *config.KeyChain) *jose.JSONWebKey { return c.Next })))
			s.requeueAfter(earliest.Sub(now))
			return nil
		}
		if err := keys.Rotate(); err != nil {
			return fmt.Errorf("rotate signing keys: %w", err)
		}
		reason = hallpassv1.ReasonKeysRotated
		message = fmt.Sprintf("signing keys %v are now current, on request %q (annotation %s)", currentKeyIDs(keys), rotateReq, hallpassv1.AnnotationRotateSigningKeys)
	case !now.Before(due):
		if err := keys.Rotate(); err != nil {
			return fmt.Errorf("rotate signing keys: %w", err)
		}
		reason = hallpassv1.ReasonKeysRotated
		message = fmt.Sprintf("signing keys %v are now current (spec.signingKeys.rotationInterval)", currentKeyIDs(keys))
	default:
		s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
		s.requeueAfter(due.Sub(now))
		return nil
	}
	data, err := config.MarshalSigningKeys(keys)
	if err != nil {
		return err
	}
	secret.Data[config.KeysSecretKey] = data
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[annotationRotatedAt] = now.UTC().Format(time.RFC3339)
	// Every rotation settles the requests pending now: one rotation answers them all.
	recordRequest(secret, annotationRotationRequest, rotateReq)
	recordRequest(secret, annotationRevocationRequest, revokeReq)
	// Update carries the resourceVersion we read, so two operators cannot both rotate.
	if err := r.Update(ctx, secret); err != nil {
		return fmt.Errorf("write rotated signing keys: %w", err)
	}
	s.conds.set(hallpassv1.SSOServerKeysReady, metav1.ConditionTrue, reason, message)
	s.requeueAfter(interval)
	return nil
}

// minNextKeyPublished is how long the next key is in the JWKS before a requested rotation
// lets it sign: the server lets relying parties cache the JWKS for 5 minutes, and a new
// Secret takes a moment to reach every server pod.
const minNextKeyPublished = 10 * time.Minute

// safeRotationDelay is how long after the last rotation a requested one may happen without
// breaking anything a scheduled one would not: the next key has been published long enough,
// and the previous key, which the rotation drops, has no unexpired ID or access token left.
func safeRotationDelay(srv *hallpassv1.SSOServer, keys *config.SigningKeys) time.Duration {
	delay := minNextKeyPublished
	if keys.Previous == nil {
		return delay
	}
	for _, d := range []hallpassv1.Duration{cmp.Or(srv.Spec.Tokens.IDToken, "1h"), cmp.Or(srv.Spec.Tokens.AccessToken, "1h")} {
		if lifetime, err := time.ParseDuration(string(d)); err == nil && lifetime > delay {
			delay = lifetime
		}
	}
	return delay
}

// pendingRequest returns the value of a request annotation of obj and whether it differs
// from the value recorded, that is, whether it asks for something not yet done.
func pendingRequest(obj client.Object, annotation string, recorded map[string]string, recordAnnotation string) (string, bool) {
	value, ok := obj.GetAnnotations()[annotation]
	if !ok {
		return "", false
	}
	return value, value != recorded[recordAnnotation]
}

// recordRequest notes a request value on obj as acted on; an empty value (no request) keeps
// what was recorded.
func recordRequest(obj client.Object, annotation, value string) {
	if value == "" {
		return
	}
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[annotation] = value
	obj.SetAnnotations(a)
}

// requestsOf returns the annotations recording the current request values of obj as acted
// on: what a freshly generated key or secret answers already.
func requestsOf(obj client.Object, pairs ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if v, ok := obj.GetAnnotations()[pairs[i]]; ok {
			out[pairs[i+1]] = v
		}
	}
	return out
}

// keyIDs lists the key ID of one slot of each chain.
func keyIDs(keys *config.SigningKeys, slot func(*config.KeyChain) *jose.JSONWebKey) []string {
	var ids []string
	for _, c := range keys.Chains() {
		ids = append(ids, slot(c).KeyID)
	}
	return ids
}

func currentKeyIDs(keys *config.SigningKeys) []string {
	return keyIDs(keys, func(c *config.KeyChain) *jose.JSONWebKey { return c.Current })
}

// signingKeysStatus reports the keys of the chain of alg, the server's signing algorithm.
func signingKeysStatus(secret *corev1.Secret, keys *config.SigningKeys, alg string) hallpassv1.SigningKeysStatus {
	chain := keys.Chain(alg)
	if chain == nil {
		chain = &keys.KeyChain
	}
	st := hallpassv1.SigningKeysStatus{
		CurrentKeyID:      chain.Current.KeyID,
		NextKeyID:         chain.Next.KeyID,
		RotationRequest:   secret.Annotations[annotationRotationRequest],
		RevocationRequest: secret.Annotations[annotationRevocationRequest],
	}
	if chain.Previous != nil {
		st.PreviousKeyID = chain.Previous.KeyID
	}
	if t, err := time.Parse(time.RFC3339, secret.Annotations[annotationRotatedAt]); err == nil {
		st.RotatedAt = &metav1.Time{Time: t}
	}
	return st
}

func rotationInterval(srv *hallpassv1.SSOServer) time.Duration {
	if d, err := time.ParseDuration(string(srv.Spec.SigningKeys.RotationInterval)); err == nil && d > 0 {
		return d
	}
	return 720 * time.Hour
}

func (s *serverScope) requeueAfter(d time.Duration) {
	if s.result.RequeueAfter == 0 || d < s.result.RequeueAfter {
		s.result.RequeueAfter = d
	}
}

// reconcileConfig renders the config from every admitted client and resolved connection and
// writes it. When rendering fails the previous config Secret is left untouched, so the
// running server keeps serving the last good config.
func (r *SSOServerReconciler) reconcileConfig(ctx context.Context, s *serverScope) error {
	start := time.Now()
	defer func() {
		renderSeconds.WithLabelValues(s.server.Namespace, s.server.Name).Observe(time.Since(start).Seconds())
	}()
	in, err := r.collectRenderInput(ctx, s)
	if err != nil {
		return err
	}
	out, err := render.Render(*in)
	if err != nil {
		s.conds.set(hallpassv1.SSOServerConfigRendered, metav1.ConditionFalse, "RenderFailed", err.Error())
		return nil
	}
	name := configSecretName(s.server.Name)
	existing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.server.Namespace, Name: name}}
	if ok, err := r.claim(ctx, s, existing); err != nil || !ok {
		s.noWorkload = true
		s.conds.set(hallpassv1.SSOServerConfigRendered, metav1.ConditionFalse, hallpassv1.ReasonSecretConflict,
			fmt.Sprintf("Secret %s exists and is not controlled by this SSOServer", name))
		return err
	}
	revision, err := r.writeConfig(ctx, s, existing, out.Compressed)
	if err != nil {
		return err
	}
	r.publishVerdicts(s, out.LeftOut, revision)
	s.server.Status.ConfigRevision = revision
	s.server.Status.ConfigHash = digest.Of(out.Bytes)
	s.server.Status.Clients = statusCount(len(out.Config.Clients))
	s.server.Status.Connections = statusCount(len(out.Config.Connections))
	msg := fmt.Sprintf("serving %d clients, %d connections and %d APIs", len(out.Config.Clients), len(out.Config.Connections), len(out.Config.APIs))
	if len(out.LeftOut) > 0 {
		msg += fmt.Sprintf("; left out %d clients, each reported on its SSOClient", len(out.LeftOut))
	}
	if len(out.SkippedConnections) > 0 {
		msg += fmt.Sprintf("; left out connections whose credentials do not resolve: %v", out.SkippedConnections)
	}
	if len(out.RefusedAPIs) > 0 {
		msg += fmt.Sprintf("; left out SSOAPIs that are not Ready: %v", out.RefusedAPIs)
	}
	s.conds.set(hallpassv1.SSOServerConfigRendered, metav1.ConditionTrue, hallpassv1.ReasonReconciled, msg)
	return nil
}

// publishVerdicts tells the SSOClient controller what the render did with each client
// offered to it: why it was left out, or the generation of the client the config now serves
// and the revision that serves it. The SSOClient controller turns that into the client's
// Accepted and Served conditions and an Event.
func (r *SSOServerReconciler) publishVerdicts(s *serverScope, leftOut []render.LeftOut, revision int64) {
	left := make(map[types.UID]render.LeftOut, len(leftOut))
	for _, l := range leftOut {
		left[l.Client.UID] = l
	}
	next := make(map[types.UID]clientVerdict, len(s.records))
	for uid, nr := range s.records {
		v := verdict{generation: nr.generation, revision: revision}
		if l, ok := left[uid]; ok {
			v = verdict{leftOutReason: l.Reason, leftOutMessage: l.Message}
		}
		next[uid] = clientVerdict{types.NamespacedName{Namespace: nr.rec.namespace, Name: nr.rec.name}, v}
	}
	r.verdicts.publish(client.ObjectKeyFromObject(s.server), next)
}

func (r *SSOServerReconciler) collectRenderInput(ctx context.Context, s *serverScope) (*render.Input, error) {
	srv := s.server
	in := &render.Input{Server: srv, Values: render.Values{}}
	if err := resolveReferences(ctx, r.APIReader, srv.Namespace, srv.SecretReferences(), nil, in.Values); err != nil {
		return nil, err
	}

	var conns hallpassv1.IdentityConnectionList
	if err := r.List(ctx, &conns, client.MatchingFields{indexServer: key(srv.Namespace, srv.Name)}); err != nil {
		return nil, fmt.Errorf("list IdentityConnections: %w", err)
	}
	for i := range conns.Items {
		c := &conns.Items[i]
		if !c.DeletionTimestamp.IsZero() {
			continue
		}
		if err := resolveConnection(ctx, r.APIReader, c, in.Values); err != nil {
			return nil, err
		}
		in.Connections = append(in.Connections, c)
	}

	// Read-only views of the cache: render is a pure function and changes nothing, and at
	// ten thousand clients a deep copy of each would be most of a render's allocations.
	clients, err := r.clients.of(srv.Namespace, srv.Name)
	if err != nil {
		return nil, err
	}
	var records corev1.SecretList
	if err := r.List(ctx, &records, client.InNamespace(srv.Namespace), client.UnsafeDisableDeepCopy,
		client.MatchingLabels{labelRecord: recordClient, hallpassv1.LabelServer: srv.Name, hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list client records: %w", err)
	}
	s.recordSecrets = make(map[string]*corev1.Secret, len(records.Items))
	s.records = make(map[types.UID]namedRecord, len(records.Items))
	in.Clients = make([]render.Client, 0, len(clients))
	s.allowedNamespaces = map[string]bool{}
	for i := range records.Items {
		s.recordSecrets[records.Items[i].Name] = &records.Items[i]
	}
	for _, sc := range clients {
		c, ok, err := r.servedClient(ctx, s, sc)
		if err != nil {
			return nil, err
		}
		if ok {
			in.Clients = append(in.Clients, c)
		}
	}

	var apis hallpassv1.SSOAPIList
	if err := r.List(ctx, &apis, client.MatchingFields{indexServer: key(srv.Namespace, srv.Name)}); err != nil {
		return nil, fmt.Errorf("list SSOAPIs: %w", err)
	}
	for i := range apis.Items {
		if apis.Items[i].DeletionTimestamp.IsZero() {
			in.APIs = append(in.APIs, &apis.Items[i])
		}
	}
	if in.NamespaceLabels, err = namespaceLabels(ctx, r.Client, in.Clients); err != nil {
		return nil, err
	}
	return in, nil
}

// servedClient returns the client as the server should serve it, or false if it must not
// be served: refused by the server, or without a record that is its own. The client ID and
// secret digests come from the client's record alone; nothing in the client's namespace
// decides them.
func (r *SSOServerReconciler) servedClient(ctx context.Context, s *serverScope, sc *hallpassv1.SSOClient) (render.Client, bool, error) {
	srv := s.server
	if !sc.DeletionTimestamp.IsZero() {
		return render.Client{}, false, nil
	}
	allowed, known := s.allowedNamespaces[sc.Namespace]
	if !known {
		var err error
		if allowed, err = namespaceAllowed(ctx, r.Client, srv, sc.Namespace); err != nil {
			return render.Client{}, false, err
		}
		s.allowedNamespaces[sc.Namespace] = allowed
	}
	if admitClientFrom(srv, sc, allowed) != nil {
		return render.Client{}, false, nil
	}
	secret, ok := s.recordSecrets[recordNameOf(srv, sc)]
	if !ok {
		return render.Client{}, false, nil
	}
	rec := readClientRecord(secret)
	if rec.uid != sc.UID || !rec.isRecordOf(sc) || rec.credentialsUID == "" || !config.ValidClientID(rec.clientID) {
		return render.Client{}, false, nil
	}
	s.records[sc.UID] = namedRecord{secret.Name, rec, sc.Generation}
	c := render.Client{Client: sc, ID: rec.clientID}
	if !sc.Spec.Type.Public() {
		if rec.secret == "" {
			return render.Client{}, false, nil
		}
		var until time.Time
		c.SecretDigests, until = rec.acceptedDigests(r.Now())
		if !until.IsZero() {
			// The previous secret leaves the config when its overlap ends, whether or not
			// anything else happens by then.
			s.requeueAfter(until.Sub(r.Now()))
		}
	}
	return c, true, nil
}

// reconcileAvailability reports the server pods' readiness from the Deployment.
func (r *SSOServerReconciler) reconcileAvailability(ctx context.Context, s *serverScope) error {
	var d appsv1.Deployment
	// Right after the first apply the cache may not have the Deployment yet; it then counts
	// as having no ready pods, and its creation event brings us back.
	if err := r.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: s.server.Name}, &d); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get Deployment %s: %w", s.server.Name, err)
	}
	s.server.Status.ReadyReplicas = d.Status.ReadyReplicas
	switch {
	case s.server.Spec.Replicas == 0:
		s.conds.set(hallpassv1.SSOServerAvailable, metav1.ConditionFalse, "ScaledToZero", "spec.replicas is 0")
	case d.Status.ReadyReplicas == 0:
		s.conds.set(hallpassv1.SSOServerAvailable, metav1.ConditionFalse, "NoReadyReplicas",
			fmt.Sprintf("no server pod of Deployment %s is ready yet", d.Name))
	default:
		s.conds.set(hallpassv1.SSOServerAvailable, metav1.ConditionTrue, hallpassv1.ReasonReconciled,
			fmt.Sprintf("%d of %d server pods ready", d.Status.ReadyReplicas, s.server.Spec.Replicas))
	}
	return nil
}

// annotationConfigRevision on the config Secret records the revision of the config it holds
// (status.configRevision), so that it survives a lost status and an operator restart.
const annotationConfigRevision = "sso.hallpass.dev/config-revision"

// writeConfig writes the compressed config into the config Secret unless the Secret already
// holds exactly it, and returns the config's revision: the recorded one for an unchanged
// config, else a new one greater than every earlier one.
func (r *SSOServerReconciler) writeConfig(ctx context.Context, s *serverScope, existing *corev1.Secret, compressed []byte) (int64, error) {
	recorded, _ := strconv.ParseInt(existing.Annotations[annotationConfigRevision], 10, 64)
	if recorded > 0 && bytes.Equal(existing.Data[config.CompressedConfigSecretKey], compressed) && len(existing.Data) == 1 {
		return recorded, nil
	}
	// The render's time, so that a config Secret recreated without its annotation still
	// gets a revision above those recorded in client records; one more than the last if
	// the clock is behind it.
	revision := max(r.Now().UnixMilli(), recorded+1, s.server.Status.ConfigRevision+1)
	secret := corev1ac.Secret(existing.Name, s.server.Namespace).
		WithLabels(serverLabels(s.server)).
		WithAnnotations(map[string]string{annotationConfigRevision: strconv.FormatInt(revision, 10)}).
		WithOwnerReferences(r.owner(s.server)).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{config.CompressedConfigSecretKey: compressed})
	if err := r.Apply(ctx, secret, fieldOwner, client.ForceOwnership); err != nil {
		return 0, fmt.Errorf("apply Secret %s: %w", existing.Name, err)
	}
	return revision, nil
}
