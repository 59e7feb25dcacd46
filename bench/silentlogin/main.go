// Command silentlogin measures Hallpass's silent-login round trip on loopback: a browser
// with a valid session cookie asks /authorize with prompt=none, gets a code, and the
// application redeems it at /token for an RS256 ID token (issue 3's benchmark).
//
// The server is the real binary (`hallpass server --config --keys`), built by this command
// and run as a separate process, so its CPU time and memory are read from /proc/<pid>
// without the load generator's share. The same run measures the machine's RS256 signing
// ceiling (PKCS #1 v1.5 signatures per second with the server's own 2048-bit key, one
// goroutine per core) and reports silent logins/s ÷ signatures/s: one silent login costs one
// signature, so the ratio says how much of the login's cost is everything else.
//
// See README.md for the command and how to read the figures.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/argon2"

	"github.com/hallpass/hallpass/bench/internal/proc"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/server/configsource"
	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

const (
	clientID     = "bench-app"
	clientSecret = "bench-app-secret-0123456789abcdef"
	redirectURI  = "http://127.0.0.1:1/callback" // never contacted: the load generator reads the redirect
	username     = "bench"
	password     = "bench password, not a secret"
	sessionName  = "hallpass_session"
)

type options struct {
	duration, warmup time.Duration
	rounds           int
	concurrency      int
	backends         []string
	binary           string
	keep             bool
	cpuProfile       string
	serverCPUs       string
	// pin is set from serverCPUs; nil pins nothing.
	pin *cpuPinning
	// alg is the ID tokens' signing algorithm (RS256 or ES256).
	alg string
	// fill is how many sessions of other users are stored before the server starts, with
	// fillFamilies refresh families and gcRows expired sessions and access tokens for a
	// timed sweep and garbage collection (fill.go).
	fill, fillFamilies, gcRows int
}

