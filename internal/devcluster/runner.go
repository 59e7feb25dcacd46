package devcluster

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// RunnerOptions configure the local pod runner.
type RunnerOptions struct {
	// ServerBinary is the hallpass binary every container image resolves to.
	ServerBinary string
	// WorkDir holds pod directories, kubeconfigs and claim volumes.
	WorkDir string
	// RestConfig reaches the API server; pods get its address and CA.
	RestConfig *rest.Config
	// Logs receives every pod's output, each line prefixed with [namespace/name].
	Logs io.Writer
	// AlsoRun selects Deployments to run besides those the operator manages, such as the
	// operator's own Deployment rendered by the Helm chart. Their processes find the pod's
	// kubeconfig in $KUBECONFIG, where controller-runtime looks, rather than in a --kubeconfig
	// flag, which `hallpass operator` does not take.
	AlsoRun func(*appsv1.Deployment) bool
}

// Runner plays the kubelet for the Deployments the operator writes: one local process per
// Deployment (at most one replica: the dev cluster has one "node" and SQLite one writer),
// restarted when the pod template changes, stopped when the Deployment goes, and reported
// ready through the Deployment's status, which is what the SSOServer controller reads.
type Runner struct {
	opts   RunnerOptions
	client client.Client
	kube   kubernetes.Interface
	log    logr.Logger

	ctx     context.Context
	changes chan event.GenericEvent

	mu   sync.Mutex
	pods map[types.NamespacedName]*pod
}

// SetupRunner adds the runner to mgr. It runs until mgr stops; Stop then ends its pods.
func SetupRunner(ctx context.Context, mgr manager.Manager, opts RunnerOptions) (*Runner, error) {
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("create kubernetes client for the pod runner: %w", err)
	}
	r := &Runner{
		opts: opts, client: mgr.GetClient(), kube: kube, log: mgr.GetLogger().WithName("pod-runner"),
		ctx: ctx, changes: make(chan event.GenericEvent), pods: map[types.NamespacedName]*pod{},
	}
	managed := predicate.NewPredicateFuncs(func(o client.Object) bool {
		if d, ok := o.(*appsv1.Deployment); ok && r.alsoRun(d) {
			return true
		}
		return o.GetLabels()[hallpassv1.LabelManagedBy] == hallpassv1.ManagedByValue
	})
	err = ctrl.NewControllerManagedBy(mgr).
		Named("pod-runner").
		For(&appsv1.Deployment{}, builder.WithPredicates(managed)).
		WatchesRawSource(source.Channel(r.changes, &handler.EnqueueRequestForObject{})).
		Complete(r)
	if err != nil {
		return nil, fmt.Errorf("set up pod runner: %w", err)
	}
	return r, nil
}

// Reconcile makes the local process of one Deployment match it.
func (r *Runner) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var d appsv1.Deployment
	err := r.client.Get(ctx, req.NamespacedName, &d)
	if apierrors.IsNotFound(err) || (err == nil && (!d.DeletionTimestamp.IsZero() || replicas(&d) == 0)) {
		r.stopPod(req.NamespacedName)
		if err == nil {
			return ctrl.Result{}, r.patchStatus(ctx, &d, nil)
		}
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("get Deployment %s: %w", req.NamespacedName, err)
	}

	p := r.pod(req.NamespacedName)
	if p == nil || p.spec.hash != templateHash(&d.Spec.Template) {
		// Like the Recreate strategy the operator asks for with SQLite: the old process
		// stops (and frees the issuer's port) before the new one starts.
		r.stopPod(req.NamespacedName)
		spec, err := r.plan(ctx, &d)
		if err != nil {
			return ctrl.Result{}, err
		}
		r.log.Info("Starting pod", "deployment", req.NamespacedName.String(), "template", spec.hash, "ports", spec.ports)
		p = startPod(r.ctx, spec, r.opts.Logs, r.log, r.notify)
		r.mu.Lock()
		r.pods[req.NamespacedName] = p
		r.mu.Unlock()
	}
	return ctrl.Result{}, r.patchStatus(ctx, &d, p)
}

