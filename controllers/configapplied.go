package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

// How the operator reads the server pods' reports (docs/adr/0011).
const (
	// reportFreshness is how long a pod's report counts: three of its heartbeats, so one
	// late or failed write does not flip the condition.
	reportFreshness = 3 * configsource.DefaultReportInterval
	// reportRetention is when the report of a pod that stopped reporting (most often one
	// that no longer exists) is removed from the ConfigMap, so it does not grow with every
	// rollout.
	reportRetention = 10 * time.Minute
	// configAppliedPoll is how often the reports are read again while some ready pod does
	// not serve the current config; reports also trigger a reconcile by themselves.
	configAppliedPoll = 30 * time.Second
	// shortHash is how many hex digits of a config hash messages show.
	shortHash = 12
)

func statusConfigMapName(server string) string { return server + "-status" }

// The operator creates the status ConfigMap and prunes it. It needs patch on ConfigMaps
// anyway: RBAC lets it grant the server's Role patch on that ConfigMap only if it holds it.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create;patch

// applyStatusConfigMap creates the server's status ConfigMap, empty: the pods fill it in.
// Apply owns only the metadata, so the pods' keys are never touched by it.
func (r *SSOServerReconciler) applyStatusConfigMap(ctx context.Context, srv *hallpassv1.SSOServer) error {
	name := statusConfigMapName(srv.Name)
	cm := corev1ac.ConfigMap(name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv))
	if err := r.Apply(ctx, cm, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply ConfigMap %s: %w", name, err)
	}
	return nil
}

// reconcileConfigApplied compares what the ready pods report serving with the config the
// operator rendered and sets ConfigApplied, appliedReplicas and appliedConfigHash.
func (r *SSOServerReconciler) reconcileConfigApplied(ctx context.Context, s *serverScope) error {
	srv := s.server
	name := statusConfigMapName(srv.Name)
	// Uncached: the manager's cache holds no ConfigMap data (docs/adr/0003, 0011).
	var cm corev1.ConfigMap
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: srv.Namespace, Name: name}, &cm); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("get ConfigMap %s: %w", name, err)
	}
	now := r.Now()
	want, ready := srv.Status.ConfigHash, srv.Status.ReadyReplicas
	var applied, fresh int32
	var others, prune []string
	served := map[string]bool{}
	for _, pod := range slices.Sorted(maps.Keys(cm.Data)) {
		report, err := configsource.ParsePodReport(cm.Data[pod])
		if err != nil {
			// Not a report a server wrote; it counts for nothing.
			continue
		}
		age := now.Sub(report.At)
		if age > reportRetention {
			prune = append(prune, pod)
		}
		if age > reportFreshness {
			continue
		}
		fresh++
		served[report.ConfigHash] = true
		if report.ConfigHash == want {
			applied++
		} else {
			others = append(others, fmt.Sprintf("pod %s serves %s", pod, abbrev(report.ConfigHash)))
		}
	}
	srv.Status.AppliedReplicas = applied
	srv.Status.AppliedConfigHash = ""
	if len(served) == 1 && ready > 0 && fresh >= ready {
		for h := range served {
			srv.Status.AppliedConfigHash = h
		}
	}

	set := func(status metav1.ConditionStatus, reason, message string) {
		s.conds.set(hallpassv1.SSOServerConfigApplied, status, reason, message)
	}
	switch {
	case want == "":
		set(metav1.ConditionFalse, hallpassv1.ReasonConfigPending, "no config has been rendered yet")
	case ready == 0:
		set(metav1.ConditionFalse, hallpassv1.ReasonNoReadyReplicas, fmt.Sprintf("no server pod is ready to serve config %s", abbrev(want)))
	case applied >= ready:
		set(metav1.ConditionTrue, hallpassv1.ReasonConfigApplied, fmt.Sprintf("%d of %d ready pods serve config %s", applied, ready, abbrev(want)))
		// A high-water mark: pods that later serve nothing or an older config (one that
		// failed to load) do not take back what they applied; Available says whether they run.
		srv.Status.AppliedConfigRevision = max(srv.Status.AppliedConfigRevision, srv.Status.ConfigRevision)
		s.requeueAfter(reportFreshness)
	default:
		msg := fmt.Sprintf("%d of %d ready pods serve config %s", applied, ready, abbrev(want))
		if len(others) > 0 {
			msg += "; " + strings.Join(others, ", ")
		}
		if missing := ready - fresh; missing > 0 {
			msg += fmt.Sprintf("; %d ready pods have not reported in ConfigMap %s within %s", missing, name, reportFreshness)
		}
		set(metav1.ConditionFalse, hallpassv1.ReasonConfigPending, msg)
		s.requeueAfter(configAppliedPoll)
	}
	return r.pruneReports(ctx, &cm, prune)
}

// pruneReports removes the reports of pods that stopped reporting long ago. A pod that is
// in fact alive writes its report again at its next heartbeat.
func (r *SSOServerReconciler) pruneReports(ctx context.Context, cm *corev1.ConfigMap, pods []string) error {
	if len(pods) == 0 {
		return nil
	}
	data := map[string]any{}
	for _, p := range pods {
		data[p] = nil
	}
	patch, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, cm, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("prune reports of %v from ConfigMap %s: %w", pods, cm.Name, err)
	}
	return nil
}

func abbrev(hash string) string {
	if len(hash) > shortHash {
		return hash[:shortHash]
	}
	return hash
}