func main() {
	var o options
	var backends string
	flag.DurationVar(&o.duration, "duration", 250*time.Millisecond, "length of each round's load, and of each signing-ceiling measurement")
	flag.IntVar(&o.rounds, "rounds", 40, "rounds per backend: load, then the signing ceiling again")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each backend's first round")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent simulated browsers")
	flag.StringVar(&backends, "backends", "sqlite,postgres", "storage backends to measure; postgres needs HALLPASS_TEST_POSTGRES_DSN")
	flag.StringVar(&o.binary, "hallpass", "", "hallpass binary to run; default: go build ./cmd/hallpass into a temp dir")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "run the server in this process instead and write a CPU profile of each measurement next to it, named <backend>-<name>")
	flag.StringVar(&o.serverCPUs, "server-cpus", "", "run the server on these CPUs (such as 0 or 0-1) and the load generator on the others, and measure the signing ceiling on the server's CPUs")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (config, keys, server logs)")
	flag.StringVar(&o.alg, "alg", "RS256", "signing algorithm of the ID tokens: RS256 or ES256")
	flag.IntVar(&o.fill, "fill", 0, "sessions of other users stored (in bulk) before the server starts")
	flag.IntVar(&o.fillFamilies, "fill-families", 100_000, "with -fill: refresh families stored, to measure their size")
	flag.IntVar(&o.gcRows, "gc-rows", 300_000, "with -fill: expired sessions, ended by a timed sweep, and as many expired access tokens, deleted by one timed garbage collection")
	flag.Parse()
	o.backends = strings.Split(backends, ",")
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "silentlogin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dsn := os.Getenv("HALLPASS_TEST_POSTGRES_DSN")
	for _, b := range o.backends {
		switch b {
		case "sqlite":
		case "postgres":
			if dsn == "" {
				return errors.New("the postgres backend needs HALLPASS_TEST_POSTGRES_DSN (HALLPASS_TEST_POSTGRES_DSN=$(hack/postgres.sh)), or pass -backends sqlite")
			}
		default:
			return fmt.Errorf("unknown backend %q (sqlite, postgres)", b)
		}
	}
	if o.serverCPUs != "" {
		if o.cpuProfile != "" {
			return errors.New("-server-cpus needs the server in its own process: leave out -cpuprofile")
		}
		var err error
		if o.pin, err = newPinning(o.serverCPUs); err != nil {
			return err
		}
		if err := o.pin.moveHere(); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "hallpass-silentlogin-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if o.binary == "" && o.cpuProfile == "" {
		o.binary = filepath.Join(dir, "hallpass")
		fmt.Fprintln(os.Stderr, "building ./cmd/hallpass")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.binary, "./cmd/hallpass")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build hallpass (run from the repository root): %w", err)
		}
	}
	keys, err := config.NewSigningKeys(o.alg)
	if err != nil {
		return fmt.Errorf("generate signing keys: %w", err)
	}
	signer, ok := keys.Current.Key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("the %s signing key cannot sign", o.alg)
	}

	host, _ := os.Hostname()
	fmt.Printf("silent-login benchmark  %s  host=%s  GOMAXPROCS=%d  NumCPU=%d  concurrency=%d  duration=%s  alg=%s  fill=%d\n",
		time.Now().UTC().Format(time.RFC3339), host, runtime.GOMAXPROCS(0), runtime.NumCPU(), o.concurrency, o.duration, o.alg, o.fill)
	if o.pin != nil {
		fmt.Printf("server on CPUs %s, the load generator on the others; the signing ceiling on the server's %d CPU(s)\n", o.serverCPUs, o.pin.serverCPUs())
	}
	fmt.Printf("load average at start: %s\n", loadAverage())

	var results []result
	for _, b := range o.backends {
		r, err := measureBackend(ctx, o, dir, b, dsn, keys, signer)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		results = append(results, r)
	}
	fmt.Printf("load average at end: %s\n\n", loadAverage())

	fmt.Printf("%-8s %9s %9s %9s %7s %8s %10s %10s %9s %9s %8s %6s %9s %12s %9s\n", "backend", "logins/s", "p50", "p99", "errors", "srv CPU", "CPU/login", "gen/login", "srv RSS", "peak RSS", "mach CPU", "steal", "ceiling", "ratio", "sign share")
	for _, r := range results {
		perLogin := time.Duration(r.serverCPU * float64(time.Second) / r.rate)
		genPerLogin := time.Duration(r.generatorCPU * float64(time.Second) / r.rate)
		fmt.Printf("%-8s %9.0f %9s %9s %7d %7.0f%% %10s %10s %7.1fMB %7.1fMB %7.0f%% %5.0f%% %7.0f/s %4.0f%% %3.0f–%.0f%% %8.0f%%\n", r.backend, r.rate,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors,
			r.serverCPU*100, perLogin.Round(time.Microsecond), genPerLogin.Round(time.Microsecond), float64(r.rssEnd)/(1<<20), float64(r.rssPeak)/(1<<20), r.machineCPU*100, r.steal*100,
			r.ceiling, 100*median(r.ratios), 100*slices.Min(r.ratios), 100*slices.Max(r.ratios), 100*r.sigCPU.Seconds()/perLogin.Seconds())
	}
	for _, r := range results {
		if r.fill.sessions > 0 {
			fmt.Printf("%s: %s\n", r.backend, r.fill)
		}
		if r.fill.gcRows > 0 {
			// Each silent login leaves an access token and a code redemption to collect.
			fmt.Printf("%s: GC deletes %.0f rows/s; the logins above leave %.0f rows/s to collect (2 per login)\n",
				r.backend, float64(r.fill.gcRows)/r.fill.gcTook.Seconds(), 2*r.rate)
		}
		if r.fill.ended > 0 {
			fmt.Printf("%s: the sweep ends %.0f expired sessions/s\n", r.backend, float64(r.fill.ended)/r.fill.sweepTook.Seconds())
		}
	}
	fmt.Println("\nsrv CPU: the server process's CPU time / wall time (200% = both cores of a 2-core machine).")
	fmt.Println("CPU/login: server CPU time per silent login; gen/login: the load generator's. mach CPU: all processes, share of all cores.")
	fmt.Println("steal: share of all cores' time the hypervisor gave to other machines; figures taken with more than a few percent are not comparable.")
	fmt.Println("ceiling: signatures/s of the machine with the server's key (-alg) (with -server-cpus, of the server's CPUs), measured between the rounds while the server idles.")
	fmt.Println("ratio: silent logins/s of a round ÷ the mean of the ceilings measured just before and after it;")
	fmt.Println("       the median of the rounds, then their range (the issue's figure; without -server-cpus the load generator shares the cores).")
	fmt.Println("sign share: CPU of one signature ÷ server CPU per login (less sensitive to other load on the machine).")
	return nil
}

