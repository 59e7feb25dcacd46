package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

// Keys of the credentials Secret an application reads. The client ID and secret keys are
// the defaults of spec.credentials.keys.
const (
	CredentialsClientID     = hallpassv1.DefaultClientIDKey
	CredentialsClientSecret = hallpassv1.DefaultClientSecretKey
	CredentialsIssuer       = "issuer"
	CredentialsDiscoveryURL = "discovery_url"
)

const (
	// clientIDBytes and clientSecretBytes are the random sizes of generated credentials:
	// 128-bit IDs (unique by construction) and 256-bit secrets.
	clientIDBytes     = 16
	clientSecretBytes = 32
	// minClientSecretLength applies to secrets users bring through clientSecretRef.
	minClientSecretLength = 32
)

// SSOClientReconciler admits SSOClients to their server and writes their credentials.
type SSOClientReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold (Secrets the operator does not manage)
	// or holds an older copy of.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Now is the clock for client secret rotation; tests move it.
	Now func() time.Time

	verdicts *verdicts
	clients  serverClients
	records  recordsByClientID
}

type clientScope struct {
	client *hallpassv1.SSOClient
	server *hallpassv1.SSOServer
	conds  *conditionSetter
	// record is the client's record in the server's namespace as read, or nil; taken says
	// whether it belongs to this SSOClient (or to the one it restores after Orphan).
	record *clientRecord
	taken  bool
	// recordSecret is the record as read from the cache, to skip writes that change nothing.
	recordSecret *corev1.Secret
	// migrating is set while a client issued before client records existed gets its first
	// record, from its status and the credentials Secret the operator wrote then.
	migrating *corev1.Secret
	clientID  string
	// fresh is set when the client gets a new client ID in this reconcile: its record is
	// written once, with the UID of the credentials Secret created for it.
	fresh bool
	// secret is the generated or brought client secret (confidential clients only).
	secret string
	// rotation is the rotation record written with the secret, and requests the request
	// annotation values acted on so far.
	rotation secretRecord
	requests map[string]string
	// credentialsUID is the UID of the credentials Secret the operator created for this
	// client, as recorded.
	credentialsUID types.UID
	// event, if set, is recorded once the record is written.
	event *clientEvent
	// admitted is set when the server admits the client; Accepted becomes True at the end
	// of the reconcile unless a later phase refused it, so that one reconcile never flips
	// the condition (and records an Event) twice.
	admitted, refused bool
	result            ctrl.Result
}

// refuse sets Accepted to False for this reconcile.
func (s *clientScope) refuse(reason, message string) {
	s.refused = true
	s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionFalse, reason, message)
}

type clientEvent struct{ eventType, reason, note string }

func (s *clientScope) requeueAfter(d time.Duration) {
	if d > 0 && (s.result.RequeueAfter == 0 || d < s.result.RequeueAfter) {
		s.result.RequeueAfter = d
	}
}

// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoclients,verbs=get;list;watch
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoclients/status,verbs=get;patch
// Its credentials Secret blocks the client's deletion; see ssoservers/finalizers.
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoclients/finalizers,verbs=update
// The operator deletes no Secret itself (the garbage collector deletes those it owns), but
// where owner references are enforced, adding or removing one on an existing Secret (a
// client switched to deletionPolicy Orphan, a record written over a Secret in its place)
// needs delete, which the garbage collector may then do.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one SSOClient to its desired state.
func (r *SSOClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, reterr error) {
	sc := &hallpassv1.SSOClient{}
	// A deleted client leaves nothing to clean up: the credentials Secret goes with its owner reference (Delete)
	// or stays (Orphan), the record stays for an Orphan restore, and the server
	// re-renders without the client.
	if live, err := getLive(ctx, r.Client, req.NamespacedName, sc); !live {
		return ctrl.Result{}, err
	}
	before := sc.DeepCopy()
	s := &clientScope{client: sc, conds: newConditionSetter(ctx, sc, r.Recorder)}
	defer func() {
		if s.admitted && !s.refused {
			s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
		}
		reportDeprecatedFields(s.conds, sc)
		s.conds.readyFrom(hallpassv1.SSOClientAccepted, hallpassv1.SSOClientCredentialsReady, hallpassv1.SSOClientConnectionsResolved, hallpassv1.SSOClientServed)
		if reterr == nil && awaitsFirstVerdict(before, sc, s.server) {
			// The render's verdict reconciles the client again; the requeue only looks
			// again at a server whose render may have stopped meanwhile.
			s.requeueAfter(firstVerdictRecheck)
			result = s.result
			return
		}
		reterr = patchStatus(ctx, r.Client, r.APIReader, before, s.conds, &sc.Status.ObservedGeneration, reterr)
	}()

	err := runPhases(ctx, s,
		r.reconcileAcceptance,
		r.reconcileClientID,
		r.reconcileClientSecret,
		r.reconcileRecord,
		r.reconcileCredentials,
		r.reconcileServed,
		r.reconcileConnections,
	)
	return s.result, err
}

