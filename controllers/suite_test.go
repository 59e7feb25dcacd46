package controllers

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/testutil/logbuf"
	"github.com/hallpass/hallpass/internal/testutil/testclock"
)

// The suite runs one real kube-apiserver and etcd (built by hack/envtest-binaries.sh) for
// the whole package, and the operator's controllers in a manager against it. Each test
// works in namespaces of its own.
var (
	testEnv    *envtest.Environment
	restConfig *rest.Config
	k8s        client.Client
	scheme     = runtime.NewScheme()
	clock      = testclock.New(time.Now()) // the operator's clock, so key rotation can be crossed
	stopMgr    context.CancelFunc
	mgrDone    chan struct{}
	// operatorLog holds the operator's log lines from info up, as JSON.
	operatorLog = &logbuf.Buffer{}
)

const testServerImage = "hallpass/hallpass:test"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the controllers suite under -short: it starts a kube-apiserver")
		os.Exit(0)
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hallpassv1.AddToScheme(scheme))
	// The operator's log goes to stderr at zapLevel, and its info lines also to operatorLog,
	// which tests read.
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel()),
		zap.RawZapOpts(uberzap.WrapCore(func(c zapcore.Core) zapcore.Core {
			info := zapcore.NewCore(zapcore.NewJSONEncoder(uberzap.NewProductionEncoderConfig()), zapcore.AddSync(operatorLog), zapcore.InfoLevel)
			return zapcore.NewTee(c, info)
		}))))

	assets, err := envtestbin.Dir(context.Background(), "..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: envtestbin.StartTimeout,
		// The generated webhook configuration; envtest serves it with its own certificate.
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "config", "webhook")}},
	}
	// Clusters such as OpenShift let only whoever may set an owner's finalizers block the
	// owner's deletion: the operator's role must be enough there too.
	testEnv.ControlPlane.GetAPIServer().Configure().Append("enable-admission-plugins", "OwnerReferencesPermissionEnforcement")
	restConfig, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	if k8s, err = client.New(restConfig, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "create client: %v\n", err)
		return 1
	}
	if err := bindOperatorRole(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := startManager(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopManager()
	return m.Run()
}

// operatorUser is who the manager acts as: a user bound only to the operator's generated
// ClusterRole, so every test also proves that role is enough.
const operatorUser = "hallpass-operator"

func bindOperatorRole() error {
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return fmt.Errorf("read operator role: %w", err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(raw, &role); err != nil {
		return fmt.Errorf("parse operator role: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "manager-rolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}},
	}
	for _, obj := range []client.Object{&role, binding} {
		if err := k8s.Create(context.Background(), obj); err != nil {
			return fmt.Errorf("create %T: %w", obj, err)
		}
	}
	return nil
}

// startManager runs the operator's controllers, as `hallpass operator` does, with only the
// operator's RBAC.
func startManager() error {
	asOperator := rest.CopyConfig(restConfig)
	asOperator.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	hook := testEnv.WebhookInstallOptions
	mgr, err := ctrl.NewManager(asOperator, ctrl.Options{
		Scheme:        scheme,
		Cache:         CacheOptions(),
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir}),
		// Several managers run one after the other in one process (restart tests).
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := Setup(ctx, mgr, Options{ServerImage: testServerImage, ServerLogLevel: "warn", Now: clock.Now, Webhooks: true}); err != nil {
		cancel()
		return err
	}
	stopMgr, mgrDone = cancel, make(chan struct{})
	go func() {
		defer close(mgrDone)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "manager stopped: %v\n", err)
		}
	}()
	return nil
}

func stopManager() {
	stopMgr()
	<-mgrDone
}

// zapLevel keeps the operator's log to errors unless HALLPASS_TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("HALLPASS_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// newNamespace creates a namespace for one test, with optional labels.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-", Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}
