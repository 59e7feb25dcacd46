package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/render"
)

// SSOAPIReconciler reports whether each SSOAPI is served and how many clients its grants
// select. The SSOServer controller renders the APIs; both decide what is served with
// render.RefuseAPIs, so the status says exactly what the server does.
type SSOAPIReconciler struct {
	client.Client
	// APIReader reads the SSOAPI from the API server when the cache's copy turns out
	// older (patchStatus).
	APIReader client.Reader
	Recorder  events.EventRecorder

	clients serverClients
}

// apiScope is what the phases of one SSOAPI reconcile share.
type apiScope struct {
	api    *hallpassv1.SSOAPI
	conds  *conditionSetter
	server *hallpassv1.SSOServer
	// clients are the server's clients that have a client ID.
	clients []render.Client
	// refusal, when set, is why the API is not served.
	refusal *refusal
}

// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoapis,verbs=get;list;watch
// +kubebuilder:rbac:groups=sso.hallpass.dev,resources=ssoapis/status,verbs=get;patch

// Reconcile brings one SSOAPI's status up to date.
func (r *SSOAPIReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	api := &hallpassv1.SSOAPI{}
	if live, err := getLive(ctx, r.Client, req.NamespacedName, api); !live {
		return ctrl.Result{}, err
	}
	before := api.DeepCopy()
	s := &apiScope{api: api, conds: newConditionSetter(ctx, api, r.Recorder)}
	defer func() {
		if s.refusal != nil {
			s.conds.set(hallpassv1.ConditionReady, metav1.ConditionFalse, s.refusal.reason, s.refusal.message)
		} else if reterr == nil {
			s.conds.set(hallpassv1.ConditionReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled,
				fmt.Sprintf("served by SSOServer %s to %d clients", api.Spec.ServerRef.Name, api.Status.Clients))
		}
		reterr = patchStatus(ctx, r.Client, r.APIReader, before, s.conds, &api.Status.ObservedGeneration, reterr)
	}()

	err := runPhases(ctx, s,
		r.reconcileServer,
		r.reconcileIdentifier,
		r.reconcileGrants,
	)
	return ctrl.Result{}, err
}

// reconcileServer finds the server and its clients that have a client ID.
func (r *SSOAPIReconciler) reconcileServer(ctx context.Context, s *apiScope) (bool, error) {
	api := s.api
	s.server = &hallpassv1.SSOServer{}
	err := r.Get(ctx, client.ObjectKey{Namespace: api.Namespace, Name: api.Spec.ServerRef.Name}, s.server)
	if apierrors.IsNotFound(err) {
		api.Status.Clients = 0
		s.refusal = &refusal{hallpassv1.ReasonServerNotFound,
			fmt.Sprintf("SSOServer %s/%s does not exist (spec.serverRef)", api.Namespace, api.Spec.ServerRef.Name)}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get SSOServer %s: %w", api.Spec.ServerRef.Name, err)
	}
	// Read only, as render reads them.
	clients, err := r.clients.of(api.Namespace, api.Spec.ServerRef.Name)
	if err != nil {
		return false, err
	}
	for _, c := range clients {
		if c.Status.ClientID != "" && c.DeletionTimestamp.IsZero() {
			s.clients = append(s.clients, render.Client{Client: c, ID: c.Status.ClientID})
		}
	}
	return true, nil
}

// reconcileIdentifier refuses an identifier that is the issuer, a client ID, or already an
// older SSOAPI's, as the render does.
func (r *SSOAPIReconciler) reconcileIdentifier(ctx context.Context, s *apiScope) (bool, error) {
	var list hallpassv1.SSOAPIList
	if err := r.List(ctx, &list, client.MatchingFields{indexServer: key(s.api.Namespace, s.api.Spec.ServerRef.Name)}); err != nil {
		return false, fmt.Errorf("list SSOAPIs of SSOServer %s: %w", s.api.Spec.ServerRef.Name, err)
	}
	apis := []*hallpassv1.SSOAPI{s.api}
	for i := range list.Items {
		if a := &list.Items[i]; a.Name != s.api.Name && a.DeletionTimestamp.IsZero() {
			apis = append(apis, a)
		}
	}
	ids := make([]string, len(s.clients))
	for i, c := range s.clients {
		ids[i] = c.ID
	}
	if refused, ok := render.RefuseAPIs(s.server.Spec.Issuer, apis, ids)[s.api.Name]; ok {
		s.api.Status.Clients = 0
		s.refusal = &refusal{refused.Reason, refused.Message}
		return false, nil
	}
	return true, nil
}

// reconcileGrants counts the accepted clients the grants select.
func (r *SSOAPIReconciler) reconcileGrants(ctx context.Context, s *apiScope) (bool, error) {
	var accepted []render.Client
	for _, c := range s.clients {
		if !meta.IsStatusConditionFalse(c.Client.Status.Conditions, hallpassv1.SSOClientAccepted) {
			accepted = append(accepted, c)
		}
	}
	labels, err := namespaceLabels(ctx, r.Client, accepted)
	if err != nil {
		return false, err
	}
	s.api.Status.Clients = statusCount(len(render.Grants(s.api, accepted, labels)))
	return true, nil
}

// namespaceLabels returns the labels of the clients' namespaces, for the namespace
// selectors of grants.
func namespaceLabels(ctx context.Context, c client.Reader, clients []render.Client) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, rc := range clients {
		ns := rc.Client.Namespace
		if _, done := out[ns]; done {
			continue
		}
		var n corev1.Namespace
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("get Namespace %s: %w", ns, err)
		}
		out[ns] = n.Labels
	}
	return out, nil
}
