package controllers

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// TestAStatusFromAStaleCopyIsNeitherWrittenNorTold is the guard against a cache that lags
// the API server, even behind the controller's own last status write: a status computed
// from a copy older than the object is not written over the newer one, and the transitions
// it saw are not told as Events. Computed again from the current object, it is both.
func TestAStatusFromAStaleCopyIsNeitherWrittenNorTold(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	create(t, newAPI(ns, "orders", "missing", "https://orders.example.com/api"))
	var stale *hallpassv1.SSOAPI
	eventually(t, func(g Gomega) {
		stale = get(g, ns, "orders", &hallpassv1.SSOAPI{})
		g.Expect(condition(stale.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))
	})
	// The status changes after the copy was read.
	newer := stale.DeepCopy()
	newer.Status.Clients = 3
	g.Expect(k8s.Status().Patch(ctx, newer, client.MergeFrom(stale))).To(Succeed())

	recorder := events.NewFakeRecorder(10)
	reconcileFrom := func(copy *hallpassv1.SSOAPI) error {
		before := copy.DeepCopy()
		conds := newConditionSetter(ctx, copy, &copy.Status.Conditions, recorder)
		conds.set(hallpassv1.ConditionReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "served")
		return patchStatus(ctx, k8s, before, conds, &copy.Status.ObservedGeneration, nil)
	}

	g.Expect(reconcileFrom(stale)).To(MatchError(errStaleCopy))
	g.Expect(recorder.Events).To(BeEmpty(), "a transition seen on a stale copy is not told")
	current := get(g, ns, "orders", &hallpassv1.SSOAPI{})
	g.Expect(current.Status.Clients).To(Equal(int32(3)), "the newer status stays")
	g.Expect(condition(current.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionFalse, hallpassv1.ReasonServerNotFound))

	g.Expect(reconcileFrom(current)).To(Succeed())
	g.Expect(recorder.Events).To(Receive(Equal("Normal Reconciled served")), "the end of a problem is news")
	written := get(g, ns, "orders", &hallpassv1.SSOAPI{})
	g.Expect(written.Status.Clients).To(Equal(int32(3)))
	g.Expect(condition(written.Status.Conditions, hallpassv1.ConditionReady)).To(haveCondition(metav1.ConditionTrue, hallpassv1.ReasonReconciled))
}

func TestAReconcileThatReadAStaleCopyRunsAgainWithoutAnError(t *testing.T) {
	failed := errors.New("the API server is unreachable")
	for _, tc := range []struct {
		name       string
		result     reconcile.Result
		err        error
		wantResult reconcile.Result
		wantErr    error
	}{
		{name: "a stale copy runs again shortly, as no error", err: errStaleCopy, wantResult: reconcile.Result{RequeueAfter: staleCopyRetry}},
		{name: "an error stays an error", err: failed, wantErr: failed},
		{name: "a requested requeue stays", result: reconcile.Result{RequeueAfter: 42}, wantResult: reconcile.Result{RequeueAfter: 42}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := retryStaleCopy(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
				return tc.result, tc.err
			}))
			result, err := r.Reconcile(context.Background(), reconcile.Request{})
			g.Expect(result).To(Equal(tc.wantResult))
			if tc.wantErr == nil {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(tc.wantErr))
			}
		})
	}
}
