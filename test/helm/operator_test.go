package helm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/loopback"
)

// localRunValues are what running the chart's operator as a local process needs, and why:
// leader election finds its namespace in the in-cluster ServiceAccount mount, which a local
// process does not have; and the API server could not reach the webhook through its
// Service's cluster DNS name, so the webhook stays off (it is failurePolicy Ignore anyway).
const localRunValues = `
leaderElection: {enabled: false}
logLevel: debug
extraArgs: [--webhook-port=0]
`

// TestChartOperatorReconcilesASampleServer installs the chart, runs its operator Deployment
// (the chart's args, env, probes and ServiceAccount, so only the chart's RBAC) as a local
// process with devcluster's pod runner, applies config/samples and waits for the SSOServer
// to be Ready and to serve its discovery document: what a user sees after helm install and
// kubectl apply -k config/samples.
func TestChartOperatorReconcilesASampleServer(t *testing.T) {
	// A pass takes seconds; the slack is for a busy machine's first start of the processes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const namespace = "hallpass-local"
	rel := release{name: "local", namespace: namespace, values: localRunValues}
	install(t, namespace, rel.render(t))

	work := t.TempDir()
	binary := filepath.Join(work, "hallpass")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/hallpass")
	build.Dir = env.repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hallpass: %v\n%s", err, out)
	}

	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("HALLPASS_TEST_VERBOSE") != "" {
			t.Logf("output of the operator and server processes:\n%s", logs.String())
		}
	})
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	mgr, err := ctrl.NewManager(env.restConfig, ctrl.Options{
		Scheme:                 env.scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	const operatorDeployment = "local-hallpass-operator"
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	runner, err := devcluster.SetupRunner(mgrCtx, mgr, devcluster.RunnerOptions{
		ServerBinary: binary, WorkDir: work, RestConfig: env.restConfig, Logs: logs,
		AlsoRun: func(d *appsv1.Deployment) bool {
			return d.Namespace == namespace && d.Name == operatorDeployment
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			t.Errorf("pod runner: %v", err)
		}
		runner.Stop()
	})

	ssoPort, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(ssoPort)
	samples, err := devcluster.ReadManifests(filepath.Join(env.repo, "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	devcluster.MapURLs(samples, map[string]string{
		"https://sso.example.com":  issuer,
		"https://app1.example.com": "http://localhost:3001",
		"https://app2.example.com": "http://localhost:3002",
	})
	if err := devcluster.Apply(ctx, env.k8s, "default", samples); err != nil {
		t.Fatal(err)
	}

	waitFor(ctx, t, "the chart's operator Deployment to be Available (its /readyz answers)", func() (bool, string) {
		var d appsv1.Deployment
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: operatorDeployment}, &d); err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas == 1, fmt.Sprintf("status %+v", d.Status)
	})
	waitFor(ctx, t, "the sample SSOServer to be Ready", func() (bool, string) {
		var srv hallpassv1.SSOServer
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "hallpass"}, &srv); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(srv.Status.Conditions, hallpassv1.ConditionReady)
		if cond == nil {
			return false, "no Ready condition yet"
		}
		return cond.Status == "True", cond.Reason + ": " + cond.Message
	})
	waitFor(ctx, t, "the sample server's pod to report serving the current config (ConfigApplied)", func() (bool, string) {
		var srv hallpassv1.SSOServer
		if err := env.k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "hallpass"}, &srv); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(srv.Status.Conditions, hallpassv1.SSOServerConfigApplied)
		if cond == nil {
			return false, "no ConfigApplied condition yet"
		}
		return cond.Status == "True" && srv.Status.AppliedConfigHash == srv.Status.ConfigHash && srv.Status.AppliedReplicas == 1,
			fmt.Sprintf("%s: %s (appliedReplicas %d)", cond.Reason, cond.Message, srv.Status.AppliedReplicas)
	})
	waitFor(ctx, t, "App 2's credentials Secret", func() (bool, string) {
		var s corev1.Secret
		err := env.k8s.Get(ctx, client.ObjectKey{Namespace: "default", Name: "app2-sso-credentials"}, &s)
		return err == nil && len(s.Data["client_secret"]) > 0, fmt.Sprintf("error %v, keys %d", err, len(s.Data))
	})

	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("the SSO server does not answer at its issuer: %v", err)
	}
	defer resp.Body.Close()
	var discovery struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&discovery); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery answered %s (decode error: %v)", resp.Status, err)
	}
	if discovery.Issuer != issuer {
		t.Errorf("discovery names issuer %q, want %q", discovery.Issuer, issuer)
	}
}

// waitFor polls check until it reports done, or fails the test with check's last word.
func waitFor(ctx context.Context, t *testing.T, what string, check func() (done bool, state string)) {
	t.Helper()
	for {
		done, state := check()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %s", what, state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// syncBuffer collects the processes' output from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
