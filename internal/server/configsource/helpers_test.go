package configsource_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/server/configsource"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

// fixture is a server on loopback plus the config it was started with.
type fixture struct {
	t        *testing.T
	srv      *server.Server
	url      string
	cfg      *config.Config
	keys     *config.SigningKeys
	registry *prometheus.Registry
	metrics  *configsource.Metrics
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	var handler atomic.Pointer[http.Handler]
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	keys, err := config.NewSigningKeys("ES256") // fast to generate
	if err != nil {
		t.Fatal(err)
	}
	d := func(v time.Duration) config.Duration { return config.Duration{Duration: v} }
	cfg := &config.Config{
		Issuer:  ts.URL,
		DevMode: true,
		Session: config.Session{AbsoluteLifetime: d(168 * time.Hour), IdleTimeout: d(72 * time.Hour)},
		Tokens:  config.Tokens{IDToken: d(time.Hour), AccessToken: d(time.Hour), RefreshToken: d(720 * time.Hour), AuthorizationCode: d(time.Minute)},
		Storage: config.Storage{Type: config.StorageSQLite, SQLitePath: "/data/hallpass.db"},
		Signing: config.Signing{Algorithm: "ES256"},
		Clients: []config.Client{{ID: "app1", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of("s")},
			RedirectURIs: []string{"https://app1.example/cb"}, SingleSignOn: true, Connections: []string{"db"}}},
		Connections: []config.Connection{{Name: "db", Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{}}},
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "hallpass.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := server.New(cfg, keys, store, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = srv
	handler.Store(&h)
	reg := prometheus.NewRegistry()
	return &fixture{t: t, srv: srv, url: ts.URL, cfg: cfg, keys: keys, registry: reg, metrics: configsource.NewMetrics(reg)}
}

func (f *fixture) encode(cfg *config.Config, keys *config.SigningKeys) (configData, keysData []byte) {
	f.t.Helper()
	c, err := config.Marshal(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	k, err := config.MarshalSigningKeys(keys)
	if err != nil {
		f.t.Fatal(err)
	}
	return c, k
}

// withClient returns a copy of the config with one more client, "app2".
func (f *fixture) withClient() *config.Config {
	cp := *f.cfg
	cp.Clients = append(append([]config.Client{}, f.cfg.Clients...), config.Client{ID: "app2", Type: config.ClientRegularWebApp,
		SecretSHA256: []string{digest.Of("t")}, RedirectURIs: []string{"https://app2.example/cb"}, SingleSignOn: true, Connections: []string{"db"}})
	return &cp
}

// accepts reports whether /authorize takes a request of the client (a redirect to the
// login page) instead of showing the unknown-client error page.
func (f *fixture) accepts(clientID string) bool {
	f.t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {"https://" + clientID + ".example/cb"}, "response_type": {"code"}, "scope": {"openid"}}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.url + "/authorize?" + q.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusSeeOther
}

// within polls cond until it holds or the deadline passes.
func within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func (f *fixture) failures() float64 {
	f.t.Helper()
	families, err := f.registry.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "hallpass_config_reload_failures_total" {
			return counterValue(mf.GetMetric())
		}
	}
	f.t.Fatal("hallpass_config_reload_failures_total is not registered")
	return 0
}

func counterValue(ms []*dto.Metric) float64 {
	var v float64
	for _, m := range ms {
		v += m.GetCounter().GetValue()
	}
	return v
}

func jwksHas(t *testing.T, base, kid string) bool {
	t.Helper()
	resp, err := http.Get(base + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), `"kid":"`+kid+`"`)
}
