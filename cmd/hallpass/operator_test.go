package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/testutil/kubetest"
)

func TestOperatorLeaderElectionOutsideACluster(t *testing.T) {
	t.Run("without a Lease namespace it refuses to start, naming the flag", func(t *testing.T) {
		err := runOperator(context.Background(), []string{"--leader-elect"})
		if err == nil || !strings.Contains(err.Error(), "--leader-election-namespace") {
			t.Fatalf("err = %v, want one naming --leader-election-namespace", err)
		}
	})
	t.Run("with one it takes the Lease there", func(t *testing.T) {
		_, rc := kubetest.Start(t)
		if _, err := envtest.InstallCRDs(rc, envtest.CRDInstallOptions{Paths: []string{filepath.Join("..", "..", "config", "crd", "bases")}}); err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
		cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData}
		cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
		cfg.CurrentContext = "test"
		if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
			t.Fatal(err)
		}
		t.Setenv("KUBECONFIG", kubeconfig)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- runOperator(ctx, []string{"--leader-elect", "--leader-election-namespace=default",
				"--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-port=0"})
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Logf("the operator stopped with %v", err)
			}
		})

		c, err := client.New(rc, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var lease coordinationv1.Lease
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			select {
			case err := <-done:
				done <- err // for the cleanup, which waits for it
				t.Fatalf("the operator stopped: %v", err)
			default:
			}
			err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaderElectionID}, &lease)
			if err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no Lease %s held in namespace default after 30s: %v", leaderElectionID, err)
			}
		}
	})
}
