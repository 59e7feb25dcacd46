package configsource

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Bounds of the status reports.
const (
	// DefaultReportInterval is the heartbeat: how often a pod re-reports what it serves when
	// nothing changes. The operator counts a report as fresh for three intervals.
	DefaultReportInterval = time.Minute
	// reportTimeout bounds one write to the API server.
	reportTimeout = 10 * time.Second
	// firstRetry is the first pause after a failed report; it doubles up to the interval.
	firstRetry = time.Second
)

// PodReport is what one server pod writes under its name into the status ConfigMap.
type PodReport struct {
	// ConfigHash is the config.Hash of the config the pod serves.
	ConfigHash string `json:"configHash"`
	// At is when the pod wrote the report.
	At time.Time `json:"at"`
}

// ParsePodReport decodes one entry of the status ConfigMap.
func ParsePodReport(value string) (PodReport, error) {
	var r PodReport
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		return PodReport{}, fmt.Errorf("parse pod report: %w", err)
	}
	return r, nil
}

// Reporter writes which config this pod serves into the server's status ConfigMap (created
// by the operator), under the pod's name, after every applied config and on a heartbeat. A
// JSON merge patch of its own key only means replicas never overwrite each other, and
// needs nothing but the patch verb on that one ConfigMap. A failed report is logged and
// retried with backoff; it never affects serving.
type Reporter struct {
	client    kubernetes.Interface
	configMap SecretRef
	pod       string
	hash      func() string
	logger    *slog.Logger
	// Interval is the heartbeat; DefaultReportInterval unless changed before Run.
	Interval time.Duration
	kick     chan struct{}
}

// NewReporter returns a Reporter for pod that reports hash() into configMap.
func NewReporter(client kubernetes.Interface, configMap SecretRef, pod string, hash func() string, logger *slog.Logger) *Reporter {
	return &Reporter{client: client, configMap: configMap, pod: pod, hash: hash, logger: logger, Interval: DefaultReportInterval, kick: make(chan struct{}, 1)}
}

// Applied asks for a report now, without waiting for it; Reloader.OnApplied calls it.
func (r *Reporter) Applied(string) {
	select {
	case r.kick <- struct{}{}:
	default: // a report is already pending and will carry the latest hash
	}
}

// Run reports at once, then after every Applied and every Interval, until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.kick:
		}
		next := r.Interval
		if err := r.Report(ctx); err != nil {
			failures++
			next = min(firstRetry<<min(failures-1, 16), r.Interval)
			r.logger.Warn("could not report the served config; serving goes on", "configMap", r.configMap.String(), "pod", r.pod, "retryIn", next, "err", err)
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// Report writes this pod's entry once.
func (r *Reporter) Report(ctx context.Context) error {
	value, err := json.Marshal(PodReport{ConfigHash: r.hash(), At: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{r.pod: string(value)}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	_, err = r.client.CoreV1().ConfigMaps(r.configMap.Namespace).Patch(ctx, r.configMap.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "hallpass-server"})
	if err != nil {
		return fmt.Errorf("patch ConfigMap %s: %w", r.configMap, err)
	}
	return nil
}
