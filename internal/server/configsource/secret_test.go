package configsource_test

import (
	"compress/gzip"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/testutil/kubetest"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

// TestSecretReload runs against a real kube-apiserver (envtest) and watches the Secrets as
// the server's own ServiceAccount, whose Role names only those two Secrets.
func TestSecretReload(t *testing.T) {
	_, rc := kubetest.Start(t)
	admin := kubernetes.NewForConfigOrDie(rc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const ns = "sso"
	f := newFixture(t)
	c, k := f.encode(f.cfg, f.keys)
	mustCreate(t, func() error {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	for name, data := range map[string]map[string][]byte{
		"sso-config":       {config.ConfigSecretKey: c},
		"sso-signing-keys": {config.KeysSecretKey: k},
		"unrelated":        {"x": []byte("y")},
	} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "sso-server"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
				ResourceNames: []string{"sso-config", "sso-signing-keys"}, Verbs: []string{"get", "list", "watch"}}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "sso-server"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "sso-server"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sso-server", Namespace: ns}},
		}, metav1.CreateOptions{})
		return err
	})
	asServer := rest.CopyConfig(rc)
	asServer.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":sso-server"}
	client := kubernetes.NewForConfigOrDie(asServer)
	if _, err := client.CoreV1().Secrets(ns).Get(ctx, "unrelated", metav1.GetOptions{}); err == nil {
		t.Fatal("the test Role is too broad: the server may read other Secrets")
	}

	cfgRef, keysRef := configsource.SecretRef{Namespace: ns, Name: "sso-config"}, configsource.SecretRef{Namespace: ns, Name: "sso-signing-keys"}
	c0, k0, err := configsource.GetSecrets(ctx, client, cfgRef, keysRef)
	if err != nil {
		t.Fatalf("read the Secrets as the server: %v", err)
	}
	rl := configsource.NewReloader(f.srv.Apply, f.metrics, slog.New(slog.DiscardHandler), c0, k0)
	watchErr := make(chan error, 1)
	go func() { watchErr <- configsource.WatchSecrets(ctx, client, cfgRef, keysRef, rl) }()

	updateKey := func(key string, data []byte) {
		t.Helper()
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, "sso-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Data = map[string][]byte{key: data}
		if _, err := admin.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update := func(data []byte) { t.Helper(); updateKey(config.ConfigSecretKey, data) }
	newCfg, _ := f.encode(f.withClient(), f.keys)
	update(newCfg)
	if !within(2*time.Second, func() bool { return f.accepts("app2") }) {
		select {
		case err := <-watchErr:
			t.Fatalf("watch ended: %v", err)
		default:
		}
		t.Fatal("a client added to the config Secret was not served within 2s")
	}
	update([]byte(strings.Replace(string(newCfg), "issuer:", "isuer:", 1)))
	if !within(2*time.Second, func() bool { return f.failures() == 1 }) {
		t.Fatalf("reload failures = %v, want 1", f.failures())
	}
	if !f.accepts("app2") {
		t.Fatal("the last good config stopped serving after an invalid Secret")
	}

	// The operator writes the config compressed (docs/adr/0013); a server started on the
	// plain key follows it there.
	withApp3 := f.withClient()
	withApp3.Clients = append(withApp3.Clients, config.Client{ID: "app3", Type: config.ClientSinglePageApp,
		RedirectURIs: []string{"https://app3.example/cb"}, SingleSignOn: true, RequirePKCE: true, Connections: []string{"db"}})
	plain, _ := f.encode(withApp3, f.keys)
	compressed, err := config.Compress(plain, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	updateKey(config.CompressedConfigSecretKey, compressed)
	if !within(2*time.Second, func() bool { return f.accepts("app3") }) {
		t.Fatal("a client added to the compressed config was not served within 2s")
	}
	if got := rl.AppliedConfigHash(); got != digest.Of(plain) {
		t.Fatalf("applied config hash %s, want the hash of the uncompressed config %s", got, digest.Of(plain))
	}
	updateKey(config.CompressedConfigSecretKey, []byte("not gzip"))
	if !within(2*time.Second, func() bool { return f.failures() == 2 }) {
		t.Fatalf("reload failures = %v, want 2", f.failures())
	}
	if !f.accepts("app3") {
		t.Fatal("the last good config stopped serving after a compressed value that does not decompress")
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}
