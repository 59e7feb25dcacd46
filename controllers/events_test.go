package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// eventsAbout lists "type reason" of the Events recorded about the named object.
func eventsAbout(g Gomega, ns, name string) []string {
	var events eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Type+" "+e.Reason)
		}
	}
	return out
}

// TestEventsTellProblemsNotProgress checks what `kubectl describe ssoclient` shows: a client
// on its way to Ready (Pending, waiting for the server's pods, then served) records no
// Event at all, while a client whose server does not exist records a Warning saying so, and
// a Normal Event once that is over.
func TestEventsTellProblemsNotProgress(t *testing.T) {
	ns := newNamespace(t, nil)
	create(t, newServer(ns, "sso"), newClient(ns, "web", ns, "sso", hallpassv1.RegularWebApp),
		newClient(ns, "lost", ns, "later", hallpassv1.RegularWebApp))
	readyClient(t, ns, "web")
	eventually(t, func(g Gomega) {
		g.Expect(eventsAbout(g, ns, "lost")).To(ContainElement(corev1.EventTypeWarning + " " + hallpassv1.ReasonServerNotFound))
	})
	create(t, newServer(ns, "later"))
	readyClient(t, ns, "lost")
	eventually(t, func(g Gomega) {
		g.Expect(eventsAbout(g, ns, "lost")).To(ContainElement(corev1.EventTypeNormal + " " + hallpassv1.ReasonReconciled))
	})
	NewWithT(t).Expect(eventsAbout(NewWithT(t), ns, "web")).To(BeEmpty(),
		"a healthy client's way to Ready is no news; the other client's Events are recorded by now")
}
