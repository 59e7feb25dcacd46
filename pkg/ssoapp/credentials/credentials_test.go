package credentials_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/testutil/kubetest"
	"github.com/hallpass/hallpass/pkg/ssoapp/credentials"
)

// TestFromSecretReadsTheKeysTheSecretNames reads credentials Secrets as the operator
// writes them, from a real kube-apiserver: with the default keys, and with keys renamed
// by spec.credentials.keys, which the Secret's annotation names.
func TestFromSecretReadsTheKeysTheSecretNames(t *testing.T) {
	env, rc := kubetest.Start(t)
	user, err := env.AddUser(envtest.User{Name: "app", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)
	ctx := t.Context()

	tests := []struct {
		name        string
		annotations map[string]string
		data        map[string]string
	}{
		{name: "the default keys", data: map[string]string{"client_id": "id-1", "client_secret": "secret-1", "issuer": "https://sso.example.com"}},
		{name: "keys renamed by spec.credentials.keys",
			annotations: map[string]string{credentials.AnnotationKeys: "OIDC_CLIENT_ID,OIDC_CLIENT_SECRET"},
			data:        map[string]string{"OIDC_CLIENT_ID": "id-1", "OIDC_CLIENT_SECRET": "secret-1", "issuer": "https://sso.example.com"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app-" + string(rune('a'+i)), Annotations: tc.annotations},
				StringData: tc.data}
			if _, err := admin.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := credentials.FromSecret(ctx, kubeconfig, "default", s.Name, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got != (credentials.Credentials{ClientID: "id-1", ClientSecret: "secret-1", Issuer: "https://sso.example.com"}) {
				t.Fatalf("credentials = %+v", got)
			}
		})
	}
}