// awaitsFirstVerdict reports whether the status a new client is about to get would only say
// that its server has not rendered it yet, while that server renders: every condition True
// but Served (and so Ready), which is Pending. Such a status is not written; the client's
// first status is the one its render's verdict brings, a few seconds later. At ten thousand
// new clients that first write was a sixth of the API server's work for them
// (docs/adr/0029). A client whose server does not render (ConfigRendered not True) shows
// Pending at once: its server is where the problem is.
func awaitsFirstVerdict(before, sc *hallpassv1.SSOClient, srv *hallpassv1.SSOServer) bool {
	if len(before.Status.Conditions) > 0 || srv == nil || !meta.IsStatusConditionTrue(srv.Status.Conditions, hallpassv1.SSOServerConfigRendered) {
		return false
	}
	if served := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.SSOClientServed); served == nil || served.Reason != hallpassv1.ReasonPending {
		return false
	}
	for _, c := range sc.Status.Conditions {
		if c.Status != metav1.ConditionTrue && c.Reason != hallpassv1.ReasonPending {
			return false
		}
	}
	return true
}

// firstVerdictRecheck is how long a new client waits for its render's verdict before it
// looks again whether its server still renders.
const firstVerdictRecheck = time.Minute

// reconcileAcceptance finds the server and asks it to admit the client.
func (r *SSOClientReconciler) reconcileAcceptance(ctx context.Context, s *clientScope) (bool, error) {
	ns, name := s.client.ServerKey()
	s.server = &hallpassv1.SSOServer{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s.server); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get SSOServer %s/%s: %w", ns, name, err)
		}
		s.refuse(hallpassv1.ReasonServerNotFound,
			fmt.Sprintf("SSOServer %s/%s does not exist (spec.serverRef)", ns, name))
		return false, nil
	}
	refused, err := admitClient(ctx, r.Client, s.server, s.client)
	if err != nil {
		return false, err
	}
	if refused != nil {
		s.refuse(refused.reason, refused.message)
		return false, nil
	}
	s.admitted = true
	return true, nil
}

// reconcileClientID settles the client ID from the client's record, the only source the
// operator trusts for it: nothing in the client's namespace decides which ID it gets. A
// record of an earlier SSOClient of the same namespace and name is taken over only when
// that one was deleted with deletionPolicy Orphan; otherwise the client starts afresh.
func (r *SSOClientReconciler) reconcileClientID(ctx context.Context, s *clientScope) (bool, error) {
	sc := s.client
	var existing corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: recordNameOf(s.server, sc)}, &existing)
	switch {
	case err == nil:
		s.record, s.recordSecret = readClientRecord(&existing), &existing
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("get client record: %w", err)
	}
	switch rec := s.record; {
	case rec != nil && !rec.isRecordOf(sc):
		// Two names with the same 80-bit hash prefix, or a record edited by hand.
		s.refuse(hallpassv1.ReasonDuplicateClientID,
			fmt.Sprintf("the record Secret %s/%s holds SSOClient %s/%s; ask the platform team to remove it", existing.Namespace, existing.Name, rec.namespace, rec.name))
		return false, nil
	case rec != nil && (rec.uid == sc.UID || rec.deletionPolicy == hallpassv1.DeletionPolicyOrphan):
		s.taken, s.clientID, s.credentialsUID = true, rec.clientID, rec.credentialsUID
	case rec == nil && sc.Status.ClientID != "":
		return r.migrate(ctx, s)
	default:
		id, err := config.RandomToken(clientIDBytes)
		if err != nil {
			return false, fmt.Errorf("generate client ID: %w", err)
		}
		s.clientID, s.fresh = id, true
		return true, nil
	}
	if !config.ValidClientID(s.clientID) {
		s.refuse(hallpassv1.ReasonDuplicateClientID,
			fmt.Sprintf("the record Secret %s/%s holds a client_id Hallpass does not issue; ask the platform team to remove it", existing.Namespace, existing.Name))
		return false, nil
	}
	return r.uniqueClientID(s)
}

