package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

// link is a TCP path on loopback from the server to its database that the test can cut
// (every connection closed, new ones refused) and restore: the server's pod losing its
// network to a database that itself stays up for the other replicas.
type link struct {
	t      *testing.T
	addr   string // where the server connects
	target string // the database

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	k := &link{t: t, target: target}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = l.Addr().String()
	k.serve(l)
	t.Cleanup(k.cut)
	return k
}

func (k *link) serve(l net.Listener) {
	k.mu.Lock()
	k.l = l
	k.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go k.forward(c)
		}
	}()
}

func (k *link) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", k.target, 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	k.mu.Lock()
	k.conns = append(k.conns, c, up)
	k.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// cut closes the listener and every connection through it.
func (k *link) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.l != nil {
		_ = k.l.Close()
		k.l = nil
	}
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
}

// restore listens again on the same address.
func (k *link) restore() {
	k.t.Helper()
	l, err := net.Listen("tcp", k.addr)
	if err != nil {
		k.t.Fatalf("listen again on %s: %v", k.addr, err)
	}
	k.serve(l)
}

// readyz returns the status of GET u, or 0 when the request failed.
func readyz(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls u until it answers want, for at most budget, and returns how long it took.
func waitStatus(t *testing.T, u string, want int, budget time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < budget {
		if readyz(u) == want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within %s", u, want, budget)
	return 0
}

// startServerOnPostgres runs the server command on a fresh schema of the test database,
// reached through link, with extra flags; it returns the metrics address.
func startServerOnPostgres(t *testing.T, k *link, dsn string, flags ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = k.addr
	dir := t.TempDir()
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	cfg := minimalConfig("http://"+addr, dir)
	cfg.Storage = config.Storage{Type: config.StoragePostgres, PostgresDSN: u.String()}
	cfgPath, keysPath := writeConfigFiles(t, dir, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", metricsAddr}, flags...)
	go func() { done <- runServer(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("server stopped with %v", err)
		}
	})
	waitReady(t, "http://"+metricsAddr+"/readyz")
	return metricsAddr
}

// TestReadinessFollowsStorage: a server that cannot reach its PostgreSQL database reports
// not ready once storage has failed for the grace period, stays ready through a shorter
// blip, is ready again as soon as the database answers, and stays alive throughout.
func TestReadinessFollowsStorage(t *testing.T) {
	dsn := pgtest.DSN()
	if dsn == "" {
		t.Skipf("%s is not set; run: export %s=\"$(hack/postgres.sh)\"", pgtest.DSNEnv, pgtest.DSNEnv)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	k := newLink(t, u.Host)
	const grace = 1500 * time.Millisecond
	metrics := startServerOnPostgres(t, k, pgtest.FreshSchema(t, dsn),
		"--storage-check-interval", "100ms", "--storage-unready-after", grace.String())
	readyURL, liveURL := "http://"+metrics+"/readyz", "http://"+metrics+"/healthz"

	t.Run("a blip shorter than the grace period leaves the server ready", func(t *testing.T) {
		k.cut()
		for end := time.Now().Add(grace / 3); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if got := readyz(readyURL); got != http.StatusOK {
				t.Fatalf("/readyz answered %d during a blip", got)
			}
		}
		k.restore()
	})
	t.Run("an outage longer than the grace period makes the server unready, and only then", func(t *testing.T) {
		waitMetric(t, metrics, "hallpass_storage_up 1")
		k.cut()
		took := waitStatus(t, readyURL, http.StatusServiceUnavailable, 15*time.Second)
		// A probe in flight when the link was cut may have failed a moment before took began.
		if took < grace-100*time.Millisecond {
			t.Errorf("not ready %s after the database became unreachable, before the grace period of %s", took, grace)
		}
		waitMetric(t, metrics, "hallpass_storage_up 0")
		if got := readyz(liveURL); got != http.StatusOK {
			t.Errorf("/healthz answered %d during the outage; a restart would not bring the database back", got)
		}
	})
	t.Run("the server is ready again as soon as the database answers", func(t *testing.T) {
		k.restore()
		waitStatus(t, readyURL, http.StatusOK, 10*time.Second)
		waitMetric(t, metrics, "hallpass_storage_up 1")
	})
}

// waitMetric polls /metrics until it has line, for at most ten seconds.
func waitMetric(t *testing.T, metricsAddr, line string) {
	t.Helper()
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = string(b); strings.Contains(body, "\n"+line+"\n") {
			return
		}
	}
	t.Fatalf("/metrics did not show %q within 10s", line)
}
