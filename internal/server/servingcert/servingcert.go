// Package servingcert keeps the certificate a server serves TLS with, from two files
// (standalone) or a kubernetes.io/tls Secret (in a cluster), and follows their rotation
// without a restart. A replacement that does not parse, does not match its key or has
// expired is refused and logged; the last good certificate keeps serving.
package servingcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hallpass/hallpass/internal/server/configsource"
)

// Keeper holds the certificate served and replaces it only with a valid one.
type Keeper struct {
	logger *slog.Logger
	now    func() time.Time
	// OnLoad, when set, is called with every certificate that starts serving (metrics).
	OnLoad func(leaf *x509.Certificate)

	cert atomic.Pointer[tls.Certificate]

	mu       sync.Mutex
	lastSeen []byte // the pair last loaded or refused, so an unchanged one is not logged again
}

// NewKeeper returns a Keeper without a certificate; Load gives it one.
func NewKeeper(logger *slog.Logger) *Keeper {
	return &Keeper{logger: logger, now: time.Now}
}

// Load makes certPEM (the certificate, then its chain) and keyPEM the pair served, unless
// they are what was last seen. from names where they came from in log lines.
func (k *Keeper) Load(from string, certPEM, keyPEM []byte) error {
	seen := bytes.Join([][]byte{certPEM, keyPEM}, []byte{0})
	k.mu.Lock()
	defer k.mu.Unlock()
	if bytes.Equal(seen, k.lastSeen) {
		return nil
	}
	k.lastSeen = seen
	cert, err := k.parse(certPEM, keyPEM)
	if err != nil {
		if k.cert.Load() != nil {
			k.logger.Error("TLS certificate refused; the previous one keeps serving", "from", from, "err", err)
		}
		return fmt.Errorf("load TLS certificate from %s: %w", from, err)
	}
	k.cert.Store(cert)
	k.logger.Info("serving TLS certificate", "from", from, "subject", cert.Leaf.Subject.String(),
		"dnsNames", cert.Leaf.DNSNames, "notAfter", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if k.OnLoad != nil {
		k.OnLoad(cert.Leaf)
	}
	return nil
}

func (k *Keeper) parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	// X509KeyPair fills in Leaf since Go 1.23.
	if now := k.now(); now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate expired at %s", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// TLSConfig serves the current certificate to every new connection: TLS 1.2 or later,
// HTTP/2 and HTTP/1.1.
func (k *Keeper) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := k.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no TLS certificate loaded")
		},
	}
}

// LoadFiles loads the pair from two PEM files.
func (k *Keeper) LoadFiles(certPath, keyPath string) error {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("read TLS certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("read TLS key file: %w", err)
	}
	return k.Load(certPath, certPEM, keyPEM)
}

// PollFiles re-reads the two files every interval until ctx ends. Reading the content
// also catches the symlink swap with which the kubelet updates a mounted Secret.
func (k *Keeper) PollFiles(ctx context.Context, certPath, keyPath string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Load logs a refused pair; a file missing for a moment is seen at the next poll.
		_ = k.LoadFiles(certPath, keyPath)
	}
}

// LoadSecret loads the pair from a kubernetes.io/tls Secret once.
func (k *Keeper) LoadSecret(ctx context.Context, client kubernetes.Interface, ref configsource.SecretRef) error {
	s, err := client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get TLS secret %s: %w", ref, err)
	}
	return k.Load("secret "+ref.String(), s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
}

// WatchSecret follows the Secret until ctx ends; a deleted Secret leaves the current
// certificate serving.
func (k *Keeper) WatchSecret(ctx context.Context, client kubernetes.Interface, ref configsource.SecretRef) error {
	from := "secret " + ref.String()
	onData := func(data map[string][]byte) { _ = k.Load(from, data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]) }
	onDelete := func() {
		k.logger.Warn("TLS secret deleted; the current certificate keeps serving", "secret", ref.String())
	}
	return configsource.RunInformers(ctx, "watch TLS secret", configsource.SecretInformer(client, ref, onData, onDelete))
}
