package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server/configsource"
	"github.com/hallpass/hallpass/internal/testutil/kubetest"
)

// TestServerCommandReportsTheConfigItServes runs `hallpass server` in Secret mode against a
// real kube-apiserver (envtest), as a ServiceAccount bound to the rules the operator gives
// the server's Role, and checks that the pod's entry in the status ConfigMap carries the
// hash of the config it serves: at start, and after the config Secret changes (long before
// the one-minute heartbeat).
func TestServerCommandReportsTheConfigItServes(t *testing.T) {
	_, rc := kubetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(rc)

	const ns, pod = "sso", "sso-7d9f8c6b5-x2x4q"
	dir := t.TempDir()
	cfg := minimalConfig("http://"+freeAddr(t), dir)
	cfgPath, keysPath := writeConfigFiles(t, dir, cfg)
	c0, k0, err := configsource.ReadFiles(cfgPath, keysPath)
	if err != nil {
		t.Fatal(err)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	must(admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sso-config"}, Data: map[string][]byte{config.ConfigSecretKey: c0}}, metav1.CreateOptions{}))
	must(admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sso-signing-keys"}, Data: map[string][]byte{config.KeysSecretKey: k0}}, metav1.CreateOptions{}))
	must(admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sso-status"}}, metav1.CreateOptions{}))
	// The rules of the Role the operator writes for server "sso" (controllers/workload.go).
	must(admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "sso"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"sso-config", "sso-signing-keys"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"sso-status"}, Verbs: []string{"patch"}},
		},
	}, metav1.CreateOptions{}))
	must(admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "sso"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "sso"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "sso", Namespace: ns}},
	}, metav1.CreateOptions{}))

	// A kubeconfig that acts as the server's ServiceAccount.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	kc.AuthInfos["pod"] = &clientcmdapi.AuthInfo{ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData, Impersonate: "system:serviceaccount:" + ns + ":sso"}
	kc.Contexts["pod"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "pod"}
	kc.CurrentContext = "pod"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	t.Setenv("POD_NAME", pod)
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{"--config-secret", ns + "/sso-config", "--keys-secret", ns + "/sso-signing-keys",
			"--status-configmap", ns + "/sso-status", "--kubeconfig", kubeconfig, "--data-dir", dir,
			"--listen", freeAddr(t), "--metrics-listen", freeAddr(t)})
	}()
	waitForReport := func(what, wantHash string, notBefore time.Time) {
		t.Helper()
		var last string
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-done:
				t.Fatalf("the server stopped: %v", err)
			default:
			}
			cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "sso-status", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			last = cm.Data[pod]
			if r, err := configsource.ParsePodReport(last); err == nil && r.ConfigHash == wantHash && !r.At.Before(notBefore) {
				if len(cm.Data) != 1 {
					t.Errorf("the ConfigMap holds %d entries, want only the pod's own: %v", len(cm.Data), cm.Data)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: the pod's entry is %q, want configHash %s", what, last, wantHash)
	}
	start := time.Now().Truncate(time.Second)
	waitForReport("after start", digest.Of(c0), start)

	cfg.Branding.Title = "Changed"
	c1, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := admin.CoreV1().Secrets(ns).Get(ctx, "sso-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[config.ConfigSecretKey] = c1
	changed := time.Now().Truncate(time.Second)
	must(admin.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}))
	waitForReport("after the config Secret changed", digest.Of(c1), changed)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("server: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("the server did not stop")
	}
}
