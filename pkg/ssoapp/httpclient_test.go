package ssoapp

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAnAppReachesAProviderWhoseCAItWasGiven(t *testing.T) {
	provider := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(provider.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: provider.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	trusting, err := HTTPClientTrusting(caFile, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := trusting.Get(provider.URL)
	if err != nil {
		t.Fatalf("with the provider's CA: %v", err)
	}
	resp.Body.Close()

	system, err := HTTPClientTrusting("", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := system.Get(provider.URL); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA file trusted a certificate from a private CA")
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := HTTPClientTrusting(notPEM, time.Second); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("err = %v, want one saying the file holds no certificate", err)
	}
}
