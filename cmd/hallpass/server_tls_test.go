package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

// TestServerServesHTTPSAndFollowsItsCertificate runs `hallpass server` with
// --tls-cert-file and --tls-key-file as a cluster admin would with a mounted
// kubernetes.io/tls Secret: discovery answers over https to a client that trusts the CA, a
// renewed certificate is served without a restart, and a broken or expired one is refused
// while the last good one keeps serving.
func TestServerServesHTTPSAndFollowsItsCertificate(t *testing.T) {
	logs := &logbuf.Buffer{}
	serverLogOutput = logs
	t.Cleanup(func() { serverLogOutput = os.Stderr })
	dir := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	issuer := "https://" + addr
	cfgPath, keysPath := writeConfigFiles(t, dir, minimalConfig(issuer, dir))
	ca := conntest.NewCA(t)
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair := func(certPEM, keyPEM string) {
		t.Helper()
		must(t, os.WriteFile(keyPath, []byte(keyPEM), 0o600))
		must(t, os.WriteFile(certPath, []byte(certPEM), 0o600))
	}
	writePair(ca.Issue(t))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", metricsAddr,
			"--tls-cert-file", certPath, "--tls-key-file", keyPath})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	waitReady(t, "http://"+metricsAddr+"/readyz")

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	served := func() *x509.Certificate {
		t.Helper()
		resp, err := client.Get(issuer + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatalf("discovery over https: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"issuer":"`+issuer+`"`) {
			t.Fatalf("discovery over https: %d %s", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0]
	}
	first := served()

	resp, err := http.Get("http://" + addr + "/.well-known/openid-configuration")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain http was answered on the https port: %s", body)
		}
	}

	// The certificate served until the next new connection picks up a change.
	waitServed := func(what string, want func(*x509.Certificate) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			client.CloseIdleConnections()
			if want(served()) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s within 10 s", what)
			}
		}
	}
	writePair(ca.Issue(t, "sso.localhost"))
	waitServed("the renewed certificate was not served", func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 })
	renewed := served()

	writePair("not a certificate", "not a key")
	expiredCert, expiredKey, err := ca.CA.Issue(-2*time.Hour, "localhost", "127.0.0.1")
	must(t, err)
	waitLog(t, logs, "failed to find any PEM data in certificate input")
	writePair(string(expiredCert), string(expiredKey))
	waitLog(t, logs, "the certificate expired at")
	client.CloseIdleConnections()
	if got := served(); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after a broken and an expired certificate the server serves serial %s, want the last good %s", got.SerialNumber, renewed.SerialNumber)
	}
	if got := metricValue(t, get(t, "http://"+metricsAddr+"/metrics"), "hallpass_tls_certificate_expiry_timestamp_seconds"); got != float64(renewed.NotAfter.Unix()) {
		t.Errorf("/metrics gives the served certificate's expiry as %v, want %d", got, renewed.NotAfter.Unix())
	}
}

func TestAServerWithoutAValidCertificateDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, keysPath := writeConfigFiles(t, dir, minimalConfig("https://"+addr, dir))
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	must(t, os.WriteFile(certPath, []byte("not a certificate"), 0o600))
	must(t, os.WriteFile(keyPath, []byte("not a key"), 0o600))

	err := runServer(context.Background(), []string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", freeAddr(t),
		"--tls-cert-file", certPath, "--tls-key-file", keyPath})
	if err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Fatalf("err = %v, want one saying the certificate file holds no PEM data", err)
	}
	// The port it had bound is free again.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the server left %s bound after refusing to start: %v", addr, err)
	}
	_ = l.Close()
}

func TestServerCommandRefusesHalfATLSConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert-file", "tls.crt"},
		{"--tls-key-file", "tls.key"},
		{"--tls-cert-file", "tls.crt", "--tls-key-file", "tls.key", "--tls-secret", "ns/tls"},
	} {
		err := runServer(context.Background(), append([]string{"--config", "c.yaml", "--keys", "k.json"}, args...))
		if err == nil || !strings.Contains(err.Error(), "--tls-cert-file with --tls-key-file") {
			t.Errorf("args %v: err = %v, want one naming the TLS flags", args, err)
		}
	}
}

// metricValue is the value of an unlabelled metric in Prometheus' text format.
func metricValue(t *testing.T, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			must(t, err)
			return f
		}
	}
	t.Fatalf("no metric %s in:\n%s", name, metrics)
	return 0
}

func waitLog(t *testing.T, logs *logbuf.Buffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within 10 s:\n%s", want, logs.String())
		}
	}
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
