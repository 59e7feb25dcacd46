package controllers

import (
	"context"
	"fmt"
	"maps"
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
	// APIReader reads objects the cache does not hold: Secrets the operator does not manage.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Now is the clock for client secret rotation; tests move it.
	Now func() time.Time
}

type clientScope struct {
	client *hallpassv1.SSOClient
	server *hallpassv1.SSOServer
	conds  conditionSetter
	// secret is the generated or brought client secret (confidential clients only).
	secret string
	// issuedTo is the UID of the client the client ID was generated for.
	issuedTo types.UID
	// record is the rotation record written with the secret, and requests the request
	// annotation values acted on so far.
	record   secretRecord
	requests map[string]string
	// event, if set, is recorded once the credentials Secret is written.
	event  *clientEvent
	result ctrl.Result
}

type clientEvent struct{ eventType, reason, note string }

func (s *clientScope) requeueAfter(d time.Duration) {
	if d > 0 && (s.result.RequeueAfter == 0 || d < s.result.RequeueAfter) {
		s.result.RequeueAfter = d
	}
}

// annotationIssuedTo records on a credentials Secret the UID of the SSOClient its client ID
// was generated for, which settles who keeps an ID that two clients present.
const annotationIssuedTo = "sso.hallpass.dev/issued-to"

// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoclients,verbs=get;list;watch
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoclients/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one SSOClient to its desired state.
func (r *SSOClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	sc := &hallpassv1.SSOClient{}
	if err := r.Get(ctx, req.NamespacedName, sc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !sc.DeletionTimestamp.IsZero() {
		// Nothing to clean up: the credentials Secret goes with its owner reference (Delete)
		// or stays (Orphan), and the server re-renders without the client.
		return ctrl.Result{}, nil
	}
	before := sc.DeepCopy()
	s := &clientScope{client: sc, conds: conditionSetter{obj: sc, conditions: &sc.Status.Conditions, recorder: r.Recorder, log: ctrl.LoggerFrom(ctx)}}
	defer func() {
		reportDeprecatedFields(s.conds, sc)
		s.conds.readyFrom(hallpassv1.SSOClientAccepted, hallpassv1.SSOClientCredentialsReady, hallpassv1.SSOClientConnectionsResolved)
		reterr = patchStatus(ctx, r.Client, sc, before, &sc.Status.ObservedGeneration, reterr)
	}()

	for _, phase := range []func(context.Context, *clientScope) (bool, error){
		r.reconcileAcceptance,
		r.reconcileCredentials,
		r.reconcileUniqueness,
		r.reconcileConnections,
	} {
		if proceed, err := phase(ctx, s); err != nil || !proceed {
			return s.result, err
		}
	}
	return s.result, nil
}

// reconcileAcceptance finds the server and asks it to admit the client.
func (r *SSOClientReconciler) reconcileAcceptance(ctx context.Context, s *clientScope) (bool, error) {
	ns, name := s.client.ServerKey()
	s.server = &hallpassv1.SSOServer{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s.server); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get SSOServer %s/%s: %w", ns, name, err)
		}
		s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionFalse, hallpassv1.ReasonServerNotFound,
			fmt.Sprintf("SSOServer %s/%s does not exist (spec.serverRef)", ns, name))
		return false, nil
	}
	refused, err := admitClient(ctx, r.Client, s.server, s.client)
	if err != nil {
		return false, err
	}
	if refused != nil {
		s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionFalse, refused.reason, refused.message)
		return false, nil
	}
	s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
	return true, nil
}

// reconcileCredentials settles the client ID and secret and writes the credentials Secret.
// The Secret is the durable record: an ID or secret once written there is never replaced,
// so restarting the operator or losing the status changes nothing for the application.
func (r *SSOClientReconciler) reconcileCredentials(ctx context.Context, s *clientScope) (bool, error) {
	sc := s.client
	name := sc.CredentialsSecretName()
	existing := &corev1.Secret{}
	// The cache only holds Secrets the operator manages, and a user's Secret of the same
	// name must be found so it is never taken over.
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: name}, existing); err != nil {
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get credentials Secret %s: %w", name, err)
		}
		existing = nil
	}
	if msg := secretConflict(existing, sc); msg != "" {
		s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionFalse, hallpassv1.ReasonSecretConflict, msg)
		return false, nil
	}

	clientID := sc.Status.ClientID
	if existing != nil {
		if clientID == "" {
			clientID, _ = storedCredentials(existing, sc)
		}
		s.issuedTo = types.UID(existing.Annotations[annotationIssuedTo])
	}
	if clientID != "" && !config.ValidClientID(clientID) {
		s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionFalse, hallpassv1.ReasonSecretConflict,
			fmt.Sprintf("Secret %s holds a client_id Hallpass does not issue (1 to 128 letters, digits, '-' or '_'); delete the Secret for a new one", name))
		return false, nil
	}
	if clientID == "" {
		var err error
		if clientID, err = config.RandomToken(clientIDBytes); err != nil {
			return false, fmt.Errorf("generate client ID: %w", err)
		}
		s.issuedTo = sc.UID
	}

	if !sc.Spec.Type.Public() {
		if ok, err := r.clientSecret(ctx, s, existing); err != nil || !ok {
			return false, err
		}
	}

	if err := r.applyCredentials(ctx, s, name, clientID); err != nil {
		return false, err
	}
	if e := s.event; e != nil {
		r.Recorder.Eventf(sc, nil, e.eventType, e.reason, "RotateClientSecret", "%s", e.note)
	}
	sc.Status.ClientID = clientID
	sc.Status.CredentialsSecret = name
	message := fmt.Sprintf("credentials are in Secret %s", name)
	if !sc.Spec.Type.Public() {
		sc.Status.ClientSecret = clientSecretStatus(s.record, s.requests)
		if s.record.previous != "" {
			message += fmt.Sprintf("; the previous client secret is accepted until %s", s.record.until.UTC().Format(time.RFC3339))
		}
	}
	s.conds.set(hallpassv1.SSOClientCredentialsReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, message)
	return true, nil
}

