package controllers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/config"
)

// TestOperatorRestartKeepsCredentialsAndKeys stops the operator, wipes what it recorded in
// status, and starts a new one: client IDs, client secrets and signing keys must all survive,
// since applications and relying parties hold copies of them.
func TestOperatorRestartKeepsCredentialsAndKeys(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"), newClient(ns, "app", ns, "sso", hallpassv1.RegularWebApp))
	before := readyClient(t, ns, "app")
	creds := get(g, ns, "app-sso-credentials", &corev1.Secret{}).Data
	var keys map[string][]byte
	eventually(t, func(g Gomega) { keys = get(g, ns, "sso-signing-keys", &corev1.Secret{}).Data })

	stopManager()
	patch := client.MergeFrom(before.DeepCopy())
	before.Status = hallpassv1.SSOClientStatus{}
	g.Expect(k8s.Status().Patch(ctx, before, patch)).To(Succeed())
	g.Expect(startManager()).To(Succeed())

	after := readyClient(t, ns, "app")
	g.Expect(after.Status.ClientID).To(Equal(string(creds[CredentialsClientID])))
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "app-sso-credentials", &corev1.Secret{}).Data).To(Equal(creds))
		g.Expect(get(g, ns, "sso-signing-keys", &corev1.Secret{}).Data).To(Equal(keys))
		_, ok := renderedConfig(g, ns, "sso").Client(after.Status.ClientID)
		g.Expect(ok).To(BeTrue())
	})
}

// TestSamplesBecomeReady applies config/samples unchanged, as the README's tour does, and
// expects every resource Ready with the Deployment and Secrets in place.
func TestSamplesBecomeReady(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	for _, obj := range readSamples(t) {
		obj.SetNamespace(ns)
		create(t, obj)
	}
	eventually(t, func(g Gomega) {
		g.Expect(get(g, ns, "hallpass", &appsv1.Deployment{}).Spec.Template.Spec.Containers).To(HaveLen(1))
	})
	markDeploymentReady(t, ns, "hallpass")

	eventually(t, func(g Gomega) {
		s := get(g, ns, "hallpass", &hallpassv1.SSOServer{})
		g.Expect(condition(s.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(s.Status.Clients).To(Equal(int32(3)))
		g.Expect(s.Status.Connections).To(Equal(int32(1)))
		conn := get(g, ns, "username-password", &hallpassv1.IdentityConnection{})
		g.Expect(condition(conn.Status.Conditions, hallpassv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(conn.Status.Clients).To(Equal(int32(3)))
	})
	readyClient(t, ns, "app1")
	readyClient(t, ns, "app2")
	readyClient(t, ns, "kubectl")
	for _, name := range []string{"hallpass-config", "hallpass-signing-keys", "app1-sso-credentials", "app2-sso-credentials"} {
		get(g, ns, name, &corev1.Secret{})
	}
	cfg := renderedConfig(g, ns, "hallpass")
	db, ok := cfg.Connection("username-password")
	g.Expect(ok).To(BeTrue())
	g.Expect(db.Database.Users).To(ConsistOf(HaveField("Username", "demo")))
	g.Expect(cfg.Clients).To(ContainElement(And(HaveField("Type", config.ClientSinglePageApp), HaveField("WebOrigins", []string{"https://app1.example.com"}))))
	g.Expect(cfg.Clients).To(ContainElement(And(HaveField("Type", config.ClientNative), HaveField("GrantTypes", ContainElement(config.GrantDeviceCode)))))
}

// readSamples decodes every manifest of config/samples listed in its kustomization.
func readSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	dir := filepath.Join("..", "config", "samples")
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := utilyaml.Unmarshal(raw, &kustomization); err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, file := range kustomization.Resources {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("decode %s: %v", file, err)
			}
			if len(obj.Object) > 0 {
				objs = append(objs, obj)
			}
		}
	}
	return objs
}

// TestOperatorRestartLeavesServedAndRefusedClientsAsTheyWere restarts the operator under a
// Ready client and one left out over its namespace's budget (the later one: named so that
// creation in the same second, ordered by name, agrees). The render's verdicts live in
// the operator's memory (docs/adr/0030), so the new operator has none until its first
// render: meanwhile neither client may flip, not the served one to Pending, not the refused
// one to Accepted. A flip would be ten thousand status writes and Ready going away under
// every application at each operator upgrade.
func TestOperatorRestartLeavesServedAndRefusedClientsAsTheyWere(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	srv := newServer(ns, "sso")
	srv.Spec.Budgets = hallpassv1.NamespaceBudgets{ClientsPerNamespace: 1}
	create(t, srv, newClient(ns, "first", ns, "sso", hallpassv1.RegularWebApp))
	readyClient(t, ns, "first")
	create(t, newClient(ns, "second", ns, "sso", hallpassv1.RegularWebApp))
	eventually(t, func(g Gomega) {
		c := get(g, ns, "second", &hallpassv1.SSOClient{})
		g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonOverBudget))
	})
	var list hallpassv1.SSOClientList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())

	watcher, err := client.NewWithWatch(restConfig, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := watcher.Watch(ctx, &hallpassv1.SSOClientList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	stopManager()
	g.Expect(startManager()).To(Succeed())
	// Long enough for the new operator's first reconciles, its first render and the
	// verdicts it brings (verdictDelay later).
	settled := time.After(4*verdictDelay + renderCoalesceDelay)
	for watching := true; watching; {
		select {
		case ev := <-w.ResultChan():
			c, ok := ev.Object.(*hallpassv1.SSOClient)
			if !ok {
				continue
			}
			switch c.Name {
			case "first":
				g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
			case "second":
				g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonOverBudget))
			}
		case <-settled:
			watching = false
		}
	}
	readyClient(t, ns, "first")
	c := get(g, ns, "second", &hallpassv1.SSOClient{})
	g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientAccepted)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonOverBudget))
}
