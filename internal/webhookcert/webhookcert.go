// Package webhookcert gives the operator's admission webhook a serving certificate without
// requiring cert-manager: a self-signed CA and a serving certificate for the webhook
// Service, kept in one Secret that every operator replica shares, written to the webhook
// server's certificate directory, and trusted through the caBundle of the webhook
// configuration.
package webhookcert

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Keys of the Secret.
const (
	keyCACert  = "ca.crt"
	keyTLSCert = "tls.crt"
	keyTLSKey  = "tls.key"
)

// lifetime of the CA and serving certificate. Long, because rotating means restarting every
// replica; the operator renews when fewer than renewBefore remain at start.
const (
	lifetime    = 5 * 365 * 24 * time.Hour
	renewBefore = 30 * 24 * time.Hour
)

// Options say where the certificate lives and who trusts it.
type Options struct {
	// Namespace and SecretName of the Secret holding the CA and serving certificate.
	Namespace, SecretName string
	// Service is the webhook Service's name in Namespace; the certificate names its DNS names.
	Service string
	// CertDir is where the webhook server reads tls.crt and tls.key.
	CertDir string
	// WebhookConfiguration is the ValidatingWebhookConfiguration whose caBundle to set.
	WebhookConfiguration string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch,resourceNames=hallpass-validating-webhook-configuration

// Ensure makes the certificate exist (creating or renewing it), writes it to CertDir and
// sets the caBundle. c must not be a cache-backed client: it runs before the manager starts.
func Ensure(ctx context.Context, c client.Client, o Options) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	secret, err := ensureSecret(ctx, c, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.CertDir, 0o700); err != nil {
		return fmt.Errorf("create webhook certificate directory: %w", err)
	}
	for _, k := range []string{keyTLSCert, keyTLSKey} {
		if err := os.WriteFile(filepath.Join(o.CertDir, k), secret.Data[k], 0o600); err != nil {
			return fmt.Errorf("write webhook %s: %w", k, err)
		}
	}
	return setCABundle(ctx, c, o.WebhookConfiguration, secret.Data[keyCACert])
}

func ensureSecret(ctx context.Context, c client.Client, o Options) (*corev1.Secret, error) {
	var secret corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.SecretName}, &secret)
	switch {
	case err == nil && valid(secret.Data, o.Now()):
		return &secret, nil
	case err != nil && !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("get webhook certificate Secret: %w", err)
	}
	data, genErr := generate(o.Service, o.Namespace, o.Now())
	if genErr != nil {
		return nil, genErr
	}
	if err == nil {
		// Expiring or unreadable: renew in place. The resourceVersion we read makes a
		// concurrent renewal by another replica fail here, and that replica's wins below.
		secret.Data = data
		err = c.Update(ctx, &secret)
	} else {
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.SecretName},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		}
		err = c.Create(ctx, &secret)
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.SecretName}, &secret); err != nil {
			return nil, fmt.Errorf("get webhook certificate Secret written by another replica: %w", err)
		}
		return &secret, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write webhook certificate Secret: %w", err)
	}
	return &secret, nil
}

// valid reports whether data holds a CA and serving certificate that stay valid for longer
// than renewBefore.
func valid(data map[string][]byte, now time.Time) bool {
	for _, k := range []string{keyCACert, keyTLSCert} {
		block, _ := pem.Decode(data[k])
		if block == nil {
			return false
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil || now.Add(renewBefore).After(cert.NotAfter) {
			return false
		}
	}
	return len(data[keyTLSKey]) > 0
}

func generate(service, namespace string, now time.Time) (map[string][]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate webhook CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "hallpass webhook CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign webhook CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate webhook serving key: %w", err)
	}
	host := service + "." + namespace + ".svc"
	leaf := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host, host + ".cluster.local"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign webhook serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode webhook serving key: %w", err)
	}
	return map[string][]byte{
		keyCACert:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		keyTLSCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyTLSKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("read random serial: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

func setCABundle(ctx context.Context, c client.Client, name string, caPEM []byte) error {
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &cfg); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("webhook configuration %s is not installed (kustomize build config/default installs it): %w", name, err)
		}
		return fmt.Errorf("get webhook configuration %s: %w", name, err)
	}
	patch := client.MergeFrom(cfg.DeepCopy())
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig.CABundle = caPEM
	}
	if err := c.Patch(ctx, &cfg, patch); err != nil {
		return fmt.Errorf("set caBundle of webhook configuration %s: %w", name, err)
	}
	return nil
}
