package controllers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// conditionSetter writes conditions of one object and records an Event when a condition
// changes in a way a user cares about (newsworthy), so `kubectl describe` tells the story
// without log access. The same change goes to the operator's log, whose logger carries the
// object's key, for those who read logs rather than Events (and Events expire after an
// hour); the quiet changes of an object on its way to Ready are logged at debug level.
//
// Changes are told only once the status that holds them is written (patchStatus): a
// reconcile that read a copy older than the object's last status would otherwise tell
// changes that already happened, and miss those that did.
type conditionSetter struct {
	obj        client.Object
	conditions *[]metav1.Condition
	recorder   events.EventRecorder
	log        logr.Logger
	changes    []conditionChange
}

// conditionChange is one change of a condition, to be told once it is written.
type conditionChange struct {
	typ, reason, message string
	status               metav1.ConditionStatus
	newsworthy           bool
}

// newConditionSetter sets the conditions of obj, logging each change with the object's key.
func newConditionSetter(ctx context.Context, obj client.Object, conditions *[]metav1.Condition, recorder events.EventRecorder) *conditionSetter {
	return &conditionSetter{obj: obj, conditions: conditions, recorder: recorder, log: ctrl.LoggerFrom(ctx)}
}

func (s *conditionSetter) set(typ string, status metav1.ConditionStatus, reason, message string) {
	var previous *metav1.Condition
	if c := meta.FindStatusCondition(*s.conditions, typ); c != nil {
		// A copy: SetStatusCondition updates the condition in place.
		c := *c
		previous = &c
	}
	meta.SetStatusCondition(s.conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: s.obj.GetGeneration(),
	})
	if previous != nil && previous.Status == status && previous.Reason == reason {
		return
	}
	s.changes = append(s.changes, conditionChange{typ: typ, reason: reason, message: message, status: status,
		newsworthy: newsworthy(typ, previous, status, reason)})
}

// tell records an Event for each newsworthy change and logs every change, once the status
// holding them is written.
func (s *conditionSetter) tell() {
	for _, c := range s.changes {
		if !c.newsworthy {
			s.log.V(1).Info("condition changed", "condition", c.typ, "status", c.status, "reason", c.reason, "message", c.message)
			continue
		}
		eventType := corev1.EventTypeNormal
		if c.status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		note := c.message
		if note == "" {
			note = fmt.Sprintf("%s is %s", c.typ, c.status)
		}
		s.recorder.Eventf(s.obj, nil, eventType, c.reason, c.typ, "%s", note)
		s.log.Info("condition changed", "condition", c.typ, "status", c.status, "reason", c.reason, "message", c.message)
	}
	s.changes = nil
}

// waiting reports whether a condition is False only because the server has not got there
// yet: an SSOClient not yet rendered (Pending) or rendered and waiting for the server's pods.
// Progress, not a problem. (An SSOServer's ConfigApplied is Pending too while a pod serves an
// older config; that one is news, since a pod that cannot load a config stays there.)
func waiting(typ, reason string) bool {
	return reason == hallpassv1.ReasonWaitingForServer ||
		reason == hallpassv1.ReasonPending && (typ == hallpassv1.SSOClientServed || typ == hallpassv1.ConditionReady)
}

// newsworthy reports whether a condition's change from previous (nil: first observed) to
// status and reason is worth an Event: a problem (False, for a reason other than waiting),
// the end of a problem, or a True with a reason of its own (keys generated or rotated, a
// config applied). An object on its way to Ready passes through Unknown, waiting reasons
// and a first True: at ten thousand SSOClients those were seven Events each, and
// the one Event that mattered was lost among them.
func newsworthy(typ string, previous *metav1.Condition, status metav1.ConditionStatus, reason string) bool {
	switch {
	case status == metav1.ConditionUnknown:
		return false
	case status == metav1.ConditionFalse:
		return !waiting(typ, reason)
	case reason != hallpassv1.ReasonReconciled:
		return true
	default:
		// True and Reconciled: news only as the end of a problem.
		return previous != nil && previous.Status == metav1.ConditionFalse && !waiting(typ, previous.Reason)
	}
}

