package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
// Changes are told once the status that holds them is written (patchStatus), as changes
// from the conditions it was written over: those of the copy the reconcile read, or, when
// that copy was older than the object, the object's own (writeOverCurrent).
type conditionSetter struct {
	obj      conditionedObject
	recorder events.EventRecorder
	log      logr.Logger
	// ops are the reconcile's decisions on conditions, in order; changes are what they
	// changed in the conditions they were applied to.
	ops     []conditionOp
	changes []conditionChange
}

// conditionedObject is a resource of this operator: each has conditions in its status.
type conditionedObject interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// conditionOp sets a condition, or removes it.
type conditionOp struct {
	metav1.Condition
	remove bool
}

// conditionChange is one change of a condition, to be told once it is written.
type conditionChange struct {
	metav1.Condition
	newsworthy bool
}

// newConditionSetter sets the conditions of obj, logging each change with the object's key.
func newConditionSetter(ctx context.Context, obj conditionedObject, recorder events.EventRecorder) *conditionSetter {
	return &conditionSetter{obj: obj, recorder: recorder, log: ctrl.LoggerFrom(ctx)}
}

func (s *conditionSetter) set(typ string, status metav1.ConditionStatus, reason, message string) {
	s.do(conditionOp{Condition: metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: s.obj.GetGeneration(),
	}})
}

// remove removes a condition, which is no news.
func (s *conditionSetter) remove(typ string) {
	s.do(conditionOp{Condition: metav1.Condition{Type: typ}, remove: true})
}

func (s *conditionSetter) do(op conditionOp) {
	s.ops = append(s.ops, op)
	conditions := s.obj.GetConditions()
	s.apply(&conditions, op)
	s.obj.SetConditions(conditions)
}

// apply applies op to conditions and notes what it changed.
func (s *conditionSetter) apply(conditions *[]metav1.Condition, op conditionOp) {
	if op.remove {
		meta.RemoveStatusCondition(conditions, op.Type)
		return
	}
	var previous *metav1.Condition
	if c := meta.FindStatusCondition(*conditions, op.Type); c != nil {
		// A copy: SetStatusCondition updates the condition in place.
		c := *c
		previous = &c
	}
	meta.SetStatusCondition(conditions, op.Condition)
	if previous != nil && previous.Status == op.Status && previous.Reason == op.Reason {
		return
	}
	s.changes = append(s.changes, conditionChange{op.Condition, newsworthy(op.Type, previous, op.Status, op.Reason)})
}

// replayOn applies the reconcile's decisions to current instead, the conditions as the API
// server holds them, and notes the changes from those.
func (s *conditionSetter) replayOn(current []metav1.Condition) {
	conditions := slices.Clone(current)
	s.changes = nil
	for _, op := range s.ops {
		s.apply(&conditions, op)
	}
	s.obj.SetConditions(conditions)
}

// tell records an Event for each newsworthy change and logs every change, once the status
// holding them is written.
func (s *conditionSetter) tell() {
	for _, c := range s.changes {
		if !c.newsworthy {
			s.log.V(1).Info("condition changed", "condition", c.Type, "status", c.Status, "reason", c.Reason, "message", c.Message)
			continue
		}
		eventType := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		note := c.Message
		if note == "" {
			note = fmt.Sprintf("%s is %s", c.Type, c.Status)
		}
		s.recorder.Eventf(s.obj, nil, eventType, c.Reason, c.Type, "%s", note)
		s.log.Info("condition changed", "condition", c.Type, "status", c.Status, "reason", c.Reason, "message", c.Message)
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
func (s *conditionSetter) readyFrom(conditionTypes ...string) {
	for _, t := range conditionTypes {
		c := meta.FindStatusCondition(s.obj.GetConditions(), t)
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
// The write holds only if the object has not changed since before was read. The cache can
// lag the API server, even behind this controller's own last status write; the reconcile's
// changes then go over the object as it is (writeOverCurrent).
func patchStatus(ctx context.Context, c client.Client, uncached client.Reader, before client.Object, conds *conditionSetter, observed *int64, reconcileErr error) error {
	obj := conds.obj
	if reconcileErr == nil || errors.Is(reconcileErr, reconcile.TerminalError(nil)) {
		*observed = obj.GetGeneration()
	}
	changed, err := client.MergeFrom(before).Data(obj)
	if err != nil {
		return kerrors.NewAggregate([]error{reconcileErr, fmt.Errorf("compute status patch: %w", err)})
	}
	// A status that did not change is not written: an empty patch still costs a request.
	if string(changed) == "{}" {
		return reconcileErr
	}
	err = writeStatus(ctx, c, obj, changed, before.GetResourceVersion())
	if apierrors.IsConflict(err) {
		err = writeOverCurrent(ctx, c, uncached, changed, conds)
	}
	switch {
	case err == nil:
		conds.tell()
		return reconcileErr
	case apierrors.IsNotFound(err):
		return reconcileErr
	default:
		return kerrors.NewAggregate([]error{reconcileErr, fmt.Errorf("patch status: %w", err)})
	}
}

// writeOverCurrent writes the status a reconcile computed from a copy older than the
// object over the object as the API server holds it: the status fields the reconcile
// changed (changed, the merge patch from its copy), and its decisions on conditions
// replayed on the object's conditions. Otherwise a transition would be told from the old
// copy's conditions: a recovery seen as a first Ready, with no Event, or a problem told
// twice. The reconcile is the newest of its object (the work queue runs one at a time), so
// what it decided stands.
func writeOverCurrent(ctx context.Context, c client.Client, uncached client.Reader, changed []byte, conds *conditionSetter) error {
	obj := conds.obj
	current, ok := obj.DeepCopyObject().(conditionedObject)
	if !ok {
		return fmt.Errorf("copy %T", obj)
	}
	if err := uncached.Get(ctx, client.ObjectKeyFromObject(obj), current); err != nil {
		return err
	}
	conds.log.V(1).Info("the cache's copy was older than the object; writing the status over the object as it is")
	conds.replayOn(current.GetConditions())
	return writeStatus(ctx, c, obj, changed, current.GetResourceVersion())
}

// writeStatus writes changed, a merge patch of obj's status, with obj's conditions whole in
// it, only if the object is still at resourceVersion version: a write since is a conflict.
func writeStatus(ctx context.Context, c client.Client, obj conditionedObject, changed []byte, version string) error {
	dec := json.NewDecoder(bytes.NewReader(changed))
	dec.UseNumber() // numbers pass through as written
	var patch map[string]any
	if err := dec.Decode(&patch); err != nil {
		return fmt.Errorf("read status patch: %w", err)
	}
	status, _ := patch["status"].(map[string]any)
	if status == nil {
		status = map[string]any{}
	}
	status["conditions"] = obj.GetConditions()
	patch["status"] = status
	patch["metadata"] = map[string]any{"resourceVersion": version}
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("write status patch: %w", err)
	}
	return c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, data))
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
