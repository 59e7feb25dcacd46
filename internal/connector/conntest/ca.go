// Package conntest starts the real upstream peers that connector and server tests sign in
// through, on loopback: OpenLDAP's slapd, npm's oidc-provider, and a test certificate
// authority for their TLS. It is imported by tests only.
package conntest

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/localca"
	"github.com/hallpass/hallpass/internal/loopback"
)

// CA is a throwaway certificate authority for loopback TLS.
type CA struct {
	*localca.CA
	CertPEM string
}

// NewCA makes a CA valid for one day, for loopback names only.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := localca.New("Hallpass test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{CA: ca, CertPEM: string(ca.CertPEM)}
}

// Issue returns a PEM server certificate and PKCS#8 key for 127.0.0.1, localhost and
// names, valid for a day.
func (ca *CA) Issue(t testing.TB, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	c, k, err := ca.CA.Issue(24*time.Hour, append([]string{"localhost", "127.0.0.1"}, names...)...)
	if err != nil {
		t.Fatal(err)
	}
	return string(c), string(k)
}

// TLSConfig is a server TLS config with a certificate of the CA.
func (ca *CA) TLSConfig(t testing.TB, names ...string) *tls.Config {
	t.Helper()
	c, k := ca.Issue(t, names...)
	pair, err := tls.X509KeyPair([]byte(c), []byte(k))
	if err != nil {
		t.Fatalf("load server key pair: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// FreePort returns a loopback TCP port for a peer about to listen on it.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// WaitForPort polls until addr accepts TCP connections, for at most timeout.
func WaitForPort(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not accept connections within %s", addr, timeout)
}