// secretConflict explains why an existing Secret cannot hold this client's credentials.
func secretConflict(existing *corev1.Secret, sc *hallpassv1.SSOClient) string {
	if existing == nil {
		return ""
	}
	if existing.Labels[hallpassv1.LabelManagedBy] != hallpassv1.ManagedByValue || existing.Labels[hallpassv1.LabelClient] != sc.Name {
		return fmt.Sprintf("Secret %s exists and does not hold credentials of this SSOClient; choose another spec.credentials.secretName", existing.Name)
	}
	if owner := metav1.GetControllerOf(existing); owner != nil && owner.UID != sc.UID {
		return fmt.Sprintf("Secret %s is owned by another SSOClient (uid %s)", existing.Name, owner.UID)
	}
	return ""
}

// clientSecret settles the secret the client should have, and the previous one the server
// still accepts: the brought one, else the one already written (replaced when a rotation is
// requested or due), else a new random one.
func (r *SSOClientReconciler) clientSecret(ctx context.Context, s *clientScope, existing *corev1.Secret) (bool, error) {
	sc := s.client
	now := r.Now()
	overlap, interval := rotationPolicy(sc)
	_, current := storedCredentials(existing, sc)
	recordOf := existing
	if recordOf == nil {
		recordOf = &corev1.Secret{}
	}
	s.record = readSecretRecord(existing, now)
	s.requests = map[string]string{
		annotationRotationRequest:   recordOf.Annotations[annotationRotationRequest],
		annotationRevocationRequest: recordOf.Annotations[annotationRevocationRequest],
	}
	rotateReq, rotate := pendingRequest(sc, hallpassv1.AnnotationRotateClientSecret, recordOf, annotationRotationRequest)
	revokeReq, revoke := pendingRequest(sc, hallpassv1.AnnotationRevokeClientSecret, recordOf, annotationRevocationRequest)
	settle := func() {
		for k, v := range map[string]string{annotationRotationRequest: rotateReq, annotationRevocationRequest: revokeReq} {
			if v != "" {
				s.requests[k] = v
			}
		}
	}
	// replace makes next the current secret; with keepPrevious the server accepts the one it
	// replaces for the overlap.
	replace := func(next string, keepPrevious bool) {
		s.record.previous, s.record.until = "", time.Time{}
		if keepPrevious && len(current) >= minClientSecretLength {
			s.record.previous, s.record.until = config.SecretDigest(current), now.Add(overlap)
		}
		s.record.rotatedAt = now
		s.secret = next
	}

	if sc.Spec.Credentials != nil && sc.Spec.Credentials.ClientSecretRef != nil {
		ref := sc.Spec.Credentials.ClientSecretRef
		var byo corev1.Secret
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.Namespace, Name: ref.Name}, &byo)
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
		case revoke && existing != nil:
			s.record.previous, s.record.until = "", time.Time{}
			if current != "" && current != s.secret {
				s.record.rotatedAt = now
			}
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRevoked,
				fmt.Sprintf("on request %q (annotation %s) the server accepts only the secret of spec.credentials.clientSecretRef", revokeReq, hallpassv1.AnnotationRevokeClientSecret)}
		case current != "" && current != s.secret:
			replace(s.secret, true)
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretChanged,
				fmt.Sprintf("the secret in Secret %q key %q changed; the previous one is accepted until %s", ref.Name, ref.Key, s.record.until.UTC().Format(time.RFC3339))}
		case rotate && existing != nil:
			s.event = &clientEvent{corev1.EventTypeWarning, hallpassv1.ReasonRotationIgnored,
				fmt.Sprintf("annotation %s: the client secret comes from spec.credentials.clientSecretRef; change the value in Secret %q to rotate it", hallpassv1.AnnotationRotateClientSecret, ref.Name)}
		}
		if s.record.rotatedAt.IsZero() {
			s.record.rotatedAt = now
		}
		settle()
		if s.record.previous != "" {
			s.requeueAfter(s.record.until.Sub(now))
		}
		return true, nil
	}

	due := interval > 0 && !now.Before(s.record.rotatedAt.Add(interval))
	if len(current) < minClientSecretLength || revoke || rotate || due {
		next, err := config.RandomToken(clientSecretBytes)
		if err != nil {
			return false, fmt.Errorf("generate client secret: %w", err)
		}
		switch {
		case len(current) < minClientSecretLength:
			replace(next, false)
		case revoke:
			replace(next, false)
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRevoked,
				fmt.Sprintf("on request %q (annotation %s) a new client secret was written and the previous one is no longer accepted", revokeReq, hallpassv1.AnnotationRevokeClientSecret)}
		default:
			replace(next, true)
			why := "spec.credentials.rotation.interval"
			if rotate {
				why = fmt.Sprintf("request %q (annotation %s)", rotateReq, hallpassv1.AnnotationRotateClientSecret)
			}
			s.event = &clientEvent{corev1.EventTypeNormal, hallpassv1.ReasonClientSecretRotated,
				fmt.Sprintf("a new client secret was written on %s; the previous one is accepted until %s", why, s.record.until.UTC().Format(time.RFC3339))}
		}
		settle()
	} else {
		s.secret = current
	}
	if s.record.previous != "" {
		s.requeueAfter(s.record.until.Sub(now))
	}
	if interval > 0 {
		s.requeueAfter(s.record.rotatedAt.Add(interval).Sub(now))
	}
	return true, nil
}

