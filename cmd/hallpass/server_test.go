package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/loopback"
	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// minimalConfig is a valid dev-mode config on SQLite in dir, with no clients.
func minimalConfig(issuer, dir string) *config.Config {
	d := func(v time.Duration) config.Duration { return config.Duration{Duration: v} }
	return &config.Config{
		Issuer:  issuer,
		DevMode: true,
		Session: config.Session{AbsoluteLifetime: d(168 * time.Hour), IdleTimeout: d(72 * time.Hour)},
		Tokens:  config.Tokens{IDToken: d(time.Hour), AccessToken: d(time.Hour), RefreshToken: d(720 * time.Hour), AuthorizationCode: d(time.Minute)},
		Storage: config.Storage{Type: config.StorageSQLite, SQLitePath: filepath.Join(dir, "hallpass.db")},
		Signing: config.Signing{Algorithm: "ES256"},
	}
}

// writeConfigFiles writes cfg and new signing keys into dir, as the standalone mode reads
// them, and returns their paths.
func writeConfigFiles(t *testing.T, dir string, cfg *config.Config) (cfgPath, keysPath string) {
	t.Helper()
	keys, err := config.NewSigningKeys("ES256")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := config.MarshalSigningKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath, keysPath = filepath.Join(dir, "config.yaml"), filepath.Join(dir, "keys.json")
	if err := os.WriteFile(cfgPath, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keysPath, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, keysPath
}

func TestServerCommandServesFromFilesWithHealthAndMetrics(t *testing.T) {
	dir := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	cfg := minimalConfig("http://"+addr, dir)
	cfgPath, keysPath := writeConfigFiles(t, dir, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", metricsAddr})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})

	get := func(u string) (int, string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Not ready until it serves, as a kubelet sees it: /readyz is polled until it says so.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		status, _ := get("http://" + metricsAddr + "/readyz")
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d after 10 s", status)
		}
	}
	if status, _ := get("http://" + metricsAddr + "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}
	if _, body := get("http://" + metricsAddr + "/metrics"); !strings.Contains(body, "hallpass_config_reload_failures_total 0") {
		t.Errorf("/metrics lacks the reload failure counter")
	}
	status, body := get("http://" + addr + "/.well-known/openid-configuration")
	var doc struct {
		Issuer string `json:"issuer"`
	}
	_ = json.Unmarshal([]byte(body), &doc)
	if status != http.StatusOK || doc.Issuer != cfg.Issuer {
		t.Errorf("discovery: %d %s", status, body)
	}
}

func TestServerCommandNeedsOneConfigSource(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--keys", "k.json"},
		{"--config", "a.yaml", "--keys", "k.json", "--config-secret", "ns/c", "--keys-secret", "ns/k"},
	} {
		if err := runServer(context.Background(), args); err == nil || !strings.Contains(err.Error(), "either") {
			t.Errorf("args %v: err = %v", args, err)
		}
	}
}

func TestServerProcs(t *testing.T) {
	tests := []struct {
		name     string
		current  int
		explicit bool
		want     int
	}{
		{"a server on one CPU gets a second P for the time a commit blocks the first", 1, false, 2},
		{"a server on two CPUs keeps two", 2, false, 2},
		{"a server on eight CPUs keeps eight", 8, false, 8},
		{"GOMAXPROCS=1 set by the operator of the machine is kept", 1, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serverProcs(tt.current, tt.explicit); got != tt.want {
				t.Errorf("serverProcs(%d, explicit=%v) = %d, want %d", tt.current, tt.explicit, got, tt.want)
			}
		})
	}
}

func TestServerCommandLogLevel(t *testing.T) {
	tests := []struct {
		name  string
		level string
		// wantServing is whether the info line "serving" is written.
		wantServing bool
	}{
		{"the default level writes info lines", "", true},
		{"debug writes info lines", "debug", true},
		{"warn leaves info lines out", "warn", false},
		{"error leaves info lines out", "ERROR", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logbuf.Buffer{}
			serverLogOutput = logs
			t.Cleanup(func() { serverLogOutput = os.Stderr })
			dir := t.TempDir()
			addr, metricsAddr := freeAddr(t), freeAddr(t)
			cfgPath, keysPath := writeConfigFiles(t, dir, minimalConfig("http://"+addr, dir))
			args := []string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", metricsAddr}
			if tc.level != "" {
				args = append(args, "--log-level", tc.level)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- runServer(ctx, args) }()
			waitReady(t, "http://"+metricsAddr+"/readyz")
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("server stopped with %v", err)
			}
			if got := strings.Contains(logs.String(), `"msg":"serving"`); got != tc.wantServing {
				t.Errorf("log has the serving line: %v, want %v; log:\n%s", got, tc.wantServing, logs.String())
			}
		})
	}
}

func TestServerCommandRefusesAnUnknownLogLevel(t *testing.T) {
	err := runServer(context.Background(), []string{"--config", "c.yaml", "--keys", "k.json", "--log-level", "verbose"})
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Errorf("err = %v, want one naming -log-level", err)
	}
}

// waitReady polls a readiness URL for up to ten seconds.
func waitReady(t *testing.T, u string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s was not ready within 10s", u)
}

func TestServerCommandRefusesAPortInUseInOneLine(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	logs := &logbuf.Buffer{}
	serverLogOutput = logs
	t.Cleanup(func() { serverLogOutput = os.Stderr })
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, keysPath := writeConfigFiles(t, dir, minimalConfig("http://"+addr, dir))

	err = runServer(context.Background(), []string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", taken.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("err = %v, want one line naming the address in use", err)
	}
	if strings.Contains(logs.String(), `"msg":"serving"`) {
		t.Errorf("the server logged that it serves although it could not bind:\n%s", logs.String())
	}
}