type result struct {
	backend          string
	rate             float64
	p50, p99         time.Duration
	requests, errors int
	serverCPU        float64 // cores used by the server
	generatorCPU     float64 // cores used by the load generator (this process)
	machineCPU       float64 // share of all cores busy
	steal            float64 // share of all cores' time the hypervisor took
	rssEnd, rssPeak  int64
	// ratios holds each round's logins/s ÷ the signing ceiling measured around it; ceiling
	// and sigCPU are the means of this backend's ceiling measurements.
	ratios  []float64
	ceiling float64
	sigCPU  time.Duration
	fill    fillReport
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// measureBackend starts the server on one backend, signs in once per worker, and runs
// rounds of silent logins, each followed by a measurement of the signing ceiling while the
// server idles: on a shared machine the ceiling drifts, and a ratio of two figures taken
// seconds apart drifts far less than one of figures taken minutes apart.
func measureBackend(ctx context.Context, o options, dir, backend, dsn string, keys *config.SigningKeys, signer crypto.Signer) (result, error) {
	res := result{backend: backend}
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	issuer := "http://" + addr
	storageCfg := config.Storage{Type: config.StorageSQLite, SQLitePath: filepath.Join(dir, "hallpass-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".db")}
	if backend == "postgres" {
		// A schema of its own, so every run starts from empty tables, as the SQLite file does.
		schemaDSN, drop, err := pgtest.CreateSchema(ctx, dsn)
		if err != nil {
			return res, err
		}
		defer func() {
			if err := drop(); err != nil {
				fmt.Fprintf(os.Stderr, "postgres: drop the benchmark's schema: %v\n", err)
			}
		}()
		storageCfg = config.Storage{Type: config.StoragePostgres, PostgresDSN: schemaDSN}
	}
	cfgPath, keysPath := filepath.Join(dir, backend+"-config.yaml"), filepath.Join(dir, "keys.json")
	if err := writeConfig(cfgPath, keysPath, issuer, storageCfg, keys, o.alg); err != nil {
		return res, err
	}
	if o.fill > 0 {
		if res.fill, err = fill(ctx, storageCfg, o); err != nil {
			return res, err
		}
	}
	var pid int
	var stop func()
	if o.cpuProfile != "" {
		pid, stop, err = startInProcess(ctx, cfgPath, keysPath, addr)
	} else {
		pid, stop, err = startProcess(ctx, o.pin, o.binary, filepath.Join(dir, backend+"-server.log"), cfgPath, keysPath, addr, metricsAddr)
	}
	if err != nil {
		return res, err
	}
	defer stop()
	// One browser, with its own session, per concurrent worker: silent logins of different
	// users do not contend for one session row.
	cookies := make([]string, o.concurrency)
	for i := range cookies {
		if cookies[i], err = signIn(issuer); err != nil {
			return res, err
		}
	}
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	// One round trip checked in full: the ID token is RS256, signed by the current key, and
	// names the session's user and the client.
	if err := checkFirstLogin(client, issuer, cookies[0], keys); err != nil {
		return res, err
	}

	runLoad(issuer, cookies, o.warmup, nil)
	if o.cpuProfile != "" {
		f, err := os.Create(filepath.Join(filepath.Dir(o.cpuProfile), backend+"-"+filepath.Base(o.cpuProfile)))
		if err != nil {
			return res, fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	peakRSS := proc.SamplePeak(200*time.Millisecond, func() (int64, error) { return processRSS(pid) })
	defer peakRSS()

	var lat latencies
	var wall time.Duration
	var used cpuReading // summed over the rounds' load
	ceiling, sigCPU := signingCeiling(signer, o.pin, o.duration)
	sumCeiling, sumSigCPU := ceiling, sigCPU
	for range o.rounds {
		r0, err := readCPU(pid)
		if err != nil {
			return res, err
		}
		before := lat.count()
		start := time.Now()
		runLoad(issuer, cookies, o.duration, &lat)
		roundWall := time.Since(start)
		r1, err := readCPU(pid)
		if err != nil {
			return res, err
		}
		wall += roundWall
		round := r1.sub(r0)
		used = used.add(round)

		after, afterCPU := signingCeiling(signer, o.pin, o.duration)
		rate := float64(lat.count()-before) / roundWall.Seconds()
		res.ratios = append(res.ratios, rate/((ceiling+after)/2))
		fmt.Printf("  %s round %d: %.0f logins/s, ceiling %.0f/s → %.0f/s, ratio %.0f%%, steal %.0f%%\n", backend, len(res.ratios),
			rate, ceiling, after, 100*res.ratios[len(res.ratios)-1], 100*float64(round.steal)/float64(round.total))
		ceiling = after
		sumCeiling, sumSigCPU = sumCeiling+after, sumSigCPU+afterCPU
	}
	res.ceiling = sumCeiling / float64(o.rounds+1)
	res.sigCPU = sumSigCPU / time.Duration(o.rounds+1)
	res.rssEnd, err = processRSS(pid)
	if err != nil {
		return res, err
	}
	res.rssPeak = max(peakRSS(), res.rssEnd)
	res.serverCPU = used.server.Seconds() / wall.Seconds()
	res.generatorCPU = used.generator.Seconds() / wall.Seconds()
	res.machineCPU = float64(used.busy) / float64(used.total)
	res.steal = float64(used.steal) / float64(used.total)
	d := lat.sorted()
	res.requests, res.errors = len(d), int(lat.errors.Load())
	if len(d) == 0 {
		return res, fmt.Errorf("no silent login succeeded (%d errors; first: %w)", res.errors, lat.firstError())
	}
	if res.errors > 0 {
		fmt.Fprintf(os.Stderr, "%s: %d failed round trips; first: %v\n", backend, res.errors, lat.firstError())
	}
	res.rate = float64(len(d)) / wall.Seconds()
	res.p50, res.p99 = d[len(d)*50/100], d[len(d)*99/100]
	fmt.Printf("%s: %d silent logins in %d rounds, %s in all\n", backend, len(d), o.rounds, wall.Round(time.Millisecond))
	return res, nil
}

// startProcess runs `hallpass server` from the config files and waits until it is ready.
// It runs on the server's CPUs of pin.
func startProcess(ctx context.Context, pin *cpuPinning, binary, logPath, cfgPath, keysPath, addr, metricsAddr string) (pid int, stop func(), err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, nil, fmt.Errorf("create server log: %w", err)
	}
	cmd := exec.CommandContext(ctx, binary, "server", "--config", cfgPath, "--keys", keysPath, "--listen", addr, "--metrics-listen", metricsAddr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := pin.start(cmd); err != nil {
		logFile.Close()
		return 0, nil, fmt.Errorf("start hallpass server: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	if err := waitReady("http://" + metricsAddr + "/readyz"); err != nil {
		stop()
		return 0, nil, fmt.Errorf("%w (server log: %s)", err, logPath)
	}
	return cmd.Process.Pid, stop, nil
}

// startInProcess serves the same config from this process, for -cpuprofile: a profile of
// the server's own code, at the price of CPU and memory figures that include the load
// generator.
func startInProcess(ctx context.Context, cfgPath, keysPath, addr string) (pid int, stop func(), err error) {
	cfgData, keysData, err := configsource.ReadFiles(cfgPath, keysPath)
	if err != nil {
		return 0, nil, err
	}
	cfg, keys, err := configsource.Parse(cfgData, keysData)
	if err != nil {
		return 0, nil, fmt.Errorf("load config: %w", err)
	}
	var store storage.Storage
	if cfg.Storage.Type == config.StoragePostgres {
		store, err = postgres.Open(ctx, cfg.Storage.PostgresDSN)
	} else {
		store, err = sqlite.Open(ctx, cfg.Storage.SQLitePath)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("open storage: %w", err)
	}
	srv, err := server.New(cfg, keys, store, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		store.Close()
		return 0, nil, fmt.Errorf("start server: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		store.Close()
		return 0, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return os.Getpid(), func() { _ = hs.Close(); store.Close() }, nil
}

func writeConfig(cfgPath, keysPath, issuer string, st config.Storage, keys *config.SigningKeys, alg string) error {
	d := func(v time.Duration) config.Duration { return config.Duration{Duration: v} }
	salt := []byte("silentlogin-salt")
	hash := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, 64*1024, 1, 2,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(password), salt, 1, 64*1024, 2, 32)))
	cfg := &config.Config{
		Issuer:  issuer,
		DevMode: true,
		Session: config.Session{AbsoluteLifetime: d(168 * time.Hour), IdleTimeout: d(72 * time.Hour)},
		Tokens:  config.Tokens{IDToken: d(time.Hour), AccessToken: d(time.Hour), RefreshToken: d(720 * time.Hour), RefreshReuseInterval: d(3 * time.Second), AuthorizationCode: d(time.Minute)},
		Storage: st,
		Signing: config.Signing{Algorithm: alg},
		Clients: []config.Client{{
			ID: clientID, Name: "Benchmark", Type: config.ClientRegularWebApp, SecretSHA256: []string{digest.Of(clientSecret)},
			RedirectURIs: []string{redirectURI}, SingleSignOn: true, Connections: []string{"people"},
		}},
		Connections: []config.Connection{{Name: "people", Type: config.ConnectionDatabase, Database: &config.DatabaseConnection{
			Users: []config.DatabaseUser{{Username: username, Email: "bench@example.com", EmailVerified: true, Name: "Bench User", PasswordHash: hash}},
		}}},
	}
	c, err := config.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("marshal config: %w", err)
	}
	k, err := config.MarshalSigningKeys(keys)
	if err != nil {
		return fmt.Errorf("marshal signing keys: %w", err)
	}
	if err := os.WriteFile(cfgPath, c, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.WriteFile(keysPath, k, 0o600); err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("wait for the server at %s: not ready within 30s", u)
}

var (
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	unescape = strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">")
)

// signIn logs in once through the password form, as a browser would, and returns the
// session cookie's value.
func signIn(issuer string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if "http://"+req.URL.Host != issuer {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authorizeURL(issuer, "login", "", pkceChallenge(verifierFor("login"))))
	if err != nil {
		return "", fmt.Errorf("open the login page: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := actionRe.FindSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("open the login page: no password form (status %d)", resp.StatusCode)
	}
	form := url.Values{}
	for _, h := range hiddenRe.FindAllSubmatch(body, -1) {
		form.Set(string(h[1]), unescape.Replace(string(h[2])))
	}
	form.Set("username", username)
	form.Set("password", password)
	action, err := resp.Request.URL.Parse(unescape.Replace(string(m[1])))
	if err != nil {
		return "", fmt.Errorf("read the login form: %w", err)
	}
	resp, err = c.PostForm(action.String(), form)
	if err != nil {
		return "", fmt.Errorf("submit the login form: %w", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("submit the login form: no code in the answer (status %d)", resp.StatusCode)
	}
	u, _ := url.Parse(issuer)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == sessionName {
			return ck.Value, nil
		}
	}
	return "", errors.New("sign in: the server set no session cookie")
}

func verifierFor(state string) string {
	sum := sha256.Sum256([]byte("silentlogin verifier " + state))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeURL(issuer, state, prompt, challenge string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"scope": {"openid profile email"}, "state": {state}, "nonce": {"n-" + state},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	return issuer + "/authorize?" + q.Encode()
}

// silentLogin is one round trip: authorize with the session cookie and prompt=none, then the
// code exchange. It returns the raw ID token.
func silentLogin(c *http.Client, issuer, cookie, state string) (string, error) {
	verifier := verifierFor(state)
	req, _ := http.NewRequest(http.MethodGet, authorizeURL(issuer, state, "none", pkceChallenge(verifier)), nil)
	req.AddCookie(&http.Cookie{Name: sessionName, Value: cookie})
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("authorize: status %d without a redirect", resp.StatusCode)
	}
	q := loc.Query()
	code := q.Get("code")
	if code == "" || q.Get("state") != state {
		return "", fmt.Errorf("authorize: no code for state %s: error=%s (%s)", state, q.Get("error"), q.Get("error_description"))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	req, _ = http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
	resp, err = c.Do(req)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return "", fmt.Errorf("token: status %d: decode answer: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || tok.IDToken == "" {
		return "", fmt.Errorf("token: status %d, error %q, no ID token", resp.StatusCode, tok.Error)
	}
	return tok.IDToken, nil
}

func checkFirstLogin(c *http.Client, issuer, cookie string, keys *config.SigningKeys) error {
	raw, err := silentLogin(c, issuer, cookie, "check")
	if err != nil {
		return fmt.Errorf("first silent login: %w", err)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(keys.Current.Algorithm)})
	if err != nil {
		return fmt.Errorf("first silent login: parse ID token: %w", err)
	}
	if kid := jws.Signatures[0].Header.KeyID; kid != keys.Current.KeyID {
		return fmt.Errorf("first silent login: ID token kid %q, want the current key %q", kid, keys.Current.KeyID)
	}
	payload, err := jws.Verify(keys.Current.Public())
	if err != nil {
		return fmt.Errorf("first silent login: verify ID token: %w", err)
	}
	var claims struct {
		Iss, Sub, Nonce string
		Aud             any
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("first silent login: read ID token claims: %w", err)
	}
	if claims.Iss != issuer || claims.Sub != "people|"+username || claims.Nonce != "n-check" || fmt.Sprint(claims.Aud) != clientID {
		return fmt.Errorf("first silent login: unexpected claims %s", payload)
	}
	return nil
}

type latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	errors atomic.Int64
	first  error
}

func (l *latencies) add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errors.Add(1)
		if l.first == nil {
			l.first = err
		}
		return
	}
	l.d = append(l.d, d)
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

func (l *latencies) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.d)
	return l.d
}

func (l *latencies) firstError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// runLoad runs silent logins from one worker per session cookie for d; lat (when not nil)
// records each one.
func runLoad(issuer string, cookies []string, d time.Duration, lat *latencies) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for _, cookie := range cookies {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			var errs []error
			c, err := newRawClient(issuer, cookie)
			if err != nil {
				errs = append(errs, err)
			}
			for c != nil && time.Now().Before(deadline) {
				t0 := time.Now()
				if err := c.silentLogin("s" + strconv.FormatInt(seq.Add(1), 36)); err != nil {
					errs = append(errs, err)
					continue
				}
				local = append(local, time.Since(t0))
			}
			if c != nil {
				c.close()
			}
			if lat != nil {
				for _, e := range errs {
					lat.add(0, e)
				}
				lat.mu.Lock()
				lat.d = append(lat.d, local...)
				lat.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// signingCeiling is RS256 signatures per second with the key, from n goroutines for d: the
// signing work of an ID token, without anything else.
//
// It also returns the CPU time of one signature (this process's CPU time over the count),
// which, unlike the rate, does not drop when other processes take the cores.
//
// It signs on the server's CPUs of pin, one goroutine for each.
func signingCeiling(key crypto.Signer, pin *cpuPinning, d time.Duration) (perSecond float64, cpu time.Duration) {
	cpu0, _ := processCPU(os.Getpid())
	deadline := time.Now().Add(d)
	var count atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range pin.serverCPUs() {
		// Labelled, so that a -cpuprofile can leave these signatures out (-tagignore).
		wg.Go(func() {
			pprof.Do(context.Background(), pprof.Labels("phase", "ceiling"), func(context.Context) {
				err := pin.onServerCPUs(func() error {
					digest := sha256.Sum256([]byte("id token " + strconv.Itoa(i)))
					for time.Now().Before(deadline) {
						if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
							return fmt.Errorf("sign: %w", err)
						}
						count.Add(1)
					}
					return nil
				})
				if err != nil {
					panic(err)
				}
			})
		})
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, _ := processCPU(os.Getpid())
	return float64(count.Load()) / wall.Seconds(), (cpu1 - cpu0) / time.Duration(count.Load())
}

// cpuReading is the CPU time of the server and of this process (the load generator) and the
// machine's busy and total jiffies, at one moment or between two.
type cpuReading struct {
	server, generator  time.Duration
	busy, steal, total int64
}

func readCPU(serverPID int) (cpuReading, error) {
	var r cpuReading
	var err error
	if r.server, err = processCPU(serverPID); err != nil {
		return r, err
	}
	if r.generator, err = processCPU(os.Getpid()); err != nil {
		return r, err
	}
	r.busy, r.steal, r.total, err = machineCPU()
	return r, err
}

func (r cpuReading) sub(o cpuReading) cpuReading {
	return cpuReading{r.server - o.server, r.generator - o.generator, r.busy - o.busy, r.steal - o.steal, r.total - o.total}
}

func (r cpuReading) add(o cpuReading) cpuReading {
	return cpuReading{r.server + o.server, r.generator + o.generator, r.busy + o.busy, r.steal + o.steal, r.total + o.total}
}

// processCPU is the user+system CPU time of a process.
func processCPU(pid int) (time.Duration, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, fmt.Errorf("read server CPU time: %w", err)
	}
	return st.CPU, nil
}

// processRSS is the resident set size of a process in bytes.
func processRSS(pid int) (int64, error) {
	m, err := proc.ReadMemory(pid)
	if err != nil {
		return 0, fmt.Errorf("read server memory: %w", err)
	}
	return m.Resident, nil
}

// machineCPU returns the busy, stolen and total jiffies of all cores, from /proc/stat. Steal
// is time the hypervisor gave this virtual machine's cores to someone else: on a shared host
// it is what makes the ceiling and the load of one run disagree.
func machineCPU() (busy, steal, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read machine CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0, errors.New("read machine CPU time: unexpected /proc/stat")
	}
	// user nice system idle iowait irq softirq steal; guest time, after them, is counted
	// in user and nice already.
	for i, v := range f[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			steal += n
		default:
			busy += n
		}
	}
	return busy, steal, total, nil
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
