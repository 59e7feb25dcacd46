// Package kubetest starts a real kube-apiserver and etcd (envtest) for a test that needs a
// bare API server. The controllers, e2e and helm suites set up their own, with more.
package kubetest

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/envtestbin"
)

// Start starts an API server that stops when t ends, and returns its environment (for
// AddUser) and an administrator's config. Under -short it skips t.
func Start(t testing.TB) (*envtest.Environment, *rest.Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	_, file, _, _ := runtime.Caller(0)
	assets, err := envtestbin.Dir(context.Background(), filepath.Join(filepath.Dir(file), "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: envtestbin.StartTimeout}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return env, cfg
}
