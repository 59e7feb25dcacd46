// Package e2e drives the seed scenario end to end: a real kube-apiserver and etcd, the
// operator, the SSO server process started from the operator's Deployment by the local pod
// runner, the example apps as processes, and headless Chromium as the user.
//
// The tests run when HALLPASS_E2E is set (make test sets it) and are skipped otherwise,
// since they need Chromium (/usr/bin/chromium, or $HALLPASS_CHROMIUM), npm, and a few
// minutes. Screenshots of every step go to test/e2e/artifacts/.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/loopback"

	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

// env is what TestMain started, shared by the tests of the package.
var env struct {
	enabled bool
	repo    string
	bin     string
	cluster *devcluster.Cluster
	ns      string
	// ports of the SSO server (the issuer's) and the apps.
	ssoPort, app1Port, app2Port, app3Port int
	logs                                  *logbuf.Buffer
	procs                                 []*proc
}

// proc is an app process and a channel closed when it exits.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Hosts the browser uses. Chromium maps them to 127.0.0.1 (--host-resolver-rules), so the
// apps and the server are on different sites, as app1.com, app2.com and the tenant are in
// the seed scenario. The issuer is an IP literal so the apps' back-channel requests reach
// it without any name resolution.
const (
	app1Host = "app1.test"
	app2Host = "app2.test"
	app3Host = "app3.test"
)

func issuer() string  { return fmt.Sprintf("http://127.0.0.1:%d", env.ssoPort) }
func app1URL() string { return fmt.Sprintf("http://%s:%d", app1Host, env.app1Port) }
func app2URL() string { return fmt.Sprintf("http://%s:%d", app2Host, env.app2Port) }
func app3URL() string { return fmt.Sprintf("http://%s:%d", app3Host, env.app3Port) }

// appBackchannelURL is an app's back-channel logout endpoint as the SSO server reaches it.
func appBackchannelURL(port int) string {
	return fmt.Sprintf("http://127.0.0.1:%d/backchannel-logout", port)
}

func TestMain(m *testing.M) {
	if os.Getenv("HALLPASS_E2E") == "" {
		// Each test skips with the reason, so `go test ./...` stays fast and says why.
		os.Exit(m.Run())
	}
	env.enabled = true
	// Interrupted, the test binary would leave kube-apiserver, etcd and the apps running.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		fmt.Fprintln(os.Stderr, "e2e: interrupted; stopping the cluster and the apps")
		tearDown()
		os.Exit(1)
	}()
	if err := setUp(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: set up: %v\n", err)
		tearDown()
		fmt.Fprintf(os.Stderr, "e2e: output of the cluster and apps:\n%s", env.logs.String())
		os.Exit(1)
	}
	code := m.Run()
	tearDown()
	if code != 0 || os.Getenv("HALLPASS_TEST_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "e2e: output of the cluster and apps:\n%s", env.logs.String())
	}
	os.Exit(code)
}

func requireE2E(t *testing.T) {
	t.Helper()
	if !env.enabled {
		t.Skip("set HALLPASS_E2E=1 to run the browser end-to-end tests (needs chromium and npm)")
	}
}

// setUp builds the binaries, starts the dev cluster with config/samples mapped to loopback
// URLs, and starts App 1 and App 2.
func setUp() error {
	env.logs = &logbuf.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var err error
	if env.repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		return err
	}
	if env.bin, err = os.MkdirTemp("", "hallpass-e2e-bin-"); err != nil {
		return fmt.Errorf("create bin directory: %w", err)
	}
	for _, b := range []struct{ name, pkg string }{
		{"hallpass", "./cmd/hallpass"}, {"app1", "./examples/app1"}, {"app2", "./examples/app2"},
	} {
		if err := run(ctx, env.repo, "go", "build", "-o", filepath.Join(env.bin, b.name), b.pkg); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(env.repo, "examples", "app1", "node_modules", "oidc-client-ts")); err != nil {
		if err := run(ctx, filepath.Join(env.repo, "examples", "app1"), "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
			return err
		}
	}
	assets, err := envtestbin.Dir(ctx, env.repo)
	if err != nil {
		return err
	}
	for _, p := range []*int{&env.ssoPort, &env.app1Port, &env.app2Port, &env.app3Port} {
		if *p, err = loopback.FreePort(); err != nil {
			return err
		}
	}

	env.cluster, err = devcluster.Start(context.Background(), devcluster.Options{
		CRDDir:          filepath.Join(env.repo, "config", "crd", "bases"),
		BinaryAssetsDir: assets,
		ServerBinary:    filepath.Join(env.bin, "hallpass"),
		Logs:            env.logs,
	})
	if err != nil {
		return err
	}
	env.ns = "default"
	objs, err := devcluster.ReadManifests(filepath.Join(env.repo, "config", "samples"))
	if err != nil {
		return err
	}
	devcluster.MapURLs(objs, map[string]string{
		"https://sso.example.com":  issuer(),
		"https://app1.example.com": app1URL(),
		"https://app2.example.com": app2URL(),
		// The server calls this itself, not the browser, and only the browser maps the
		// app*.test names to loopback: name the app's listen address.
		"https://app2.example.com/backchannel-logout": appBackchannelURL(env.app2Port),
	})
	if err := devcluster.Apply(ctx, env.cluster.Client, env.ns, objs); err != nil {
		return err
	}
	if err := env.cluster.WaitServersReady(ctx, env.ns, 2*time.Minute); err != nil {
		return err
	}

	if err := startApp("app1", env.app1Port, "--base-url", app1URL(), "--app2-url", app2URL(),
		"--node-modules", filepath.Join(env.repo, "examples", "app1", "node_modules")); err != nil {
		return err
	}
	if err := startApp("app2", env.app2Port, "--base-url", app2URL(), "--allow-insecure-http"); err != nil {
		return err
	}
	return nil
}

// startApp runs an example app binary (app1 or app2) on port and waits until it answers.
func startApp(binary string, port int, args ...string) error {
	return startAppNamed(binary, binary, port, args...)
}

func startAppNamed(name, binary string, port int, args ...string) error {
	args = append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--kubeconfig", env.cluster.Kubeconfig, "--namespace", env.ns}, args...)
	cmd := exec.Command(filepath.Join(env.bin, binary), args...)
	cmd.Env = append(os.Environ(), "HALLPASS_CLIENT_ID=", "KUBECONFIG=")
	w := prefixed(env.logs, "["+name+"] ")
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	env.procs = append(env.procs, p)
	// The app waits for its credentials Secret before serving; bound the wait.
	deadline := time.After(2 * time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before serving: %s", name, cmd.ProcessState)
		case <-deadline:
			return fmt.Errorf("%s did not answer on port %d within 2 minutes: %w", name, port, errTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var tearDownOnce sync.Once

func tearDown() { tearDownOnce.Do(stopAll) }

func stopAll() {
	for _, p := range env.procs {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range env.procs {
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if env.cluster != nil {
		env.cluster.Stop()
	}
	if env.bin != "" {
		_ = os.RemoveAll(env.bin)
	}
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func prefixed(w io.Writer, prefix string) io.Writer { return &prefixWriter{w, prefix} }

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

var errTimeout = errors.New("timed out")
