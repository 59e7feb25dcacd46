package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/render"
)

// IdentityConnectionReconciler resolves the Secret references of IdentityConnections and
// reports whether they can be served.
type IdentityConnectionReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold (the Secrets a connection references)
	// or holds an older copy of.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Now is the clock of health checks.
	Now func() time.Time

	clients serverClients
}

// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=identityconnections,verbs=get;list;watch
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=identityconnections/status,verbs=get;patch
// Its SAML service provider Secret blocks the connection's deletion; see ssoservers/finalizers.
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=identityconnections/finalizers,verbs=update

// connectionScope is what the phases of one IdentityConnection reconcile share.
type connectionScope struct {
	conn  *hallpassv1.IdentityConnection
	conds *conditionSetter
	// noServer, when set, is why the connection has no server to be served by.
	noServer *refusal
	// rendered is the connection as the server would serve it, once its credentials resolve.
	rendered config.Connection
	result   ctrl.Result
}

// Reconcile brings one IdentityConnection's status up to date.
func (r *IdentityConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	conn := &hallpassv1.IdentityConnection{}
	if live, err := getLive(ctx, r.Client, req.NamespacedName, conn); !live {
		return ctrl.Result{}, err
	}
	before := conn.DeepCopy()
	s := &connectionScope{conn: conn, conds: newConditionSetter(ctx, conn, r.Recorder)}
	defer func() {
		if s.noServer != nil {
			s.conds.set(hallpassv1.ConditionReady, metav1.ConditionFalse, s.noServer.reason, s.noServer.message)
		} else {
			s.conds.readyFrom(hallpassv1.IdentityConnectionCredentialsResolved)
		}
		reterr = patchStatus(ctx, r.Client, r.APIReader, before, s.conds, &conn.Status.ObservedGeneration, reterr)
	}()

	err := runPhases(ctx, s,
		r.reconcileServer,
		r.reconcileSAMLServiceProvider,
		r.reconcileCredentials,
		r.reconcileReachability,
	)
	return s.result, err
}

// reconcileServer checks the server exists and counts the accepted clients that may use
// this connection. Without a server the connection's credentials are still checked, so
// that it is ready to serve when the server comes.
func (r *IdentityConnectionReconciler) reconcileServer(ctx context.Context, s *connectionScope) (bool, error) {
	conn := s.conn
	var server hallpassv1.SSOServer
	err := r.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: conn.Spec.ServerRef.Name}, &server)
	if apierrors.IsNotFound(err) {
		conn.Status.Clients = 0
		s.noServer = &refusal{hallpassv1.ReasonServerNotFound,
			fmt.Sprintf("SSOServer %s/%s does not exist (spec.serverRef)", conn.Namespace, conn.Spec.ServerRef.Name)}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get SSOServer %s: %w", conn.Spec.ServerRef.Name, err)
	}
	issuer := strings.TrimSuffix(server.Spec.Issuer, "/")
	conn.Status.CallbackURL, conn.Status.ServiceProviderMetadataURL = "", ""
	if conn.Spec.Type != hallpassv1.ConnectionDatabase && conn.Spec.Type != hallpassv1.ConnectionLDAP {
		conn.Status.CallbackURL = issuer + config.ConnectionCallbackPath(conn.Name)
	}
	if conn.Spec.Type == hallpassv1.ConnectionSAML {
		conn.Status.ServiceProviderMetadataURL = issuer + config.SAMLMetadataPath(conn.Name)
	}

	clients, err := r.clients.of(server.Namespace, server.Name)
	if err != nil {
		return false, err
	}
	var n int32
	for _, c := range clients {
		if meta.IsStatusConditionTrue(c.Status.Conditions, hallpassv1.SSOClientAccepted) &&
			(len(c.Spec.Connections) == 0 || slices.Contains(c.Spec.Connections, conn.Name)) {
			n++
		}
	}
	conn.Status.Clients = n
	return true, nil
}

// reconcileCredentials resolves every reference and checks the content is usable, keeping
// the connection as the server would serve it.
func (r *IdentityConnectionReconciler) reconcileCredentials(ctx context.Context, s *connectionScope) (bool, error) {
	values := render.Values{}
	if err := resolveConnection(ctx, r.APIReader, s.conn, values); err != nil {
		return false, err
	}
	rendered, err := render.Connection(s.conn, values)
	var missing *render.MissingReferenceError
	switch {
	case err == nil:
		s.conds.set(hallpassv1.IdentityConnectionCredentialsResolved, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
		s.rendered = rendered
		return true, nil
	case errors.As(err, &missing):
		s.conds.set(hallpassv1.IdentityConnectionCredentialsResolved, metav1.ConditionFalse, hallpassv1.ReasonSecretNotFound, err.Error())
	default:
		s.conds.set(hallpassv1.IdentityConnectionCredentialsResolved, metav1.ConditionFalse, hallpassv1.ReasonInvalidSecret, err.Error())
	}
	return false, nil
}

// reconcileReachability checks, on a schedule and after every spec change, that the
// upstream answers, and warns ahead of certificate expiry. The result is only reported:
// a connection that fails its check stays on the server, since the upstream may be back
// before the next login.
func (r *IdentityConnectionReconciler) reconcileReachability(ctx context.Context, s *connectionScope) (bool, error) {
	conn := s.conn
	check := upstreamCheckers[s.rendered.Type]
	if check == nil {
		return true, nil
	}
	now := r.Now()
	if last := conn.Status.LastCheckTime; last != nil && conn.Status.ObservedGeneration == conn.Generation {
		if since := now.Sub(last.Time); since >= 0 && since < healthCheckInterval {
			s.result = ctrl.Result{RequeueAfter: healthCheckInterval - since}
			return true, nil
		}
	}
	s.result = ctrl.Result{RequeueAfter: healthCheckInterval}
	checkCtx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
	defer cancel()
	res := check(checkCtx, s.rendered)
	conn.Status.LastCheckTime = &metav1.Time{Time: now}
	if res.err != nil {
		s.conds.set(hallpassv1.IdentityConnectionReachable, metav1.ConditionFalse, hallpassv1.ReasonUnreachable, res.err.Error())
		return true, nil
	}
	s.conds.set(hallpassv1.IdentityConnectionReachable, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
	if expiry := res.certificateExpiry; !expiry.IsZero() {
		conn.Status.CertificateExpiry = &metav1.Time{Time: expiry}
		if expiry.Sub(now) < certificateWarning {
			r.Recorder.Eventf(conn, nil, corev1.EventTypeWarning, hallpassv1.ReasonCertificateExpiring, hallpassv1.IdentityConnectionReachable,
				"a signing certificate of the identity provider expires on %s; update the IdP metadata before then", expiry.UTC().Format(time.RFC3339))
		}
	}
	return true, nil
}