// migrate gives a client issued before client records existed its first record. Its client
// ID comes from its status, which only the operator writes, and only if no record and no
// other SSOClient of the server claims it: an ID two clients claim (the takeover the records
// close) is given to neither, and the platform team decides. The client secret and its
// rotation record come from the credentials Secret the operator wrote then, which only
// decides this client's own secret, as clientSecretRef does (docs/adr/0013).
func (r *SSOClientReconciler) migrate(ctx context.Context, s *clientScope) (bool, error) {
	sc := s.client
	s.clientID = sc.Status.ClientID
	// A scan of the server's clients: a migration is rare, and an index of every client's
	// ID would be held all the time for it.
	others, err := r.clients.of(s.server.Namespace, s.server.Name)
	if err != nil {
		return false, err
	}
	for _, other := range others {
		if other.Status.ClientID == s.clientID && other.UID != sc.UID {
			s.refuse(hallpassv1.ReasonDuplicateClientID,
				fmt.Sprintf("SSOClient %s/%s claims the same client ID; neither gets it until the platform team deletes the wrong one", other.Namespace, other.Name))
			return false, nil
		}
	}
	if ok, err := r.uniqueClientID(s); !ok || err != nil {
		return ok, err
	}
	var creds corev1.Secret
	err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: sc.CredentialsSecretName()}, &creds)
	if client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("get credentials Secret: %w", err)
	}
	if err == nil && writtenByEarlierOperator(&creds, sc) {
		if id, _ := storedCredentials(&creds, sc); id == s.clientID {
			s.migrating, s.credentialsUID = &creds, creds.UID
		}
	}
	return true, nil
}

// writtenByEarlierOperator reports whether a credentials Secret looks like one an operator
// without client records wrote for sc. A tenant can forge this; it is trusted only for the
// tenant's own client, and only once, when the first record is written.
func writtenByEarlierOperator(creds *corev1.Secret, sc *hallpassv1.SSOClient) bool {
	if creds.Labels[hallpassv1.LabelManagedBy] != hallpassv1.ManagedByValue || creds.Labels[hallpassv1.LabelClient] != sc.Name {
		return false
	}
	if sc.Spec.DeletionPolicy == hallpassv1.DeletionPolicyOrphan {
		return metav1.GetControllerOf(creds) == nil
	}
	owner := metav1.GetControllerOf(creds)
	return owner != nil && owner.UID == sc.UID
}

// uniqueClientID refuses a client whose ID another record of the server holds. Records are
// written only by the operator and IDs are random, so this guards against records edited or
// restored by hand.
func (r *SSOClientReconciler) uniqueClientID(s *clientScope) (bool, error) {
	records, err := r.records.holding(s.server.Namespace, s.server.Name, s.clientID)
	if err != nil {
		return false, err
	}
	for _, record := range records {
		other := readClientRecord(record)
		if !other.isRecordOf(s.client) {
			s.refuse(hallpassv1.ReasonDuplicateClientID,
				fmt.Sprintf("SSOClient %s/%s already has this client ID", other.namespace, other.name))
			return false, nil
		}
	}
	return true, nil
}

// reconcileClientSecret settles the secret the client should have, and the previous one the
// server still accepts: the brought one, else the one recorded (replaced when a rotation is
// requested or due), else a new random one.
func (r *SSOClientReconciler) reconcileClientSecret(ctx context.Context, s *clientScope) (bool, error) {
	if s.client.Spec.Type.Public() {
		return true, nil
	}
	c := r.secretChangeOf(s)
	if ref := s.client.Spec.Credentials; ref != nil && ref.ClientSecretRef != nil {
		return r.broughtClientSecret(ctx, c, ref.ClientSecretRef)
	}
	return c.generatedClientSecret()
}

// secretChange is what settling a client's secret starts from: the secret recorded so far,
// the rotation and revocation requests not yet acted on, and the rotation policy.
type secretChange struct {
	s                    *clientScope
	now                  time.Time
	overlap, interval    time.Duration
	current              string
	exists               bool
	rotateReq, revokeReq string
	rotate, revoke       bool
}

