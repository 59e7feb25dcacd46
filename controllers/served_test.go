package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestClientIsReadyOnlyOnceTheServerPodsApplyItsConfig checks that Ready means served: a
// client whose config the server's pods have not applied is not Ready, and says it waits for
// the server, until a pod reports applying that config; a spec change waits again.
func TestClientIsReadyOnlyOnceTheServerPodsApplyItsConfig(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"))
	markDeploymentReady(t, ns, "sso")
	// A pod serving an older config (no pod has applied the one with the client).
	const oldHash = "0ld0000000000000000000000000000000000000000000000000000000000000"
	eventually(t, func(g Gomega) { reportApplied(g, ns, "sso", "sso-pod", oldHash) })
	create(t, newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp))

	waitingForServer := func() {
		t.Helper()
		eventually(t, func(g Gomega) {
			srv := get(g, ns, "sso", &hallpassv1.SSOServer{})
			g.Expect(condition(srv.Status.Conditions, hallpassv1.SSOServerConfigApplied).Message).To(ContainSubstring("pod sso-pod serves 0ld"),
				"the operator has read the pod's report of the older config")
			c := get(g, ns, "web", &hallpassv1.SSOClient{})
			g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
			g.Expect(condition(c.Status.Conditions, hallpassv1.SSOClientServed)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonWaitingForServer))
			ready := condition(c.Status.Conditions, hallpassv1.ConditionReady)
			g.Expect(ready).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonWaitingForServer))
			g.Expect(ready.Message).To(ContainSubstring("waiting for its server pods to apply it"))
			g.Expect(renderedConfig(g, ns, "sso").Clients).To(HaveLen(1), "the config holds the client; only the pods lag")
		})
	}
	waitingForServer()

	applyCurrent := func() {
		t.Helper()
		eventually(t, func(g Gomega) {
			srv := get(g, ns, "sso", &hallpassv1.SSOServer{})
			reportApplied(g, ns, "sso", "sso-pod", srv.Status.ConfigHash)
			c := get(g, ns, "web", &hallpassv1.SSOClient{})
			g.Expect(condition(c.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
			g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
		})
	}
	applyCurrent()

	// A spec change is served only once the pods apply the config holding it.
	eventually(t, func(g Gomega) { reportApplied(g, ns, "sso", "sso-pod", oldHash) })
	eventually(t, func(g Gomega) {
		c := get(g, ns, "web", &hallpassv1.SSOClient{})
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.RedirectURIs = append(c.Spec.RedirectURIs, "https://web.example.com/second")
		g.Expect(k8s.Patch(context.Background(), c, patch)).To(Succeed())
	})
	waitingForServer()
	applyCurrent()
	cfg := func(g Gomega) []string {
		c := get(g, ns, "web", &hallpassv1.SSOClient{})
		served, ok := renderedConfig(g, ns, "sso").Client(c.Status.ClientID)
		g.Expect(ok).To(BeTrue())
		return served.RedirectURIs
	}
	g.Expect(cfg(g)).To(ContainElement("https://web.example.com/second"))
}

// TestANewClientsFirstStatusIsItsRendersVerdict checks that a new client's status is first
// written with what the render did with it (here: rendered, waiting for the pods), not
// first as Pending and then again: that extra write was a sixth of the API server's work for
// a burst of new clients. A client whose server does not render shows Pending at once, so
// the wait is never silent.
func TestANewClientsFirstStatusIsItsRendersVerdict(t *testing.T) {
	ctx := context.Background()
	watcher, err := client.NewWithWatch(restConfig, client.Options{Scheme: scheme})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	firstStatus := func(t *testing.T, ns string) metav1.Condition {
		t.Helper()
		w, err := watcher.Watch(ctx, &hallpassv1.SSOClientList{}, client.InNamespace(ns))
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		create(t, newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp))
		timeout := time.After(waitTimeout)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					t.Fatal("the watch of SSOClients ended")
				}
				if c, isClient := ev.Object.(*hallpassv1.SSOClient); isClient && len(c.Status.Conditions) > 0 {
					return condition(c.Status.Conditions, hallpassv1.SSOClientServed)
				}
			case <-timeout:
				t.Fatalf("the SSOClient got no status within %s", waitTimeout)
			}
		}
	}

	t.Run("a client of a server that renders is first seen with its verdict", func(t *testing.T) {
		ns := newNamespace(t, nil)
		create(t, newServer(ns, "sso"))
		eventually(t, func(g Gomega) {
			srv := get(g, ns, "sso", &hallpassv1.SSOServer{})
			g.Expect(condition(srv.Status.Conditions, hallpassv1.SSOServerConfigRendered).Status).To(Equal(metav1.ConditionTrue))
		})
		served := firstStatus(t, ns)
		NewWithT(t).Expect(served).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonWaitingForServer))
	})

	t.Run("a client of a server that cannot render says it waits for the render", func(t *testing.T) {
		ns := newNamespace(t, nil)
		// Someone else's Secret where the config goes: the server renders nothing.
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: configSecretName("sso")}})
		create(t, newServer(ns, "sso"))
		served := firstStatus(t, ns)
		NewWithT(t).Expect(served).To(haveCondition(metav1.ConditionUnknown, hallpassv1.ReasonPending))
		NewWithT(t).Expect(served.Message).To(ContainSubstring("waiting for SSOServer " + ns + "/sso to render"))
	})
}
