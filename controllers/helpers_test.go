package controllers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

// Bounds of every wait in the suite. Reconciles take milliseconds; the timeout only absorbs
// a loaded CI machine.
const (
	waitTimeout = 20 * time.Second
	waitPoll    = 50 * time.Millisecond
)

// demoHash is the argon2id hash of "correct-horse-battery" (config/samples).
const demoHash = "$argon2id$v=19$m=19456,t=2,p=1$aGFsbHBhc3MtZGVtby1zYQ$jdYK97oOgib4lBTl/s+JFaRwPQYPEl6Yn1+HpnmStUI"

func newServer(ns, name string) *hallpassv1.SSOServer {
	return &hallpassv1.SSOServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       hallpassv1.SSOServerSpec{Issuer: "https://sso.example.com/" + ns},
	}
}

func newClient(ns, name, serverNS, server string, typ hallpassv1.ClientType) *hallpassv1.SSOClient {
	c := &hallpassv1.SSOClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hallpassv1.SSOClientSpec{
			ServerRef: hallpassv1.ServerReference{Name: server, Namespace: serverNS},
			Type:      typ,
		},
	}
	if typ != hallpassv1.MachineToMachine {
		c.Spec.RedirectURIs = []string{"https://" + name + ".example.com/callback"}
	}
	return c
}

func newDatabaseConnection(ns, name, server, usersSecret string) *hallpassv1.IdentityConnection {
	return &hallpassv1.IdentityConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: hallpassv1.IdentityConnectionSpec{
			ServerRef: hallpassv1.LocalServerReference{Name: server},
			Type:      hallpassv1.ConnectionDatabase,
			Database: &hallpassv1.DatabaseConnection{
				UsersSecretRef: &hallpassv1.SecretKeyReference{Name: usersSecret, Key: "users.yaml"},
			},
		},
	}
}

func usersSecret(ns, name string, usernames ...string) *corev1.Secret {
	var users string
	for _, u := range usernames {
		users += "- username: " + u + "\n  passwordHash: " + demoHash + "\n"
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		StringData: map[string]string{"users.yaml": users},
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// get fetches an object straight from the API server.
func get[T client.Object](g Gomega, ns, name string, obj T) T {
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
	return obj
}

// condition returns the condition of the given type, or an empty one.
func condition(conds []metav1.Condition, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// haveCondition matches a condition with status and reason.
func haveCondition(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(HaveField("Status", status), HaveField("Reason", reason))
}

// eventually polls fn until it passes, within the suite's bounds.
func eventually(t *testing.T, fn func(g Gomega)) {
	t.Helper()
	NewWithT(t).Eventually(fn).WithTimeout(waitTimeout).WithPolling(waitPoll).Should(Succeed())
}

// renderedConfig reads the server's config Secret as the server pods would.
func renderedConfig(g Gomega, ns, server string) *config.Config {
	secret := get(g, ns, configSecretName(server), &corev1.Secret{})
	data, err := config.FromSecretData(secret.Data)
	g.Expect(err).NotTo(HaveOccurred())
	cfg, err := config.Parse(data)
	g.Expect(err).NotTo(HaveOccurred())
	return cfg
}

// markDeploymentReady stands in for the kube-controller-manager and kubelet, which envtest
// does not run: it reports every replica of the Deployment as ready.
func markDeploymentReady(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, func(g Gomega) {
		d := get(g, ns, name, &appsv1.Deployment{})
		patch := client.MergeFrom(d.DeepCopy())
		d.Status.Replicas = *d.Spec.Replicas
		d.Status.ReadyReplicas = *d.Spec.Replicas
		d.Status.AvailableReplicas = *d.Spec.Replicas
		g.Expect(k8s.Status().Patch(context.Background(), d, patch)).To(Succeed())
	})
}

// actAsServerPods does once what the server's pods and their Deployment controller do: the
// Deployment's pods become ready, and one pod reports applying the config the operator
// rendered last.
func actAsServerPods(g Gomega, ns, server string) {
	ctx := context.Background()
	var d appsv1.Deployment
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: server}, &d); err == nil && d.Status.ReadyReplicas < *d.Spec.Replicas {
		patch := client.MergeFrom(d.DeepCopy())
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = *d.Spec.Replicas, *d.Spec.Replicas, *d.Spec.Replicas
		g.Expect(k8s.Status().Patch(ctx, &d, patch)).To(Succeed())
	}
	srv := get(g, ns, server, &hallpassv1.SSOServer{})
	if srv.Status.ConfigHash == "" {
		return
	}
	reportApplied(g, ns, server, server+"-pod", srv.Status.ConfigHash)
}

// reportApplied writes a pod's report of the config it applied, as a server pod does.
func reportApplied(g Gomega, ns, server, pod, hash string) {
	value, err := json.Marshal(configsource.PodReport{ConfigHash: hash, At: clock.Now().UTC().Truncate(time.Second)})
	g.Expect(err).NotTo(HaveOccurred())
	patch, err := json.Marshal(map[string]any{"data": map[string]string{pod: string(value)}})
	g.Expect(err).NotTo(HaveOccurred())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: statusConfigMapName(server)}}
	g.Expect(k8s.Patch(context.Background(), cm, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// touch changes an annotation of obj so that its controller reconciles it again.
func touch(t *testing.T, obj client.Object) {
	t.Helper()
	eventually(t, func(g Gomega) {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		obj.SetAnnotations(map[string]string{"test.hallpass.dev/touched": time.Now().Format(time.RFC3339Nano)})
		g.Expect(k8s.Patch(context.Background(), obj, patch)).To(Succeed())
	})
}

// eventReasons lists the reasons of the Events recorded about the named object.
func eventReasons(g Gomega, ns, name string) []string {
	var events eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		if e.Regarding.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

// clientRecordOf reads the operator's record of SSOClient clientNS/name on its server.
func clientRecordOf(g Gomega, serverNS, server, clientNS, name string) *corev1.Secret {
	return get(g, serverNS, clientRecordName(server, clientNS, name), &corev1.Secret{})
}