// secretChangeOf reads the recorded secret and rotation of the client (from the record, or
// from the credentials Secret it migrates from) and the requests on its annotations.
func (r *SSOClientReconciler) secretChangeOf(s *clientScope) *secretChange {
	sc := s.client
	c := &secretChange{s: s, now: r.Now()}
	c.overlap, c.interval = rotationPolicy(sc)
	var recorded map[string]string
	switch {
	case s.migrating != nil:
		recorded = s.migrating.Annotations
		_, c.current = storedCredentials(s.migrating, sc)
		s.rotation = readSecretRecord(recorded, s.migrating.CreationTimestamp.Time, c.now)
	case s.taken:
		recorded, c.current = s.record.annotations, s.record.secret
		s.rotation = readSecretRecord(recorded, c.now, c.now)
	}
	s.requests = map[string]string{
		annotationRotationRequest:   recorded[annotationRotationRequest],
		annotationRevocationRequest: recorded[annotationRevocationRequest],
	}
	c.exists = recorded != nil
	c.rotateReq, c.rotate = pendingRequest(sc, hallpassv1.AnnotationRotateClientSecret, recorded, annotationRotationRequest)
	c.revokeReq, c.revoke = pendingRequest(sc, hallpassv1.AnnotationRevokeClientSecret, recorded, annotationRevocationRequest)
	return c
}

// settle records the requests acted on, so that each is acted on once.
func (c *secretChange) settle() {
	for k, v := range map[string]string{annotationRotationRequest: c.rotateReq, annotationRevocationRequest: c.revokeReq} {
		if v != "" {
			c.s.requests[k] = v
		}
	}
}

// replace makes next the current secret; with keepPrevious the server accepts the one it
// replaces for the overlap.
func (c *secretChange) replace(next string, keepPrevious bool) {
	rot := &c.s.rotation
	rot.previous, rot.until = "", time.Time{}
	if keepPrevious && len(c.current) >= minClientSecretLength {
		rot.previous, rot.until = digest.Of(c.current), c.now.Add(c.overlap)
	}
	rot.rotatedAt = c.now
	c.s.secret = next
}

// broughtClientSecret takes the secret from the team's own Secret: a changed value is a
// rotation (the previous one accepted for the overlap), and a revocation request ends the
// overlap at once.
func (r *SSOClientReconciler) broughtClientSecret(ctx context.Context, c *secretChange, ref *hallpassv1.SecretKeyReference) (bool, error) {
	s, now := c.s, c.now
	var byo corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.client.Namespace, Name: ref.Name}, &byo)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get Secret %s: %w", ref.Name, err)
	}
	value, ok := byo.Data[ref.Key]
	switch {
	case !ok:
		s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionFalse, hallpassv1.ReasonSecretNotFound,
			fmt.Sprintf("spec.credentials.clientSecretRef: Secret %q has no key %q (or does not exist)", ref.Name, ref.Key))
		return false, nil
	case len(value) < minClientSecretLength:
		s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret,
			fmt.Sprintf("spec.credentials.clientSecretRef: the secret in Secret %q key %q is shorter than %d characters", ref.Name, ref.Key, minClientSecretLength))
		return false, nil
	}
	s.secret = string(value)
	switch {
	case c.revoke && c.exists:
		s.rotation.previous, s.rotation.until = "", time.Time{}
		if c.current != "" && c.current != s.secret {
			s.rotation.rotatedAt = now
		}
		s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRevoked,
			fmt.Sprintf("on request %q (annotation %s) the server accepts only the secret of spec.credentials.clientSecretRef", c.revokeReq, hallpassv1.AnnotationRevokeClientSecret)}
	case c.current != "" && c.current != s.secret:
		c.replace(s.secret, true)
		s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretChanged,
			fmt.Sprintf("the secret in Secret %q key %q changed; the previous one is accepted until %s", ref.Name, ref.Key, s.rotation.until.UTC().Format(time.RFC3339))}
	case c.rotate && c.exists:
		s.event = &clientEvent{corev1.EventTypeWarning, hallpassv1.ReasonRotationIgnored,
			fmt.Sprintf("annotation %s: the client secret comes from spec.credentials.clientSecretRef; change the value in Secret %q to rotate it", hallpassv1.AnnotationRotateClientSecret, ref.Name)}
	}
	if s.rotation.rotatedAt.IsZero() {
		s.rotation.rotatedAt = now
	}
	c.settle()
	if s.rotation.previous != "" {
		s.requeueAfter(s.rotation.until.Sub(now))
	}
	return true, nil
}

