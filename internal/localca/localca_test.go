package localca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTheLocalCAIssuesForLoopbackNamesOnly(t *testing.T) {
	ca, err := New("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, tc := range []struct {
		name, host string
		trusted    bool
	}{
		{"localhost is trusted", "localhost", true},
		{"a name under localhost is trusted", "sso.localhost", true},
		{"a .test name is not", "app1.test", false},
		{"a loopback address is trusted", "127.0.0.1", true},
		{"a public name is not, even if a certificate names it", "sso.example.com", false},
		{"a public address is not", "192.0.2.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, _, err := ca.Issue(time.Hour, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			cert, _ := x509.ParseCertificate(block.Bytes)
			_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.host})
			if (err == nil) != tc.trusted {
				t.Errorf("verify %s: %v, want trusted=%v", tc.host, err, tc.trusted)
			}
		})
	}
}

func TestACAKeptInADirectoryIsTheSameNextRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	first, err := LoadOrCreate(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrCreate(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CertPEM, second.CertPEM) || !first.Key.Equal(second.Key) {
		t.Error("the second run made another CA; a browser that trusted the first would distrust the demo")
	}
	info, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("the CA key has mode %v, want 0600", info.Mode().Perm())
	}
}

func TestACAThatIsNotLimitedToLoopbackNamesIsRefused(t *testing.T) {
	dir := t.TempDir()
	broad, err := New("broad", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The same key, self-signed again without name constraints, as someone replacing the
	// kept certificate with a broader one would.
	tmpl := *broad.Cert
	tmpl.PermittedDNSDomains, tmpl.PermittedIPRanges, tmpl.PermittedDNSDomainsCritical = nil, nil, false
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &broad.Key.PublicKey, broad.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(broad.Key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))

	if _, err := LoadOrCreate(dir, "unused"); err == nil || !strings.Contains(err.Error(), "not limited to localhost") || !strings.Contains(err.Error(), "remove "+dir) {
		t.Errorf("err = %v, want a refusal of the unconstrained CA that says what to do", err)
	}

	other, err := New("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := x509.MarshalPKCS8PrivateKey(other.Key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, CertFile), broad.CertPEM)
	writeFile(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherKey}))
	if _, err := LoadOrCreate(dir, "unused"); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("err = %v, want a refusal of a key that is not the certificate's", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
