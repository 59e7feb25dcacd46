package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/memlimit"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/server/configsource"
	"github.com/hallpass/hallpass/internal/server/servingcert"
	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

func init() {
	commands["server"] = command{summary: "serve OpenID Connect from a config file or Secret", run: runServer}
}

// Intervals of the server's background work.
const (
	gcInterval      = 5 * time.Minute
	shutdownTimeout = 10 * time.Second
	readTimeout     = 30 * time.Second
	writeTimeout    = 60 * time.Second
	idleTimeout     = 120 * time.Second
)

// fitRuntimeToContainer sets the server's GOMAXPROCS and its Go memory limit; it returns
// the memory limit it set (0: none).
func fitRuntimeToContainer() int64 {
	_, explicit := os.LookupEnv("GOMAXPROCS")
	runtime.GOMAXPROCS(serverProcs(runtime.GOMAXPROCS(0), explicit))
	return memlimit.FromContainer()
}

// serverProcs is the GOMAXPROCS the server runs with: at least two, unless the GOMAXPROCS
// environment variable sets it. SQLite writes its log and calls fsync in plain system
// calls, and a goroutine in one keeps its P until the runtime takes it back, which can be
// milliseconds later; with one P (a server on one CPU, by affinity or cpuset) every
// request waited for every commit's fsync. Go's own default has the same floor for a CPU
// limit below two.
func serverProcs(current int, explicit bool) int {
	if explicit {
		return current
	}
	return max(current, 2)
}

// serverLogOutput is where the server writes its JSON log lines; tests read them.
var serverLogOutput io.Writer = os.Stderr

type serverFlags struct {
	configSourceFlags
	listen, metricsListen string
	statusConfigMap       string
	logLevel              slog.Level
	// storageCheck is the time between probes of storage, unreadyAfter how long storage
	// must fail before /readyz says not ready (0: never).
	storageCheck, unreadyAfter time.Duration
	// tlsCertFile and tlsKeyFile, or tlsSecret, make the server speak https on --listen.
	tlsCertFile, tlsKeyFile, tlsSecret string
}

func parseServerFlags(args []string) (serverFlags, error) {
	var f serverFlags
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	f.bind(fs)
	fs.StringVar(&f.listen, "listen", ":8080", "address of the OpenID Connect endpoints")
	fs.StringVar(&f.metricsListen, "metrics-listen", ":9090", "address of /healthz, /readyz and /metrics")
	fs.StringVar(&f.statusConfigMap, "status-configmap", "", "namespace/name of the ConfigMap where the pod reports which config it serves, under its name (env POD_NAME, else the host name); only with --config-secret")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "least severe log lines written: debug, info, warn or error")
	fs.DurationVar(&f.storageCheck, "storage-check-interval", storage.DefaultHealthInterval, "time between two probes of storage for /readyz")
	fs.DurationVar(&f.unreadyAfter, "storage-unready-after", storage.DefaultUnreadyAfter, "how long storage must fail on every probe before /readyz reports not ready (0: never)")
	fs.StringVar(&f.tlsCertFile, "tls-cert-file", "", "PEM file of the certificate (then its chain) to serve https with on --listen; re-read every second")
	fs.StringVar(&f.tlsKeyFile, "tls-key-file", "", "PEM file of the private key of --tls-cert-file")
	fs.StringVar(&f.tlsSecret, "tls-secret", "", "namespace/name of a kubernetes.io/tls Secret to serve https with on --listen (in a cluster); the server watches it")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if (f.tlsCertFile == "") != (f.tlsKeyFile == "") || f.tlsSecret != "" && f.tlsCertFile != "" {
		return f, errors.New("give --tls-cert-file with --tls-key-file, or --tls-secret, or neither")
	}
	if f.storageCheck <= 0 || f.unreadyAfter < 0 {
		return f, errors.New("-storage-check-interval must be positive and -storage-unready-after not negative")
	}
	return f, nil
}

