package webhookcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hallpass/hallpass/internal/testutil/kubetest"
)

func TestEnsure(t *testing.T) {
	ctx := context.Background()
	_, cfg := kubetest.Start(t)
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	none := admissionregistrationv1.SideEffectClassNone
	webhookConfig := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "hallpass-validating-webhook-configuration"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "vssoclient.sso.hallpass.dev", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "default", Name: "hallpass-webhook-service"}},
		}},
	}
	if err := c.Create(ctx, webhookConfig); err != nil {
		t.Fatal(err)
	}
	opts := func(dir string, now time.Time) Options {
		return Options{Namespace: "default", SecretName: "hallpass-webhook-tls", Service: "hallpass-webhook-service",
			CertDir: dir, WebhookConfiguration: webhookConfig.Name, Now: func() time.Time { return now }}
	}

	t.Run("the first replica creates a certificate the API server can verify", func(t *testing.T) {
		dir := t.TempDir()
		if err := Ensure(ctx, c, opts(dir, time.Now())); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(webhookConfig), webhookConfig); err != nil {
			t.Fatal(err)
		}
		serveAndVerify(t, dir, webhookConfig.Webhooks[0].ClientConfig.CABundle, "hallpass-webhook-service.default.svc")
	})

	var first []byte
	t.Run("another replica reuses the same certificate", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		if err := Ensure(ctx, c, opts(a, time.Now())); err != nil {
			t.Fatal(err)
		}
		if err := Ensure(ctx, c, opts(b, time.Now())); err != nil {
			t.Fatal(err)
		}
		first = readFile(t, a, "tls.crt")
		if string(first) != string(readFile(t, b, "tls.crt")) {
			t.Fatal("two replicas serve different certificates")
		}
	})

	t.Run("a certificate near its expiry is renewed and trusted again", func(t *testing.T) {
		dir := t.TempDir()
		later := time.Now().Add(lifetime - renewBefore/2)
		if err := Ensure(ctx, c, opts(dir, later)); err != nil {
			t.Fatal(err)
		}
		if string(readFile(t, dir, "tls.crt")) == string(first) {
			t.Fatal("the expiring certificate was kept")
		}
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "hallpass-webhook-tls"}, &secret); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(webhookConfig), webhookConfig); err != nil {
			t.Fatal(err)
		}
		if string(webhookConfig.Webhooks[0].ClientConfig.CABundle) != string(secret.Data[keyCACert]) {
			t.Fatal("caBundle does not hold the renewed CA")
		}
	})
}

// serveAndVerify serves TLS with the written certificate and connects trusting only caPEM,
// as the API server does.
func serveAndVerify(t *testing.T, dir string, caPEM []byte, host string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no certificate")
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
		},
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("the webhook's certificate does not verify for %s: %v", host, err)
	}
	resp.Body.Close()
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
