package controllers

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/render"
)

// Ports of the server container.
const (
	httpPort    = 8080
	metricsPort = 9090
	// serverUID is the distroless "nonroot" user.
	serverUID = 65532
)

func serverLabels(srv *hallpassv1.SSOServer) map[string]string {
	return map[string]string{
		hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue,
		hallpassv1.LabelServer:    srv.Name,
	}
}

// selectorLabels select the server's pods; they never change, since a Deployment's selector
// is immutable.
func selectorLabels(srv *hallpassv1.SSOServer) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "hallpass-server",
		"app.kubernetes.io/instance": srv.Name,
	}
}

func (r *SSOServerReconciler) owner(srv *hallpassv1.SSOServer) *metav1ac.OwnerReferenceApplyConfiguration {
	return ownerReference(srv, "SSOServer")
}

// reconcileRBAC gives the server pods an identity that can read exactly their own config and
// signing-keys Secrets and write their reports into their status ConfigMap, nothing else.
func (r *SSOServerReconciler) reconcileRBAC(ctx context.Context, s *serverScope) error {
	srv := s.server
	sa := corev1ac.ServiceAccount(srv.Name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv))
	role := rbacv1ac.Role(srv.Name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv)).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups("").
			WithResources("secrets").
			WithResourceNames(serverSecretNames(srv)...).
			WithVerbs("get", "list", "watch"),
			// A merge patch of the pod's own key needs no other verb (docs/adr/0011).
			rbacv1ac.PolicyRule().
				WithAPIGroups("").
				WithResources("configmaps").
				WithResourceNames(statusConfigMapName(srv.Name)).
				WithVerbs("patch"))
	binding := rbacv1ac.RoleBinding(srv.Name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName(srv.Name)).
		WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(srv.Name).WithNamespace(srv.Namespace))
	// All three or none: binding the server's Role to a ServiceAccount that is not the
	// server's would give some other workload read on the server's Secrets.
	meta := metav1.ObjectMeta{Namespace: srv.Namespace, Name: srv.Name}
	owned := true
	for _, obj := range []client.Object{&corev1.ServiceAccount{ObjectMeta: meta}, &rbacv1.Role{ObjectMeta: meta}, &rbacv1.RoleBinding{ObjectMeta: meta}} {
		ok, err := r.claim(ctx, s, obj)
		if err != nil {
			return err
		}
		owned = owned && ok
	}
	if !owned {
		s.noWorkload = true
		return nil
	}
	for _, obj := range []struct {
		what string
		ac   runtime.ApplyConfiguration
	}{{"ServiceAccount", sa}, {"Role", role}, {"RoleBinding", binding}} {
		if err := r.Apply(ctx, obj.ac, fieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.what, srv.Name, err)
		}
	}
	return nil
}

// serverSecretNames are the Secrets the server pods read: their config, their signing
// keys and, with spec.tls, their certificate.
func serverSecretNames(srv *hallpassv1.SSOServer) []string {
	names := []string{configSecretName(srv.Name), keysSecretName(srv.Name)}
	if srv.Spec.TLS != nil {
		names = append(names, srv.Spec.TLS.SecretName)
	}
	return names
}

// servingPort is the name of the port the server pods serve OpenID Connect on, and of
// the Service's port: https with spec.tls, else http (service meshes read the protocol
// from the name).
func servingPort(srv *hallpassv1.SSOServer) (name string, servicePort int32) {
	if srv.Spec.TLS != nil {
		return "https", 443
	}
	return "http", 80
}

// reconcileStorage creates the SQLite volume. A claim is created once and not updated: its
// spec is immutable apart from growing, which is left to the cluster administrator.
func (r *SSOServerReconciler) reconcileStorage(ctx context.Context, s *serverScope) error {
	srv := s.server
	if srv.Spec.Storage.Type == hallpassv1.StoragePostgres {
		return nil
	}
	name := dataClaimName(srv.Name)
	existing := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: srv.Namespace, Name: name}}
	if ok, err := r.claim(ctx, s, existing); err != nil || !ok {
		// Another's volume is never mounted into the server's pods.
		s.noWorkload = true
		return err
	}
	if existing.UID != "" {
		return nil
	}
	size := resource.MustParse("1Gi")
	if srv.Spec.Storage.SQLite.Size != nil {
		size = *srv.Spec.Storage.SQLite.Size
	}
	claim := corev1ac.PersistentVolumeClaim(name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv)).
		WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithAccessModes(corev1.ReadWriteOnce).
			WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: size})))
	if srv.Spec.Storage.SQLite.StorageClassName != nil {
		claim.Spec.WithStorageClassName(*srv.Spec.Storage.SQLite.StorageClassName)
	}
	if err := r.Apply(ctx, claim, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply PersistentVolumeClaim %s: %w", name, err)
	}
	return nil
}

