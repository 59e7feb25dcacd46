package ssoapp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// HTTPClientTrusting returns a client with the given timeout that trusts the CA
// certificates of the PEM file caFile and no others, for a provider whose certificate comes
// from a private CA (a cluster's own, or a development CA). With caFile empty it trusts the
// system's CAs. Naming the file works the same on every platform, where SSL_CERT_FILE does
// not (macOS ignores it).
func HTTPClientTrusting(caFile string, timeout time.Duration) (*http.Client, error) {
	c := &http.Client{Timeout: timeout}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	c.Transport = &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
	return c, nil
}