// generatedClientSecret keeps the recorded secret, or writes a new random one when there is
// none, when a rotation is requested or due (keeping the previous one for the overlap), or
// when a revocation is requested (ending the previous one at once).
func (c *secretChange) generatedClientSecret() (bool, error) {
	s, now := c.s, c.now
	due := c.interval > 0 && !now.Before(s.rotation.rotatedAt.Add(c.interval))
	if len(c.current) < minClientSecretLength || c.revoke || c.rotate || due {
		next, err := config.RandomToken(clientSecretBytes)
		if err != nil {
			return false, fmt.Errorf("generate client secret: %w", err)
		}
		switch {
		case len(c.current) < minClientSecretLength:
			c.replace(next, false)
		case c.revoke:
			c.replace(next, false)
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRevoked,
				fmt.Sprintf("on request %q (annotation %s) a new client secret was written and the previous one is no longer accepted", c.revokeReq, hallpassv1.AnnotationRevokeClientSecret)}
		default:
			c.replace(next, true)
			why := "spec.credentials.rotation.interval"
			if c.rotate {
				why = fmt.Sprintf("request %q (annotation %s)", c.rotateReq, hallpassv1.AnnotationRotateClientSecret)
			}
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRotated,
				fmt.Sprintf("a new client secret was written on %s; the previous one is accepted until %s", why, s.rotation.until.UTC().Format(time.RFC3339))}
		}
		c.settle()
	} else {
		s.secret = c.current
	}
	if s.rotation.previous != "" {
		s.requeueAfter(s.rotation.until.Sub(now))
	}
	if c.interval > 0 {
		s.requeueAfter(s.rotation.rotatedAt.Add(c.interval).Sub(now))
	}
	return true, nil
}

// reconcileRecord writes the client's record: client ID, secret, rotation record and the
// request values acted on, in one write, so they cannot disagree. It is written before the
// credentials Secret, which is only ever a copy of it.
func (r *SSOClientReconciler) reconcileRecord(ctx context.Context, s *clientScope) (bool, error) {
	if s.fresh && s.credentialsUID == "" {
		// A new client's record is written once, by reconcileCredentials, when its
		// credentials Secret exists: the record holds that Secret's UID, and the server
		// serves no client whose record lacks it. Until then nothing holds the new
		// credentials, and a reconcile that stops here starts afresh.
		return true, nil
	}
	annotations := map[string]string{annotationRecordCredentialsUID: string(s.credentialsUID)}
	if s.secret != "" {
		maps.Copy(annotations, s.rotation.annotations())
		maps.Copy(annotations, s.requests)
	}
	record := desiredClientRecord(s.server, s.client, s.clientID, s.secret, annotations)
	if !appliedAlready(s.recordSecret, record, verdictAnnotations...) {
		if err := r.writeRecord(ctx, s.recordSecret, record); err != nil {
			return false, fmt.Errorf("write client record %s: %w", *record.Name, err)
		}
	}
	if e := s.event; e != nil {
		r.Recorder.Eventf(s.client, nil, e.eventType, e.reason, "RotateClientSecret", "%s", e.note)
		s.event = nil
	}
	return true, nil
}

// writeRecord writes the record as desired over cached, the record as the cache holds it
// (nil when it holds none). A new record is created: a create costs the API server half of
// a server-side apply, and every new client writes one (bench/apiwrites). So a record is
// changed with an update of all it holds, never an apply, which could not remove what the
// create wrote (a create's fields are not the apply's). When the cache lags the record, the
// update is of the record as the API server has it; like the apply with force it replaced,
// that also takes over a Secret of the record's name that the cache does not hold.
func (r *SSOClientReconciler) writeRecord(ctx context.Context, cached *corev1.Secret, desired *corev1ac.SecretApplyConfiguration) error {
	var err error
	if cached == nil {
		err = r.Create(ctx, secretFrom(desired), fieldOwner)
	} else {
		err = r.Update(ctx, recordUpdate(cached, desired), fieldOwner)
	}
	if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
		return err
	}
	var live corev1.Secret
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: *desired.Namespace, Name: *desired.Name}, &live); err != nil {
		return err
	}
	return r.Update(ctx, recordUpdate(&live, desired), fieldOwner)
}

// recordUpdate is existing made the record desired. A record is the operator's alone: its
// data, annotations and owner are exactly the desired ones (with the verdicts operators
// before ADR 0030 wrote, which a record keeps); others' labels stay beside its own.
func recordUpdate(existing *corev1.Secret, desired *corev1ac.SecretApplyConfiguration) *corev1.Secret {
	out := existing.DeepCopy()
	out.Labels = mergeMaps(out.Labels, desired.Labels)
	out.Annotations = maps.Clone(desired.Annotations)
	for _, k := range verdictAnnotations {
		if v, ok := existing.Annotations[k]; ok {
			out.Annotations[k] = v
		}
	}
	out.OwnerReferences = ownerReferences(desired)
	out.Data = maps.Clone(desired.Data)
	return out
}

