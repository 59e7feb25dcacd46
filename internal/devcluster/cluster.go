// Package devcluster runs Hallpass on one machine without a cluster: a real kube-apiserver
// and etcd (envtest's control plane), the operator's controllers in-process, and a local pod
// runner that starts the `hallpass server` processes the operator's Deployments describe.
// `hallpass dev`, `make demo` and the end-to-end tests use it.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/controllers"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

// Options configure a dev cluster.
type Options struct {
	// CRDDir holds the CRD manifests (config/crd/bases).
	CRDDir string
	// BinaryAssetsDir holds kube-apiserver and etcd (hack/envtest-binaries.sh prints it).
	BinaryAssetsDir string
	// ServerBinary is the hallpass binary that server pods run.
	ServerBinary string
	// WorkDir holds everything the cluster writes; a temporary directory when empty, removed
	// by Stop.
	WorkDir string
	// Logs receives the pods' output; os.Stderr when nil.
	Logs io.Writer
	// Logger is the operator's and runner's logger; logr.Discard when unset.
	Logger logr.Logger
	// OperatorTransport, if set, wraps the transport of the operator's (and the pod
	// runner's) API requests, for a benchmark to count them.
	OperatorTransport func(http.RoundTripper) http.RoundTripper
	// ClientReconcilers is how many SSOClients the operator reconciles at once; its
	// default when zero.
	ClientReconcilers int
	// AuthenticationConfig, when set, is the kube-apiserver's --authentication-config file
	// (an AuthenticationConfiguration). The API server re-reads it when it changes, so it may
	// be written again once the SSO server it trusts is running.
	AuthenticationConfig string
	// ExternalOperator leaves the operator to the caller (a benchmark runs `hallpass
	// operator` as a process of its own, to measure it alone); the dev cluster runs only the
	// pod runner.
	ExternalOperator bool
	// APIServerFlags are further kube-apiserver flags, such as "profiling": "true" for a
	// benchmark that profiles it.
	APIServerFlags map[string]string
}

// ServerImage is the image the dev cluster's operator gives server pods; the pod runner runs
// the server binary whatever the image.
const ServerImage = "hallpass/hallpass:dev"

// Cluster is a running dev cluster.
type Cluster struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// Client is a client with the Hallpass and Kubernetes kinds.
	Client client.Client
	// Kubeconfig is the path of an administrator kubeconfig for kubectl and the example apps.
	Kubeconfig string
	// Runner is the local pod runner.
	Runner *Runner

	env        *envtest.Environment
	log        logr.Logger
	stopMgr    context.CancelFunc
	mgrDone    chan error
	workDir    string
	removeWork bool
}

// Scheme holds the kinds of the dev cluster.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(hallpassv1.AddToScheme(s))
	return s
}

// Start starts the control plane, installs the CRDs and runs the operator and the pod
// runner. Stop ends them all; cancelling ctx also stops the operator and the pods, but
// only Stop ends the control plane.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.ServerBinary == "" {
		return nil, errors.New("start dev cluster: no server binary")
	}
	if opts.Logs == nil {
		opts.Logs = os.Stderr
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	ctrl.SetLogger(opts.Logger)
	c := &Cluster{workDir: opts.WorkDir, log: opts.Logger}
	if c.workDir == "" {
		if c.workDir, err = os.MkdirTemp("", "hallpass-dev-"); err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
		c.removeWork = true
	} else if err := os.MkdirAll(c.workDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	c.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{opts.CRDDir},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: opts.BinaryAssetsDir,
		// The first start on a busy machine compiles nothing but can be slow to settle.
		ControlPlaneStartTimeout: envtestbin.StartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if opts.AuthenticationConfig != "" {
		c.env.ControlPlane.GetAPIServer().Configure().Set("authentication-config", opts.AuthenticationConfig)
	}
	for name, value := range opts.APIServerFlags {
		c.env.ControlPlane.GetAPIServer().Configure().Set(name, value)
	}
	if c.Config, err = c.env.Start(); err != nil {
		c.env = nil
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	scheme := Scheme()
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	if c.Kubeconfig, err = c.writeAdminKubeconfig(); err != nil {
		return nil, err
	}

	operatorConfig := rest.CopyConfig(c.Config)
	if opts.OperatorTransport != nil {
		operatorConfig.Wrap(opts.OperatorTransport)
	}
	mgr, err := ctrl.NewManager(operatorConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 opts.Logger,
		// Controller names are unique per process for their metrics; a test binary may run a
		// dev cluster beside another operator.
		Controller: ctrlconfig.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	c.stopMgr = stopMgr
	if !opts.ExternalOperator {
		if err := controllers.Setup(mgrCtx, mgr, controllers.Options{ServerImage: ServerImage, ClientReconcilers: opts.ClientReconcilers}); err != nil {
			return nil, err
		}
	}
	if c.Runner, err = SetupRunner(mgrCtx, mgr, RunnerOptions{
		ServerBinary: opts.ServerBinary, WorkDir: c.workDir, RestConfig: c.Config, Logs: opts.Logs,
	}); err != nil {
		return nil, err
	}
	c.mgrDone = make(chan error, 1)
	go func() { c.mgrDone <- mgr.Start(mgrCtx) }()
	return c, nil
}

// writeAdminKubeconfig writes a kubeconfig of a system:masters user for people and the
// example apps; the operator and tests use Config directly.
func (c *Cluster) writeAdminKubeconfig() (string, error) {
	user, err := c.env.AddUser(envtest.User{Name: "hallpass-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("create admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("render admin kubeconfig: %w", err)
	}
	path := filepath.Join(c.workDir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write admin kubeconfig: %w", err)
	}
	return path, nil
}

// Stop stops the operator, every pod and the control plane, and removes a temporary work
// directory. It is safe to call more than once.
func (c *Cluster) Stop() {
	if c.stopMgr != nil {
		c.stopMgr()
		select {
		case err := <-c.mgrDone:
			if err != nil {
				c.log.Error(err, "Operator manager stopped with an error")
			}
		case <-time.After(30 * time.Second):
			c.log.Info("Operator manager did not stop within 30s; stopping the rest anyway")
		}
		c.stopMgr = nil
	}
	if c.Runner != nil {
		c.Runner.Stop()
	}
	if c.env != nil {
		_ = c.env.Stop()
		c.env = nil
	}
	if c.removeWork {
		_ = os.RemoveAll(c.workDir)
		c.removeWork = false
	}
}

// WaitServersReady waits until every SSOServer in namespace is Ready, or timeout.
func (c *Cluster) WaitServersReady(ctx context.Context, namespace string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		var list hallpassv1.SSOServerList
		if err := c.Client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			last = err.Error()
		} else {
			last = ""
			for _, s := range list.Items {
				if !meta.IsStatusConditionTrue(s.Status.Conditions, hallpassv1.ConditionReady) {
					msg := "not observed yet"
					if cond := meta.FindStatusCondition(s.Status.Conditions, hallpassv1.ConditionReady); cond != nil {
						msg = cond.Reason + ": " + cond.Message
					}
					last += fmt.Sprintf("SSOServer %s/%s is not Ready (%s); ", s.Namespace, s.Name, msg)
				}
			}
			if len(list.Items) == 0 {
				last = "no SSOServer in namespace " + namespace
			}
			if last == "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for SSOServers to be Ready: %s", strings.TrimSuffix(last, "; "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