func (r *SSOClientReconciler) applyCredentials(ctx context.Context, s *clientScope, name, clientID string) error {
	sc := s.client
	idKey, secretKey := sc.CredentialKeyNames()
	data := map[string][]byte{
		idKey:                   []byte(clientID),
		CredentialsIssuer:       []byte(s.server.Spec.Issuer),
		CredentialsDiscoveryURL: []byte(discoveryURL(s.server.Spec.Issuer)),
	}
	annotations := map[string]string{annotationCredentialKeys: idKey + "," + secretKey}
	if s.secret != "" {
		data[secretKey] = []byte(s.secret)
		maps.Copy(annotations, s.record.annotations())
		for k, v := range s.requests {
			if v != "" {
				annotations[k] = v
			}
		}
	}
	if s.issuedTo != "" {
		annotations[annotationIssuedTo] = string(s.issuedTo)
	}
	secret := corev1ac.Secret(name, sc.Namespace).
		WithLabels(map[string]string{
			hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue,
			hallpassv1.LabelClient:    sc.Name,
		}).
		WithType(corev1.SecretTypeOpaque).
		WithData(data).
		WithAnnotations(annotations)
	// With Orphan the Secret has no owner, so it outlives the SSOClient; switching the policy
	// back and forth adds and removes the reference because this apply owns the field.
	if sc.Spec.DeletionPolicy != hallpassv1.DeletionPolicyOrphan {
		secret.WithOwnerReferences(ownerReference(sc, hallpassv1.GroupVersion.WithKind("SSOClient").Kind))
	}
	if err := r.Apply(ctx, secret, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply credentials Secret %s: %w", name, err)
	}
	return nil
}

// reconcileUniqueness refuses a client whose ID another client holds by better right. IDs
// are random, so this only happens when a credentials Secret was copied or adopted. The
// Secret records the client the ID was issued to; that client keeps it, and between two
// adopters the older one does.
func (r *SSOClientReconciler) reconcileUniqueness(ctx context.Context, s *clientScope) (bool, error) {
	if s.issuedTo == s.client.UID {
		return true, nil
	}
	var same hallpassv1.SSOClientList
	if err := r.List(ctx, &same, client.MatchingFields{indexClientID: s.client.Status.ClientID}); err != nil {
		return false, fmt.Errorf("list SSOClients with the same client ID: %w", err)
	}
	for i := range same.Items {
		other := &same.Items[i]
		if other.UID == s.client.UID {
			continue
		}
		var creds corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: other.Namespace, Name: other.CredentialsSecretName()}, &creds)
		if client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("get credentials of SSOClient %s/%s: %w", other.Namespace, other.Name, err)
		}
		if types.UID(creds.Annotations[annotationIssuedTo]) == other.UID || olderThan(other, s.client) {
			s.conds.set(hallpassv1.SSOClientAccepted, metav1.ConditionFalse, hallpassv1.ReasonDuplicateClientID,
				fmt.Sprintf("SSOClient %s/%s already has this client ID; delete Secret %s so that a new ID is generated",
					other.Namespace, other.Name, s.client.CredentialsSecretName()))
			return false, nil
		}
	}
	return true, nil
}

func olderThan(a, b *hallpassv1.SSOClient) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return key(a.Namespace, a.Name) < key(b.Namespace, b.Name)
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