// reconcileCredentials writes the credentials Secret, an output only: it is written from the
// record and never read back. A Secret of that name that the operator did not create for
// this client is left alone and reported.
func (r *SSOClientReconciler) reconcileCredentials(ctx context.Context, s *clientScope) (bool, error) {
	sc := s.client
	name := sc.CredentialsSecretName()
	existing := &corev1.Secret{}
	// The Secret the operator created for this client, unchanged in the cache, needs no
	// write: a Secret's name is unique, so no user's Secret can hide behind it.
	desired := r.credentialsApply(s, name)
	err := r.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: name}, existing)
	if err == nil && s.credentialsUID != "" && existing.UID == s.credentialsUID && appliedAlready(existing, desired, annotationRecordUID) {
		r.credentialsReady(s, name)
		return true, nil
	}
	if apierrors.IsNotFound(err) {
		// None that the operator manages; most often a new client's. A create (never an
		// apply) cannot take over a user's Secret of that name, and answers with the UID.
		created, err := r.createCredentials(ctx, sc, desired)
		switch {
		case err == nil:
			return r.recordCredentials(ctx, s, created.UID, name)
		case !apierrors.IsAlreadyExists(err):
			return false, fmt.Errorf("create credentials Secret %s: %w", name, err)
		}
	}
	// The cache only holds Secrets the operator manages, and a user's Secret of the same
	// name must be found so it is never taken over.
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: name}, existing); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get credentials Secret %s: %w", name, err)
		}
		// Gone since the cache saw it.
		created, err := r.createCredentials(ctx, sc, desired)
		if err != nil {
			return false, fmt.Errorf("create credentials Secret %s: %w", name, err)
		}
		return r.recordCredentials(ctx, s, created.UID, name)
	}
	if !s.isCredentialsSecret(existing) {
		s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionFalse, hallpassv1.ReasonSecretConflict,
			fmt.Sprintf("Secret %s exists and was not written by Hallpass for this SSOClient; delete it, or choose another spec.credentials.secretName", name))
		return false, nil
	}
	if !appliedAlready(existing, desired, annotationRecordUID) {
		if err := r.Update(ctx, credentialsUpdate(existing, desired, sc), fieldOwner); err != nil {
			return false, fmt.Errorf("update credentials Secret %s: %w", name, err)
		}
	}
	if existing.UID != s.credentialsUID {
		// Recognised: record it as this client's, so that a Secret put in its place later
		// is not.
		return r.recordCredentials(ctx, s, existing.UID, name)
	}
	r.credentialsReady(s, name)
	return true, nil
}

// recordCredentials records uid as that of this client's credentials Secret and reports it.
func (r *SSOClientReconciler) recordCredentials(ctx context.Context, s *clientScope, uid types.UID, name string) (bool, error) {
	s.credentialsUID = uid
	if ok, err := r.reconcileRecord(ctx, s); !ok || err != nil {
		return ok, err
	}
	r.credentialsReady(s, name)
	return true, nil
}

// createCredentials creates the credentials Secret as desired, annotated with the UID of the
// SSOClient it is created for; it fails if one of that name exists.
func (r *SSOClientReconciler) createCredentials(ctx context.Context, sc *hallpassv1.SSOClient, desired *corev1ac.SecretApplyConfiguration) (*corev1.Secret, error) {
	secret := secretFrom(desired)
	secret.Annotations = mergeMaps(secret.Annotations, map[string]string{annotationRecordUID: string(sc.UID)})
	if err := r.Create(ctx, secret, fieldOwner); err != nil {
		return nil, err
	}
	return secret, nil
}

