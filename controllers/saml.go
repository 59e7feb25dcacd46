package controllers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

// samlCertificateLifetime is long because identity providers pin the service provider's
// certificate from its metadata, and replacing it means touching every IdP.
const samlCertificateLifetime = 5 * 365 * 24 * time.Hour

// reconcileSAMLServiceProvider creates, once, the key pair a SAML connection signs its
// requests with. It is never regenerated: IdPs have it registered.
func (r *IdentityConnectionReconciler) reconcileSAMLServiceProvider(ctx context.Context, s *connectionScope) (bool, error) {
	conn := s.conn
	if conn.Spec.SAML == nil {
		return true, nil
	}
	name := conn.SAMLServiceProviderSecretName()
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: name}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		return err == nil, err
	}
	keyPEM, certPEM, err := newServiceProviderKeyPair(fmt.Sprintf("hallpass %s/%s", conn.Namespace, conn.Name), time.Now())
	if err != nil {
		return false, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: conn.Namespace,
			Labels: map[string]string{hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			hallpassv1.SAMLServiceProviderKey:         keyPEM,
			hallpassv1.SAMLServiceProviderCertificate: certPEM,
		},
	}
	if err := ctrl.SetControllerReference(conn, secret, r.Scheme()); err != nil {
		return false, fmt.Errorf("own SAML service provider Secret: %w", err)
	}
	if err := r.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("create SAML service provider Secret %s: %w", name, err)
	}
	return true, nil
}

func newServiceProviderKeyPair(commonName string, now time.Time) (keyPEM, certPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate SAML service provider key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(samlCertificateLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign SAML service provider certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode SAML service provider key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
