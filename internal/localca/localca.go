// Package localca is a small certificate authority for loopback TLS: `hallpass dev` keeps
// one in its work directory to issue the serving certificates of https issuers on
// localhost, and tests make throwaway ones. It is never meant for a cluster, where
// cert-manager or the platform's own CA issues certificates.
package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of a CA kept in a directory.
const (
	CertFile = "ca.crt"
	keyFile  = "ca.key"
)

// loopbackDomain is the one DNS name, with its subdomains, that a local CA may issue for.
const loopbackDomain = "localhost"

func loopbackRanges() []*net.IPNet {
	return []*net.IPNet{
		{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
		{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
	}
}

// CA signs server certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// New makes a CA named name, valid from an hour ago for validity.
func New(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// A CA for loopback names only: a browser that trusts it trusts nothing else.
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{loopbackDomain},
		PermittedIPRanges:           loopbackRanges(),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadOrCreate reads the CA kept in dir, or makes one valid for ten years and keeps it
// there (the key readable by its owner only), so that a browser told to trust it once
// keeps trusting the servers of later runs.
func LoadOrCreate(dir, name string) (*CA, error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, CertFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, keyFile))
	if certErr == nil && keyErr == nil {
		ca, err := parse(certPEM, keyPEM)
		if err != nil {
			// A CA of an earlier version (which also signed *.test names) ends up here too.
			return nil, fmt.Errorf("%w; remove %s to make a new CA, then trust its certificate again", err, dir)
		}
		return ca, nil
	}
	if !errors.Is(certErr, os.ErrNotExist) && certErr != nil || !errors.Is(keyErr, os.ErrNotExist) && keyErr != nil {
		return nil, fmt.Errorf("read CA in %s: %w", dir, errors.Join(certErr, keyErr))
	}
	ca, err := New(name, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CertFile), ca.CertPEM, 0o644); err != nil { //nolint:gosec // G306: a CA certificate is public; browsers and tools read it
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return ca, nil
}

// parse reads a kept CA and refuses one that is not what New makes: a CA whose key matches
// its certificate, still valid, and limited to loopback names. A CA file replaced by a
// broader one must not be used to sign, since a browser told to trust the dev CA would then
// trust whatever it signs.
func parse(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("read CA: not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("parse CA key: not an ECDSA key")
	}
	switch {
	case !ec.PublicKey.Equal(cert.PublicKey):
		return nil, errors.New("read CA: the key does not belong to the certificate")
	case !cert.IsCA:
		return nil, errors.New("read CA: the certificate is not a CA's")
	case time.Now().After(cert.NotAfter):
		return nil, fmt.Errorf("read CA: the certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	case !limitedToLoopback(cert):
		return nil, errors.New("read CA: the certificate is not limited to localhost and loopback addresses")
	}
	return &CA{Cert: cert, Key: ec, CertPEM: certPEM}, nil
}

// limitedToLoopback reports whether cert's name constraints are exactly New's.
func limitedToLoopback(cert *x509.Certificate) bool {
	if !cert.PermittedDNSDomainsCritical || len(cert.PermittedDNSDomains) != 1 || cert.PermittedDNSDomains[0] != loopbackDomain {
		return false
	}
	want := loopbackRanges()
	if len(cert.PermittedIPRanges) != len(want) {
		return false
	}
	for i, r := range cert.PermittedIPRanges {
		if r.String() != want[i].String() {
			return false
		}
	}
	return len(cert.PermittedEmailAddresses) == 0 && len(cert.PermittedURIDomains) == 0
}

// Issue returns a PEM server certificate and PKCS#8 key for names (host names or IP
// addresses), valid from an hour ago for validity.
func (ca *CA) Issue(validity time.Duration, names ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue server certificate: %w", err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

// SPKIHash is the base64 SHA-256 of the CA's public key. Chromium's
// --ignore-certificate-errors-spki-list with it accepts any chain that contains a
// certificate with this key, which is why the servers send the CA in their chain. Unlike an
// installed CA, that flag ignores the name constraints: the browser then accepts whatever
// the key has signed, for any name.
func (ca *CA) SPKIHash() string {
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