// readyFrom sets Ready from the given conditions: True when all are True, otherwise False
// with the reason and message of the first that is not.
func (s *conditionSetter) readyFrom(types ...string) {
	for _, t := range types {
		c := meta.FindStatusCondition(*s.conditions, t)
		if c == nil {
			s.set(hallpassv1.ConditionReady, metav1.ConditionUnknown, "Reconciling", t+" has not been observed yet")
			return
		}
		if c.Status != metav1.ConditionTrue {
			s.set(hallpassv1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
			return
		}
	}
	s.set(hallpassv1.ConditionReady, metav1.ConditionTrue, hallpassv1.ReasonReconciled, "")
}

// patchStatus writes the status of conds' object if it changed since before (and only then),
// joining its error with the reconcile error, and then tells the changes of its conditions.
// observedGeneration is only advanced when the reconcile succeeded, so it never claims a
// generation whose effects are not in place.
//
// The write is refused when the object changed after before was read: the cache can lag
// the API server, even behind this controller's own last status write, and a status
// computed from an older copy would carry the wrong transitions (and their Events) over
// the newer one. The reconcile then reports errStaleCopy and runs again (retryStaleCopy).
func patchStatus(ctx context.Context, c client.Client, before client.Object, conds *conditionSetter, observed *int64, reconcileErr error) error {
	obj := conds.obj
	if reconcileErr == nil || errors.Is(reconcileErr, reconcile.TerminalError(nil)) {
		*observed = obj.GetGeneration()
	}
	// A status that did not change is not written: an empty patch still costs a request.
	if data, err := client.MergeFrom(before).Data(obj); err == nil && string(data) == "{}" {
		return reconcileErr
	}
	err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case err == nil:
		conds.tell()
		return reconcileErr
	case apierrors.IsNotFound(err):
		return reconcileErr
	case apierrors.IsConflict(err) && reconcileErr == nil:
		return errStaleCopy
	default:
		return kerrors.NewAggregate([]error{reconcileErr, fmt.Errorf("patch status: %w", err)})
	}
}

// errStaleCopy: a reconcile read a copy of its object older than the object, and wrote nothing of its status.
var errStaleCopy = errors.New("the object changed after the copy this reconcile read")

// staleCopyRetry is how long a reconcile that read a stale copy waits before it runs
// again: the cache has caught up by then (it lags by milliseconds, by a fraction of a
// second on a loaded machine), and a status write refused costs the API server as much as
// one made.
const staleCopyRetry = time.Second

// retryStaleCopy runs a reconcile that read a stale copy again, as a matter of course
// rather than an error: the operator's log and error metrics are for problems.
func retryStaleCopy(r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		result, err := r.Reconcile(ctx, req)
		if errors.Is(err, errStaleCopy) {
			ctrl.LoggerFrom(ctx).V(1).Info("reconciling again: the cache's copy was older than the object")
			return reconcile.Result{RequeueAfter: staleCopyRetry}, nil
		}
		return result, err
	})
}

// statusCount is a count as a status field holds it (int32, as Kubernetes API conventions
// ask), saturating rather than wrapping around.
func statusCount(n int) int32 {
	return int32(min(n, math.MaxInt32)) //nolint:gosec // G115: bounded by the min above
}

// getLive reads the object a reconcile is for. It reports false, with nothing to do, when the
// object is gone or being deleted: what a resource of this operator leaves behind goes by
// owner reference.
func getLive(ctx context.Context, c client.Reader, key client.ObjectKey, obj client.Object) (bool, error) {
	if err := c.Get(ctx, key, obj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return obj.GetDeletionTimestamp().IsZero(), nil
}

// runPhases runs the phases of a reconcile in order, until one fails or says the reconcile
// cannot go on (a condition it set says why).
func runPhases[S any](ctx context.Context, s S, phases ...func(context.Context, S) (bool, error)) error {
	for _, phase := range phases {
		if proceed, err := phase(ctx, s); err != nil || !proceed {
			return err
		}
	}
	return nil
}