// credentialsUpdate is existing as the operator writes it: its data replaced by the
// desired data (keys it wrote under names no longer configured go), the desired labels,
// annotations and owner reference set, and everything else left as others wrote it. An
// update rather than an apply: the Secret is created with a create, which cannot take a
// user's Secret over, and the fields of a create are not the apply's to remove (renamed keys
// and the owner reference of a client switched to Orphan would stay).
func credentialsUpdate(existing *corev1.Secret, desired *corev1ac.SecretApplyConfiguration, sc *hallpassv1.SSOClient) *corev1.Secret {
	out := existing.DeepCopy()
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	oldID, oldSecret, ok := strings.Cut(existing.Annotations[annotationCredentialKeys], ",")
	if !ok {
		oldID, oldSecret = hallpassv1.DefaultClientIDKey, hallpassv1.DefaultClientSecretKey
	}
	delete(out.Data, oldID)
	delete(out.Data, oldSecret)
	if _, secretKey := sc.CredentialKeyNames(); desired.Data[secretKey] == nil {
		delete(out.Data, secretKey)
	}
	maps.Copy(out.Data, desired.Data)
	out.Labels = mergeMaps(out.Labels, desired.Labels)
	out.Annotations = mergeMaps(out.Annotations, desired.Annotations)
	out.OwnerReferences = slices.DeleteFunc(out.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == sc.UID })
	out.OwnerReferences = append(out.OwnerReferences, ownerReferences(desired)...)
	return out
}

func mergeMaps(into, from map[string]string) map[string]string {
	if into == nil {
		into = map[string]string{}
	}
	maps.Copy(into, from)
	return into
}

// secretFrom is the Secret desired describes, to create.
func secretFrom(desired *corev1ac.SecretApplyConfiguration) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: *desired.Namespace, Name: *desired.Name,
			Labels: maps.Clone(desired.Labels), Annotations: maps.Clone(desired.Annotations), OwnerReferences: ownerReferences(desired),
		},
		Type: *desired.Type,
		Data: maps.Clone(desired.Data),
	}
}

func ownerReferences(desired *corev1ac.SecretApplyConfiguration) []metav1.OwnerReference {
	var refs []metav1.OwnerReference
	for _, o := range desired.OwnerReferences {
		refs = append(refs, metav1.OwnerReference{
			APIVersion: *o.APIVersion, Kind: *o.Kind, Name: *o.Name, UID: *o.UID, Controller: o.Controller, BlockOwnerDeletion: o.BlockOwnerDeletion,
		})
	}
	return refs
}

// credentialsReady reports the credentials Secret in status and CredentialsReady.
func (r *SSOClientReconciler) credentialsReady(s *clientScope, name string) {
	sc := s.client
	sc.Status.ClientID = s.clientID
	sc.Status.CredentialsSecret = name
	message := fmt.Sprintf("credentials are in Secret %s", name)
	if !sc.Spec.Type.Public() {
		sc.Status.ClientSecret = clientSecretStatus(s.rotation, s.requests)
		if s.rotation.previous != "" {
			message += fmt.Sprintf("; the previous client secret is accepted until %s", s.rotation.until.UTC().Format(time.RFC3339))
		}
	}
	s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, message)
}

// isCredentialsSecret reports whether an existing Secret is this client's credentials
// Secret: the one the operator recorded creating; one under Hallpass's labels created for
// this very SSOClient (its UID annotated) whose record was not written after it (an
// interrupted first reconcile); or one that already holds exactly this client's ID under
// Hallpass's labels (what a reconcile still in flight for a deleted SSOClient of the same
// name may have written). None lets a Secret decide an ID: the second is overwritten with
// the record's, and the third only recognises the ID the record already holds.
func (s *clientScope) isCredentialsSecret(existing *corev1.Secret) bool {
	if s.credentialsUID != "" && existing.UID == s.credentialsUID {
		return true
	}
	if existing.Labels[hallpassv1.LabelManagedBy] != hallpassv1.ManagedByValue || existing.Labels[hallpassv1.LabelClient] != s.client.Name {
		return false
	}
	if s.fresh && existing.Annotations[annotationRecordUID] == string(s.client.UID) {
		return true
	}
	id, _ := storedCredentials(existing, s.client)
	return id == s.clientID
}

// credentialsApply is the credentials Secret as the operator writes it.
func (r *SSOClientReconciler) credentialsApply(s *clientScope, name string) *corev1ac.SecretApplyConfiguration {
	sc := s.client
	idKey, secretKey := sc.CredentialKeyNames()
	data := map[string][]byte{
		idKey:                   []byte(s.clientID),
		CredentialsIssuer:       []byte(s.server.Spec.Issuer),
		CredentialsDiscoveryURL: []byte(discoveryURL(s.server.Spec.Issuer)),
	}
	if s.secret != "" {
		data[secretKey] = []byte(s.secret)
	}
	secret := corev1ac.Secret(name, sc.Namespace).
		WithLabels(map[string]string{
			hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue,
			hallpassv1.LabelClient:    sc.Name,
		}).
		WithType(corev1.SecretTypeOpaque).
		WithData(data).
		WithAnnotations(map[string]string{annotationCredentialKeys: idKey + "," + secretKey})
	// With Orphan the Secret has no owner, so it outlives the SSOClient; switching the policy
	// back and forth adds and removes the reference because this apply owns the field.
	if sc.Spec.DeletionPolicy != hallpassv1.DeletionPolicyOrphan {
		secret.WithOwnerReferences(ownerReference(sc, hallpassv1.GroupVersion.WithKind("SSOClient").Kind))
	}
	return secret
}

