// Package helm_test checks the Helm chart in charts/hallpass the way a user meets it: helm
// lint and helm template with the pinned helm binary, the rendered objects applied to a real
// kube-apiserver and etcd (envtest), which validates every one of them, and the operator
// Deployment of the chart run as a local process that reconciles a sample SSOServer.
package helm_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

// fieldOwner is the server-side apply field manager of what the tests install, as helm's
// would be.
const fieldOwner = client.FieldOwner("helm-chart-test")

// env is what TestMain started, shared by the tests of the package.
var env struct {
	repo  string
	chart string
	helm  string
	// helmHome keeps helm's cache, configuration and data out of the user's home.
	helmHome   string
	restConfig *rest.Config
	k8s        client.Client
	scheme     *runtime.Scheme
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping the chart suite under -short: it starts a kube-apiserver and builds helm")
		os.Exit(0)
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	var err error
	if env.repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.chart = filepath.Join(env.repo, "charts", "hallpass")
	if env.helm, err = helmBinary(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if env.helmHome, err = os.MkdirTemp("", "hallpass-helm-home-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(env.helmHome)

	assets, err := envtestbin.Dir(ctx, env.repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// No CRDs here: the tests install the chart's.
	testEnv := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: envtestbin.StartTimeout}
	if env.restConfig, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start envtest: %v\n", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	env.scheme = devcluster.Scheme()
	if env.k8s, err = client.New(env.restConfig, client.Options{Scheme: env.scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "create client: %v\n", err)
		return 1
	}
	return m.Run()
}

// helmBinary is $HALLPASS_HELM (make test sets it), else the pinned helm that `make helm`
// installs into bin/ on first use.
func helmBinary(ctx context.Context) (string, error) {
	if path := os.Getenv("HALLPASS_HELM"); path != "" {
		return path, nil
	}
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-s", "helm")
	cmd.Dir = env.repo
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("install helm (make helm): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// runHelm runs helm and returns its standard output, or an error holding everything it
// printed.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(env.helm, args...)
	cmd.Dir = env.repo
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(env.helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(env.helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(env.helmHome, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values (YAML) to a file for helm's -f.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	// Not t.TempDir: its name comes from the test's, and helm splits --values at commas.
	dir, err := os.MkdirTemp("", "hallpass-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// release is one `helm template` of the chart.
type release struct {
	name, namespace string
	// values is YAML given with -f; empty means the chart's defaults.
	values string
}

func (r release) args(t *testing.T, command string, extra ...string) []string {
	args := []string{command}
	if command == "template" {
		args = append(args, r.name)
	}
	args = append(args, env.chart)
	if command == "template" {
		args = append(args, "--namespace", r.namespace)
	}
	if r.values != "" {
		args = append(args, "--values", valuesFile(t, r.values))
	}
	return append(args, extra...)
}

// render runs helm template with the CRDs and decodes the objects.
func (r release) render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := runHelm(t, r.args(t, "template", "--include-crds")...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("decode helm template output: %v\n%s", err, out)
	}
	return objs
}

func decodeObjects(manifests string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// install applies the objects to the API server as `helm install --create-namespace` would:
// the release namespace, then the CRDs (waiting until they are served), then the rest.
func install(t *testing.T, namespace string, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(namespace)
	var crds, others []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, obj)
		} else {
			others = append(others, obj)
		}
	}
	apply(t, ns)
	apply(t, crds...)
	for _, crd := range crds {
		waitEstablished(ctx, t, crd.GetName())
	}
	apply(t, others...)
}

func apply(t *testing.T, objs ...*unstructured.Unstructured) {
	t.Helper()
	for _, obj := range objs {
		err := env.k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), fieldOwner, client.ForceOwnership)
		if err != nil {
			t.Fatalf("the API server refused %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func waitEstablished(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		err := env.k8s.Get(ctx, client.ObjectKey{Name: name}, crd)
		if err == nil && conditionTrue(crd, "Established") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s is not Established after 30s (error: %v, status: %v)", name, err, crd.Object["status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func conditionTrue(obj *unstructured.Unstructured, condition string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == condition && m["status"] == "True" {
			return true
		}
	}
	return false
}

// find returns the one object of kind and name in objs.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	var have []string
	for _, obj := range objs {
		have = append(have, obj.GetKind()+" "+obj.GetName())
	}
	t.Fatalf("the chart renders no %s %s; it renders %s", kind, name, strings.Join(have, ", "))
	return nil
}

// convert turns an unstructured object into a typed one.
func convert(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, into, true); err != nil {
		t.Fatalf("convert %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}