// reconcileWorkload applies the server's status ConfigMap, Deployment and Service, when the
// server's image is allowed and every object it runs with is its own.
func (r *SSOServerReconciler) reconcileWorkload(ctx context.Context, s *serverScope) error {
	srv := s.server
	image := cmp.Or(srv.Spec.Image, r.ServerImage)
	if !imageAllowed(image, r.AllowedImages) {
		s.conds.set(hallpassv1.SSOServerImageAllowed, metav1.ConditionFalse, hallpassv1.ReasonImageNotAllowed, fmt.Sprintf(
			"spec.image %q is not in a repository the operator may run (%s); the server is not deployed. The platform team sets them with the operator's --allowed-server-images",
			image, strings.Join(r.AllowedImages, ", ")))
		return nil
	}
	s.conds.set(hallpassv1.SSOServerImageAllowed, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
	meta := metav1.ObjectMeta{Namespace: srv.Namespace, Name: srv.Name}
	for _, obj := range []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: srv.Namespace, Name: statusConfigMapName(srv.Name)}},
		&appsv1.Deployment{ObjectMeta: meta}, &corev1.Service{ObjectMeta: meta},
	} {
		ok, err := r.claim(ctx, s, obj)
		if err != nil {
			return err
		}
		s.noWorkload = s.noWorkload || !ok
	}
	if s.noWorkload {
		return nil
	}
	if err := r.applyStatusConfigMap(ctx, srv); err != nil {
		return err
	}
	if err := r.Apply(ctx, r.deployment(srv), fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply Deployment %s: %w", srv.Name, err)
	}
	portName, servicePort := servingPort(srv)
	svc := corev1ac.Service(srv.Name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(srv)).
			WithPorts(
				corev1ac.ServicePort().WithName(portName).WithPort(servicePort).WithTargetPort(intstr.FromString(portName)),
				corev1ac.ServicePort().WithName("metrics").WithPort(metricsPort).WithTargetPort(intstr.FromString("metrics")),
			))
	if err := r.Apply(ctx, svc, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply Service %s: %w", srv.Name, err)
	}
	return nil
}

// deployment is the server's Deployment. Config changes reach running pods through their
// watch on the config Secret, so nothing here depends on the config: a new client never
// restarts a pod or drops a session.
func (r *SSOServerReconciler) deployment(srv *hallpassv1.SSOServer) *appsv1ac.DeploymentApplyConfiguration {
	image := cmp.Or(srv.Spec.Image, r.ServerImage)
	resources := corev1ac.ResourceRequirements().
		WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}).
		WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")})
	if rr := srv.Spec.Resources; rr != nil {
		resources = corev1ac.ResourceRequirements().WithRequests(rr.Requests).WithLimits(rr.Limits)
	}
	probe := func(path string, failures int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("metrics"))).
			WithPeriodSeconds(10).WithFailureThreshold(failures)
	}
	portName, _ := servingPort(srv)
	container := corev1ac.Container().
		WithName("server").
		WithImage(image).
		WithArgs(r.serverArgs(srv)...).
		// The pod reports under its own name which config it serves.
		WithEnv(corev1ac.EnvVar().WithName("POD_NAME").WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name")))).
		WithPorts(
			corev1ac.ContainerPort().WithName(portName).WithContainerPort(httpPort),
			corev1ac.ContainerPort().WithName("metrics").WithContainerPort(metricsPort)).
		WithReadinessProbe(probe("/readyz", 3)).
		WithLivenessProbe(probe("/healthz", 6)).
		WithResources(resources).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithRunAsNonRoot(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	pod := corev1ac.PodSpec().
		WithServiceAccountName(srv.Name).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(serverUID).
			WithRunAsGroup(serverUID).
			WithFSGroup(serverUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()))

	strategy := appsv1ac.DeploymentStrategy().WithType("RollingUpdate")
	if srv.Spec.Storage.Type != hallpassv1.StoragePostgres {
		// One writer on a ReadWriteOnce volume: the old pod must stop before the new one starts.
		strategy = appsv1ac.DeploymentStrategy().WithType("Recreate")
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName("data").WithMountPath(render.DataDir))
		pod.WithVolumes(corev1ac.Volume().WithName("data").
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(dataClaimName(srv.Name))))
	}
	pod.WithContainers(container)

	return appsv1ac.Deployment(srv.Name, srv.Namespace).
		WithLabels(serverLabels(srv)).
		WithOwnerReferences(r.owner(srv)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(srv.Spec.Replicas).
			WithStrategy(strategy).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(srv))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(selectorLabels(srv)).
				WithSpec(pod)))
}

// serverArgs are the arguments of the server container: where its config, keys and status
// live, its ports, and the operator's choice of log level.
func (r *SSOServerReconciler) serverArgs(srv *hallpassv1.SSOServer) []string {
	args := []string{"server",
		"--config-secret", srv.Namespace + "/" + configSecretName(srv.Name),
		"--keys-secret", srv.Namespace + "/" + keysSecretName(srv.Name),
		"--status-configmap", srv.Namespace + "/" + statusConfigMapName(srv.Name),
		fmt.Sprintf("--listen=:%d", httpPort),
		fmt.Sprintf("--metrics-listen=:%d", metricsPort)}
	if srv.Spec.TLS != nil {
		args = append(args, "--tls-secret", srv.Namespace+"/"+srv.Spec.TLS.SecretName)
	}
	if r.ServerLogLevel != "" {
		args = append(args, "--log-level="+r.ServerLogLevel)
	}
	return args
}