// reconcileServed reports what the server did with the client: a client its last render
// left out (over its namespace's budget, say) is not Accepted, and a client is Served, and so
// Ready, only once the server's pods report applying a config that serves its current
// generation (docs/adr/0021). Until the server's first render since the operator started,
// a client keeps the Served condition it had for its generation.
func (r *SSOClientReconciler) reconcileServed(_ context.Context, s *clientScope) (bool, error) {
	sc, srv := s.client, s.server
	v, found, rendered := r.verdicts.of(client.ObjectKeyFromObject(srv), sc.UID)
	if !rendered {
		if c := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.SSOClientServed); c != nil && c.ObservedGeneration == sc.Generation {
			if c.Status == metav1.ConditionFalse && c.Reason != hallpassv1.ReasonWaitingForServer {
				s.refused = true // still left out, as the last render said
			}
			return true, nil
		}
	}
	switch {
	case found && !v.served():
		s.refuse(v.leftOutReason, v.leftOutMessage)
		s.conds.set(hallpassv1.SSOClientServed, metav1.ConditionFalse, v.leftOutReason, v.leftOutMessage)
	case !found || v.generation != sc.Generation:
		s.conds.set(hallpassv1.SSOClientServed, metav1.ConditionUnknown, hallpassv1.ReasonPending,
			fmt.Sprintf("waiting for SSOServer %s/%s to render generation %d of this client into its config", srv.Namespace, srv.Name, sc.Generation))
	case srv.Status.AppliedConfigRevision < v.revision:
		s.conds.set(hallpassv1.SSOClientServed, metav1.ConditionFalse, hallpassv1.ReasonWaitingForServer,
			fmt.Sprintf("SSOServer %s/%s renders generation %d of this client into config revision %d; waiting for its server pods to apply it (they serve revision %d)",
				srv.Namespace, srv.Name, sc.Generation, v.revision, srv.Status.AppliedConfigRevision))
	default:
		s.conds.set(hallpassv1.SSOClientServed, metav1.ConditionTrue, hallpassv1.ReasonReconciled,
			fmt.Sprintf("the server pods of SSOServer %s/%s serve this client", srv.Namespace, srv.Name))
	}
	return true, nil
}

// reconcileConnections checks that every connection the client names exists on its server
// and is ready.
func (r *SSOClientReconciler) reconcileConnections(ctx context.Context, s *clientScope) (bool, error) {
	var missing, notReady []string
	for _, name := range s.client.Spec.Connections {
		var conn hallpassv1.IdentityConnection
		err := r.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: name}, &conn)
		switch {
		case apierrors.IsNotFound(err) || (err == nil && conn.Spec.ServerRef.Name != s.server.Name):
			missing = append(missing, name)
		case err != nil:
			return false, fmt.Errorf("get IdentityConnection %s: %w", name, err)
		case !meta.IsStatusConditionTrue(conn.Status.Conditions, hallpassv1.ConditionReady):
			notReady = append(notReady, name)
		}
	}
	switch {
	case len(missing) > 0:
		s.conds.set(hallpassv1.SSOClientConnectionsResolved, metav1.ConditionFalse, hallpassv1.ReasonConnectionNotFound,
			fmt.Sprintf("spec.connections: SSOServer %s/%s has no IdentityConnection %s", s.server.Namespace, s.server.Name, strings.Join(missing, ", ")))
	case len(notReady) > 0:
		s.conds.set(hallpassv1.SSOClientConnectionsResolved, metav1.ConditionFalse, hallpassv1.ReasonConnectionNotReady,
			fmt.Sprintf("spec.connections: IdentityConnection %s is not ready", strings.Join(notReady, ", ")))
	default:
		s.conds.set(hallpassv1.SSOClientConnectionsResolved, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
	}
	return true, nil
}

func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

func ownerReference(obj client.Object, kind string) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(hallpassv1.GroupVersion.String()).
		WithKind(kind).
		WithName(obj.GetName()).
		WithUID(obj.GetUID()).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