// alsoRun reports whether d is run because RunnerOptions.AlsoRun selects it, not because the
// operator manages it.
func (r *Runner) alsoRun(d *appsv1.Deployment) bool {
	return r.opts.AlsoRun != nil && d.Labels[hallpassv1.LabelManagedBy] != hallpassv1.ManagedByValue && r.opts.AlsoRun(d)
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// notify brings a Deployment back to Reconcile when its pod's readiness changes.
func (r *Runner) notify(key types.NamespacedName) {
	ev := event.GenericEvent{Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
	go func() {
		select {
		case r.changes <- ev:
		case <-r.ctx.Done():
		}
	}()
}

// patchStatus reports the local pod in the Deployment's status, as the Deployment
// controller of a real cluster would from its pods.
func (r *Runner) patchStatus(ctx context.Context, d *appsv1.Deployment, p *pod) error {
	want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation}
	available := corev1.ConditionFalse
	reason, message := "NoPod", "the local pod runner runs no process for this Deployment"
	if p != nil {
		want.Replicas, want.UpdatedReplicas = 1, 1
		reason, message = "Starting", "the local server process is not ready yet"
		if p.ready.Load() {
			want.ReadyReplicas, want.AvailableReplicas = 1, 1
			available, reason, message = corev1.ConditionTrue, "LocalProcessReady", "the local server process answers its readiness probe"
		} else {
			want.UnavailableReplicas = 1
		}
	}
	old := availableCondition(&d.Status)
	if d.Status.ObservedGeneration == want.ObservedGeneration && d.Status.Replicas == want.Replicas &&
		d.Status.ReadyReplicas == want.ReadyReplicas && d.Status.AvailableReplicas == want.AvailableReplicas &&
		old != nil && old.Status == available {
		return nil
	}
	now := metav1.Now()
	want.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentAvailable, Status: available, Reason: reason, Message: message,
		LastUpdateTime: now, LastTransitionTime: now,
	}}
	patch := client.MergeFrom(d.DeepCopy())
	d.Status = want
	if err := r.client.Status().Patch(ctx, d, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patch status of Deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

func availableCondition(s *appsv1.DeploymentStatus) *appsv1.DeploymentCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == appsv1.DeploymentAvailable {
			return &s.Conditions[i]
		}
	}
	return nil
}

func (r *Runner) pod(key types.NamespacedName) *pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pods[key]
}

func (r *Runner) stopPod(key types.NamespacedName) {
	r.mu.Lock()
	p := r.pods[key]
	delete(r.pods, key)
	r.mu.Unlock()
	if p != nil {
		r.log.Info("Stopping pod", "deployment", key.String())
		p.stop()
	}
}

// Stop ends every pod and waits for them.
func (r *Runner) Stop() {
	r.mu.Lock()
	pods := r.pods
	r.pods = map[types.NamespacedName]*pod{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// PodInfo describes the local process of one Deployment.
type PodInfo struct {
	// PID is the process ID (of the mount-namespace helper's exec, which is the server),
	// 0 while the process is not running.
	PID      int
	Ready    bool
	Restarts int
	// Ports maps container port names and numbers to loopback ports.
	Ports map[string]int
	// TemplateHash identifies the pod template the process was started from.
	TemplateHash string
}

// Pod returns the local pod of a Deployment.
func (r *Runner) Pod(namespace, deployment string) (PodInfo, bool) {
	p := r.pod(types.NamespacedName{Namespace: namespace, Name: deployment})
	if p == nil {
		return PodInfo{}, false
	}
	ports := make(map[string]int, len(p.spec.ports))
	for k, v := range p.spec.ports {
		ports[k] = v
	}
	return PodInfo{
		PID: int(p.pid.Load()), Ready: p.ready.Load(), Restarts: int(p.restarts.Load()),
		Ports: ports, TemplateHash: p.spec.hash,
	}, true
}

// Addr is the loopback address of a container port (by name or number) of a Deployment's
// pod.
func (r *Runner) Addr(namespace, deployment, port string) (string, bool) {
	info, ok := r.Pod(namespace, deployment)
	if !ok {
		return "", false
	}
	hp, ok := info.Ports[port]
	if !ok {
		return "", false
	}
	return "127.0.0.1:" + strconv.Itoa(hp), true
}

var _ reconcile.Reconciler = (*Runner)(nil)
