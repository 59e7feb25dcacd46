// Package configsource feeds the SSO server its config and signing keys, from files
// (standalone mode, tests) or from the two Kubernetes Secrets the operator writes, and
// applies every change without a restart. A change that does not parse or validate is
// refused: it is logged, counted in hallpass_config_reload_failures_total, and the last good
// config keeps serving.
package configsource

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
)

// ApplyFunc makes a parsed config and keys the ones served (server.Server.Apply).
type ApplyFunc func(cfg *config.Config, keys *config.SigningKeys) error

// Metrics are the reload counters; register them once per process.
type Metrics struct {
	failures    prometheus.Counter
	reloads     prometheus.Counter
	lastSuccess prometheus.Gauge
}

// NewMetrics creates the reload metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hallpass_config_reload_failures_total",
			Help: "Config or signing-key changes that were refused because they did not parse or validate.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hallpass_config_reloads_total",
			Help: "Config or signing-key changes applied without a restart.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hallpass_config_last_reload_success_timestamp_seconds",
			Help: "When a config was last applied.",
		}),
	}
	reg.MustRegister(m.failures, m.reloads, m.lastSuccess)
	return m
}

// Parse decodes and validates a config and its signing keys.
func Parse(configData, keysData []byte) (*config.Config, *config.SigningKeys, error) {
	cfg, err := config.Parse(configData)
	if err != nil {
		return nil, nil, err
	}
	keys, err := config.ParseSigningKeys(keysData)
	if err != nil {
		return nil, nil, err
	}
	return cfg, keys, nil
}

// Reloader applies new content when it differs from what it last saw.
type Reloader struct {
	apply   ApplyFunc
	metrics *Metrics
	logger  *slog.Logger

	mu        sync.Mutex
	seen      [sha256.Size]byte
	applied   string // config.Hash of the config served
	onApplied func(configHash string)
}

// NewReloader returns a Reloader that treats configData and keysData (the content the
// server was started with) as already applied.
func NewReloader(apply ApplyFunc, metrics *Metrics, logger *slog.Logger, configData, keysData []byte) *Reloader {
	return &Reloader{apply: apply, metrics: metrics, logger: logger, seen: sourceDigest(configData, keysData), applied: digest.Of(configData)}
}

// AppliedConfigHash is the config.Hash of the config served now: the one the server started
// with or the last one applied. A refused config does not change it.
func (l *Reloader) AppliedConfigHash() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied
}

// OnApplied registers fn to be called with the config hash after every successful apply.
// fn runs under the Reloader's lock and must not block.
func (l *Reloader) OnApplied(fn func(configHash string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onApplied = fn
}

// Load parses and applies the content if it changed since the last call. The error is
// also logged and counted; the previous config keeps serving.
func (l *Reloader) Load(source string, configData, keysData []byte) error {
	d := sourceDigest(configData, keysData)
	l.mu.Lock()
	defer l.mu.Unlock()
	if d == l.seen {
		return nil
	}
	// Remember refused content too, so a bad config is reported once, not every poll.
	l.seen = d
	cfg, keys, err := Parse(configData, keysData)
	if err == nil {
		err = l.apply(cfg, keys)
	}
	if err != nil {
		l.metrics.failures.Inc()
		l.logger.Error("config refused; the last good config keeps serving", "source", source, "err", err)
		return fmt.Errorf("reload config from %s: %w", source, err)
	}
	l.applied = digest.Of(configData)
	if l.onApplied != nil {
		l.onApplied(l.applied)
	}
	l.metrics.reloads.Inc()
	l.metrics.lastSuccess.SetToCurrentTime()
	l.logger.Info("config applied", "source", source, "clients", len(cfg.Clients), "connections", len(cfg.Connections), "signingKey", keys.Current.KeyID)
	return nil
}

// Refuse reports content that could not even be read (a config Secret whose compressed
// value does not decompress) as Load reports one that does not parse: logged, counted, and
// the last good config keeps serving.
func (l *Reloader) Refuse(source string, err error) {
	l.metrics.failures.Inc()
	l.logger.Error("config refused; the last good config keeps serving", "source", source, "err", err)
}

func sourceDigest(configData, keysData []byte) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d:", len(configData))
	h.Write(configData)
	h.Write(keysData)
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}
