package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

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

// TestOnlyWhatAConnectionOrAPICountsRecountsThem checks which changes of a client make
// its server's connections and APIs count their clients again: at ten thousand clients,
// each count written is an update the API server pays for.
func TestOnlyWhatAConnectionOrAPICountsRecountsThem(t *testing.T) {
	served := func(c *hallpassv1.SSOClient, status metav1.ConditionStatus) *hallpassv1.SSOClient {
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: hallpassv1.SSOClientServed, Status: status, Reason: "Test"})
		return c
	}
	accepted := func(c *hallpassv1.SSOClient, status metav1.ConditionStatus) *hallpassv1.SSOClient {
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: hallpassv1.SSOClientAccepted, Status: status, Reason: "Test"})
		return c
	}
	base := func() *hallpassv1.SSOClient {
		return accepted(newClient("team", "web", "platform", "sso", hallpassv1.RegularWebApp), metav1.ConditionTrue)
	}
	for _, tc := range []struct {
		name    string
		change  func(*hallpassv1.SSOClient) *hallpassv1.SSOClient
		recount bool
	}{
		{"a client that becomes served is not counted again", func(c *hallpassv1.SSOClient) *hallpassv1.SSOClient {
			return served(c, metav1.ConditionTrue)
		}, false},
		{"a client refused for its budget is counted again", func(c *hallpassv1.SSOClient) *hallpassv1.SSOClient {
			return accepted(c, metav1.ConditionFalse)
		}, true},
		{"a client that names other connections is counted again", func(c *hallpassv1.SSOClient) *hallpassv1.SSOClient {
			c.Spec.Connections, c.Generation = []string{"github"}, c.Generation+1
			return c
		}, true},
		{"a client that gets its client ID is counted again", func(c *hallpassv1.SSOClient) *hallpassv1.SSOClient {
			c.Status.ClientID = "new-id"
			return c
		}, true},
		{"a client whose labels change is counted again", func(c *hallpassv1.SSOClient) *hallpassv1.SSOClient {
			c.Labels = map[string]string{"tier": "gold"}
			return c
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := base()
			after := tc.change(before.DeepCopy())
			if got := (countChanged{}).Update(event.UpdateEvent{ObjectOld: before, ObjectNew: after}); got != tc.recount {
				t.Errorf("recount %v, want %v", got, tc.recount)
			}
		})
	}
}
