package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestAStatusFromAStaleCopyIsToldAsAChangeFromTheObject covers a cache that lags the API
// server, even behind the controller's own last status write: a reconcile that read an
// older copy writes what it decided over the object as it is, and tells the changes from
// the object's conditions, not from the copy's.
func TestAStatusFromAStaleCopyIsToldAsAChangeFromTheObject(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, nil)
	create(t, newAPI(ns, "orders", "missing", "https://orders.example.com/api"))
	eventually(t, func(g Gomega) {
		a := get(g, ns, "orders", &hallpassv1.SSOAPI{})
		g.Expect(condition(a.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))
	})
	// writeStatus writes the SSOAPI's status as an earlier reconcile did (the controller
	// ignores status writes) and returns the object as written.
	writeStatus := func(g Gomega, change func(*hallpassv1.SSOAPI)) *hallpassv1.SSOAPI {
		a := get(g, ns, "orders", &hallpassv1.SSOAPI{})
		patch := client.MergeFrom(a.DeepCopy())
		change(a)
		g.Expect(k8s.Status().Patch(ctx, a, patch)).To(Succeed())
		return a
	}
	setReady := func(status metav1.ConditionStatus, reason string) func(*hallpassv1.SSOAPI) {
		return func(a *hallpassv1.SSOAPI) {
			meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{Type: hallpassv1.ConditionReady, Status: status, Reason: reason, Message: "as written"})
		}
	}
	// reconcileFrom decides that the SSOAPI is Ready, from copy.
	reconcileFrom := func(g Gomega, copy *hallpassv1.SSOAPI) []string {
		recorder := events.NewFakeRecorder(10)
		before := copy.DeepCopy()
		conds := newConditionSetter(ctx, copy, recorder)
		conds.set(hallpassv1.ConditionReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "served")
		g.Expect(patchStatus(ctx, k8s, k8s, before, conds, &copy.Status.ObservedGeneration, nil)).To(Succeed())
		close(recorder.Events)
		var told []string
		for e := range recorder.Events {
			told = append(told, e)
		}
		return told
	}

	t.Run("the end of a problem the copy did not show yet is told", func(t *testing.T) {
		g := NewWithT(t)
		stale := writeStatus(g, func(a *hallpassv1.SSOAPI) { a.Status.Conditions = nil })
		written := writeStatus(g, func(a *hallpassv1.SSOAPI) {
			setReady(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound)(a)
			a.Status.Clients = 3
		})

		g.Expect(reconcileFrom(g, stale)).To(ConsistOf("Normal Reconciled served"))
		now := get(g, ns, "orders", &hallpassv1.SSOAPI{})
		g.Expect(condition(now.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(now.Status.Clients).To(Equal(int32(3)), "what the reconcile did not change stays as the object had it")
		g.Expect(now.ResourceVersion).NotTo(Equal(written.ResourceVersion))
	})

	t.Run("a recovery the object already shows is not told again", func(t *testing.T) {
		g := NewWithT(t)
		stale := writeStatus(g, setReady(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))
		written := writeStatus(g, setReady(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		since := condition(written.Status.Conditions, hallpassv1.ConditionReady).LastTransitionTime

		g.Expect(reconcileFrom(g, stale)).To(BeEmpty())
		ready := condition(get(g, ns, "orders", &hallpassv1.SSOAPI{}).Status.Conditions, hallpassv1.ConditionReady)
		g.Expect(ready).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
		g.Expect(ready.Message).To(Equal("served"))
		g.Expect(ready.LastTransitionTime.Time).To(BeTemporally("==", since.Time), "Ready did not change: it keeps the time it became True")
	})

	t.Run("a current copy is told from its own conditions", func(t *testing.T) {
		g := NewWithT(t)
		current := writeStatus(g, setReady(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))
		g.Expect(reconcileFrom(g, current)).To(ConsistOf("Normal Reconciled served"))
	})
}