func runServer(ctx context.Context, args []string) error {
	f, err := parseServerFlags(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(serverLogOutput, &slog.HandlerOptions{Level: f.logLevel}))
	memoryLimit := fitRuntimeToContainer()

	source, err := f.open()
	if err != nil {
		return err
	}

	// The ports are bound before anything starts, so that a port in use is one clear error
	// and "serving" is logged only once requests can arrive.
	listeners, err := listen(f.listen, f.metricsListen)
	if err != nil {
		return err
	}
	defer closeAll(listeners) // already closed by Shutdown once serving

	configData, keysData, err := source.readInitial(ctx, logger)
	if err != nil {
		return err
	}
	cfg, keys, err := configsource.Parse(configData, keysData)
	if err != nil {
		return fmt.Errorf("load initial config: %w", err)
	}

	store, err := openStorage(ctx, cfg.Storage, f.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := server.New(cfg, keys, store, server.WithLogger(logger), server.WithMetricsRegisterer(reg))
	if err != nil {
		return err
	}
	reloader := configsource.NewReloader(srv.Apply, configsource.NewMetrics(reg), logger, configData, keysData)

	var ready atomic.Bool
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	health := watchStorage(ctx, store, f, reg, logger)
	errs := make(chan error, 4)
	if listeners[0], err = servingTLS(ctx, f, source, reg, logger, errs, listeners[0]); err != nil {
		return err
	}
	go func() {
		if err := source.watch(ctx, reloader); err != nil {
			errs <- err
		}
	}()
	go srv.RunGarbageCollection(ctx, gcInterval)
	if reporter, err := source.reporter(f.statusConfigMap, reloader, logger); err != nil {
		return err
	} else if reporter != nil {
		reloader.OnApplied(reporter.Applied)
		go reporter.Run(ctx)
	}

	servers := []*http.Server{newHTTPServer(srv), newHTTPServer(healthHandler(&ready, health, reg))}
	for i, l := range listeners {
		go func() {
			if err := servers[i].Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", l.Addr(), err)
			}
		}()
	}
	ready.Store(true)
	logger.Info("serving", "issuer", cfg.Issuer, "listen", listeners[0].Addr().String(), "tls", f.tlsSecret != "" || f.tlsCertFile != "", "metrics", listeners[1].Addr().String(), "goMemoryLimit", memoryLimit)

	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	ready.Store(false)
	cancel() // the sweeper stops after its batch, which Shutdown waits to be announced
	shutdown(ctx, logger, srv, servers)
	return err
}

// readInitial reads the config and keys the server starts with. A standalone server without
// keys makes its own, once, and keeps them.
func (s *configOrigin) readInitial(ctx context.Context, logger *slog.Logger) (configData, keysData []byte, err error) {
	if s.client == nil {
		created, err := ensureKeysFile(s.f.configPath, s.f.keysPath)
		if err != nil {
			return nil, nil, err
		}
		if created {
			logger.Info("generated signing keys", "file", s.f.keysPath)
		}
	}
	return s.read(ctx)
}

// servingTLS returns l serving https with the certificate of --tls-cert-file or
// --tls-secret, and follows its rotation until ctx ends; without either flag it returns l.
// A certificate that cannot be loaded at the start stops the server: there is no last good
// one to serve. On an error it returns l itself, which the caller still closes.
func servingTLS(ctx context.Context, f serverFlags, source *configOrigin, reg prometheus.Registerer, logger *slog.Logger, errs chan<- error, l net.Listener) (net.Listener, error) {
	if f.tlsSecret == "" && f.tlsCertFile == "" {
		return l, nil
	}
	expiry := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hallpass_tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate being served expires.",
	})
	reg.MustRegister(expiry)
	keeper := servingcert.NewKeeper(logger)
	keeper.OnLoad = func(leaf *x509.Certificate) { expiry.Set(float64(leaf.NotAfter.Unix())) }
	if f.tlsCertFile != "" {
		if err := keeper.LoadFiles(f.tlsCertFile, f.tlsKeyFile); err != nil {
			return l, err
		}
		go keeper.PollFiles(ctx, f.tlsCertFile, f.tlsKeyFile, filePollInterval)
		return tls.NewListener(l, keeper.TLSConfig()), nil
	}
	if source.client == nil {
		return l, errors.New("--tls-secret needs --config-secret and --keys-secret; with files, use --tls-cert-file and --tls-key-file")
	}
	ref, err := configsource.ParseSecretRef(f.tlsSecret)
	if err != nil {
		return l, fmt.Errorf("--tls-secret: %w", err)
	}
	if err := keeper.LoadSecret(ctx, source.client, ref); err != nil {
		return l, err
	}
	go func() {
		if err := keeper.WatchSecret(ctx, source.client, ref); err != nil {
			errs <- err
		}
	}()
	return tls.NewListener(l, keeper.TLSConfig()), nil
}

// shutdown stops accepting requests, lets those in progress finish, and gives the logouts
// served until now the time to get their back-channel logout tokens out.
func shutdown(ctx context.Context, logger *slog.Logger, srv *server.Server, servers []*http.Server) {
	ctx, done := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer done()
	for _, hs := range servers {
		_ = hs.Shutdown(ctx)
	}
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("back-channel logout deliveries abandoned at shutdown", "err", err)
	}
}

// listen binds each address, or fails naming the first that cannot be bound.
func listen(addrs ...string) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(listeners)
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func closeAll(listeners []net.Listener) {
	for _, l := range listeners {
		_ = l.Close()
	}
}

// newHTTPServer bounds what a slow or idle client can hold: the whole request read (bodies
// are at most 1 MiB), the whole answer (a login that waits on an upstream IdP included) and
// an idle keep-alive connection.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout}
}

// healthHandler serves /healthz, /readyz (ready once the server serves, until it stops,
// and while storage is not down for longer than its grace: ADR 0022) and the metrics of
// reg. /healthz does not look at storage: restarting the pod would not bring the database
// back.
func healthHandler(ready *atomic.Bool, storageHealth *storage.Health, reg *prometheus.Registry) http.Handler {
	health := http.NewServeMux()
	health.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	health.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if ok, _ := storageHealth.Ready(); !ok {
			http.Error(w, fmt.Sprintf("not ready: storage has failed every probe for %s or more", storageHealth.UnreadyAfter), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	health.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return health
}

// watchStorage probes store in the background until ctx ends, logs when it stops and starts
// answering, and exports hallpass_storage_up.
func watchStorage(ctx context.Context, store storage.Storage, f serverFlags, reg prometheus.Registerer, logger *slog.Logger) *storage.Health {
	up := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hallpass_storage_up",
		Help: "1 while storage answers the server's probes, 0 from the first failed probe until one succeeds.",
	})
	up.Set(1)
	reg.MustRegister(up)
	h := storage.NewHealth(store)
	h.Interval, h.UnreadyAfter = f.storageCheck, f.unreadyAfter
	h.OnChange = func(ok bool, err error) {
		if ok {
			up.Set(1)
			logger.Info("storage answers again")
			return
		}
		up.Set(0)
		logger.Error("storage does not answer; the server reports not ready if this lasts", "err", err, "unreadyAfter", f.unreadyAfter.String())
	}
	go h.Run(ctx)
	return h
}

// openStorage opens the configured backend. dataDir, when set, replaces the directory of
// the SQLite file: the config names the path of the server's volume inside its pod.
func openStorage(ctx context.Context, s config.Storage, dataDir string) (storage.Storage, error) {
	switch s.Type {
	case config.StorageSQLite:
		path := s.SQLitePath
		if dataDir != "" {
			path = filepath.Join(dataDir, filepath.Base(path))
		}
		return sqlite.Open(ctx, path)
	case config.StoragePostgres:
		return postgres.Open(ctx, s.PostgresDSN)
	}
	return nil, fmt.Errorf("open storage: unknown type %q", s.Type)
}
