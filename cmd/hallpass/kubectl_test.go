package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/envtestbin"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestKubectlSignsInWithHallpass is the whole chain with the real peers, as a cluster admin
// and a user follow the guide: a kube-apiserver started with the AuthenticationConfiguration
// that `hallpass kubeconfig --apiserver-config` prints, trusting a Hallpass server over https
// (a test CA); the real kubectl, whose user entry is what `hallpass kubeconfig` prints, so
// that kubectl runs the built hallpass binary's `login` as its credential plugin; headless
// Chromium as the user's browsers. On the workstation kubectl opens the browser (a password
// sign-in); on a remote machine kubectl signs in with --device, the code typed on a phone
// (a second Chromium, password again), and on another one the workstation's browser confirms
// the code with its session, without a password, as it answers the browser sign-in of a dev
// container with no tokens of its own. RBAC on the Hallpass group grants and
// denies; after signing out everywhere the refresh fails and kubectl asks to sign in again.
func TestKubectlSignsInWithHallpass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver, Chromium and kubectl")
	}
	kubectl := kubectlBinary(t)
	hallpass := buildHallpass(t)
	dir := t.TempDir()
	ca := conntest.NewCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(caFile, []byte(ca.CertPEM), 0o600))
	// ID tokens live 31 seconds: the plugin reuses a cached one only while more than 30 are
	// left, so every kubectl command after a second refreshes, as one would after an hour.
	issuer := startIssuer(t, ca, func(c *config.Config) { c.Tokens.IDToken.Duration = 31 * time.Second })
	cluster := startTrustingCluster(t, hallpass, kubectl, issuer, caFile)
	setup := func(name string, flags ...string) *userMachine {
		return newUserMachine(t, name, hallpass, kubectl, cluster, append([]string{"--issuer", issuer, "--client-id", kubectlClient, "--ca-file", caFile}, flags...))
	}
	spki := spkiHash(t, issuer, ca)
	workstation := chromium.Start(t, chromium.Options{Flags: map[string]any{"ignore-certificate-errors-spki-list": spki}})

	// 1. The workstation: kubectl opens the browser, which has no session yet: a password.
	laptop := setup("workstation")
	whoami := laptop.start("auth", "whoami", "-o", "json")
	stop := workstation.RecordPages()
	workstation.Run("open the sign-in kubectl asks for", chromedp.Navigate(laptop.waitForBrowser()))
	signInWithPassword(workstation)
	workstation.Run("wait for the answer to kubectl", chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if pages := stop(); !slices.ContainsFunc(pages, func(p string) bool { return strings.HasPrefix(p, issuer+"/login") }) {
		t.Errorf("the first browser sign-in showed no login page: %v", pages)
	}
	first := whoami.wait()
	assertWhoami(t, first)
	laptop.assertTokensKeptPrivately(first)

	// 2. RBAC on the Hallpass group: denied without a binding, granted with one, denied
	// again once it is gone. The cluster admin uses kubectl too. A role of its own: the
	// aggregated view role gets its rules from kube-controller-manager, which this control
	// plane does not run.
	assertForbidden(t, laptop.run("get", "namespaces"))
	cluster.admin(t, "create", "clusterrole", "namespace-reader", "--verb=get,list", "--resource=namespaces")
	cluster.admin(t, "create", "clusterrolebinding", "sre-namespace-reader", "--clusterrole=namespace-reader", "--group=hallpass:sre")
	var last result
	eventually(t, "the binding grants access", func() bool {
		last = laptop.run("get", "namespaces", "-o", "name")
		return last.err == nil && strings.Contains(last.stdout, "namespace/default")
	}, func() string { return last.String() })
	cluster.admin(t, "delete", "clusterrolebinding", "sre-namespace-reader")
	eventually(t, "removing the binding denies access", func() bool {
		last = laptop.run("get", "namespaces")
		return last.err != nil && strings.Contains(last.stderr, "(Forbidden)")
	}, func() string { return last.String() })

	// 3. A remote machine without a browser: kubectl shows a code, typed on a phone that has
	// no session, which signs in with a password.
	remote := setup("remote", "--device")
	whoami = remote.start("auth", "whoami", "-o", "json")
	verificationURI, code := remote.waitForCode()
	phone := chromium.Start(t, chromium.Options{Flags: map[string]any{"ignore-certificate-errors-spki-list": spki}})
	phone.Run("type the code on the phone",
		chromedp.Navigate(verificationURI),
		chromedp.SendKeys(chromedp.CSS(`#user_code`), code, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`#continue`)),
		chromedp.Click(chromedp.CSS(`#allow`), chromedp.NodeVisible))
	signInWithPassword(phone)
	assertWhoami(t, whoami.wait())

	// 4. Another machine with --device, the code confirmed in the workstation's browser: its
	// central session answers, no password.
	buildServer := setup("build-server", "--device")
	whoami = buildServer.start("auth", "whoami", "-o", "json")
	verificationURI, code = buildServer.waitForCode()
	stop = workstation.RecordPages()
	workstation.Run("confirm the code with the session",
		chromedp.Navigate(verificationURI+"?"+url.Values{"user_code": {code}}.Encode()),
		chromedp.Click(chromedp.CSS(`#allow`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`#allow`)))
	if pages := stop(); slices.ContainsFunc(pages, func(p string) bool { return strings.HasPrefix(p, issuer+"/login") }) {
		t.Errorf("confirming the code showed the login page although the browser had a session: %v", pages)
	}
	assertWhoami(t, whoami.wait())

	// A dev container on the workstation, with no tokens of its own, opens its sign-in in the
	// workstation's browser: the session answers without a page.
	container := setup("dev-container")
	whoami = container.start("auth", "whoami", "-o", "json")
	stop = workstation.RecordPages()
	workstation.Run("open the sign-in the container asks for", chromedp.Navigate(container.waitForBrowser()),
		chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if pages := stop(); slices.ContainsFunc(pages, func(p string) bool { return strings.HasPrefix(p, issuer+"/login") }) {
		t.Errorf("the browser sign-in showed the login page although the browser had a session: %v", pages)
	}
	assertWhoami(t, whoami.wait())

	// 5. Sign out everywhere (the account page): the refresh tokens of both sessions die; the
	// next kubectl command on each machine asks to sign in again.
	workstation.Run("sign out everywhere", chromedp.Navigate(issuer+"/account"),
		chromedp.Click(chromedp.CSS(`input[value="end-all-sessions"] ~ button`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`input[value="end-all-sessions"]`)))
	time.Sleep(2 * time.Second) // past the cached ID tokens' reuse window
	askedAgain := remote.start("get", "namespaces")
	remote.waitForCode()
	askedAgain.stop()
	if s := askedAgain.wait().stderr; !strings.Contains(s, "no longer valid") {
		t.Errorf("after signing out everywhere the remote kubectl does not say why it asks again:\n%s", s)
	}
	whoami = laptop.start("auth", "whoami", "-o", "json")
	workstation.Run("open the new sign-in", chromedp.Navigate(laptop.waitForBrowser()))
	signInWithPassword(workstation)
	got := whoami.wait()
	assertWhoami(t, got)
	if !strings.Contains(got.stderr, "no longer valid") {
		t.Errorf("after signing out everywhere the workstation's kubectl does not say why it asks again:\n%s", got.stderr)
	}
}

// signInWithPassword answers the login page as bob.
func signInWithPassword(b *chromium.Browser) {
	b.Run("sign in with a password",
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), bobPassword),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="password"]`)))
}

// assertWhoami checks that `kubectl auth whoami -o json` succeeded and shows the Hallpass
// user with the Hallpass group, prefixed as the AuthenticationConfiguration says.
func assertWhoami(t *testing.T, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("kubectl auth whoami: %s", r)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &review); err != nil {
		t.Fatalf("kubectl auth whoami printed no SelfSubjectReview: %v\n%s", err, r)
	}
	user := review.Status.UserInfo
	if user.Username != "hallpass:people|bob" || !slices.Contains(user.Groups, "hallpass:sre") {
		t.Fatalf("kubectl auth whoami: user %q groups %v, want hallpass:people|bob in hallpass:sre", user.Username, user.Groups)
	}
}

func assertForbidden(t *testing.T, r result) {
	t.Helper()
	if r.err == nil || !strings.Contains(r.stderr, "(Forbidden)") {
		t.Fatalf("kubectl without a binding: %s, want Forbidden", r)
	}
}

// assertTokensKeptPrivately checks the machine's token cache: one file, that only its owner
// may read, whose tokens kubectl never showed the user.
func (m *userMachine) assertTokensKeptPrivately(shown result) {
	m.t.Helper()
	files, err := filepath.Glob(filepath.Join(m.cacheHome, "hallpass", "tokens", "*.json"))
	if err != nil || len(files) != 1 {
		m.t.Fatalf("token cache under %s: %v %v, want one file", m.cacheHome, files, err)
	}
	info, err := os.Stat(files[0])
	must(m.t, err)
	if info.Mode().Perm() != 0o600 {
		m.t.Errorf("the token cache has mode %v, want 0600", info.Mode().Perm())
	}
	data, err := os.ReadFile(files[0])
	must(m.t, err)
	var cached cachedToken
	must(m.t, json.Unmarshal(data, &cached))
	for name, secret := range map[string]string{"ID token": cached.IDToken, "refresh token": cached.RefreshToken} {
		if secret == "" || strings.Contains(shown.stdout+shown.stderr, secret) {
			m.t.Errorf("the %s is missing from the cache or kubectl showed it:\n%s", name, shown)
		}
	}
}

// kubectlBinary is $HALLPASS_KUBECTL (make test builds it before the suites), or the kubectl
// that hack/node-binaries.sh builds once into the cache from the k8s.io/kubernetes module.
func kubectlBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HALLPASS_KUBECTL"); p != "" {
		return p
	}
	script, err := filepath.Abs("../../hack/node-binaries.sh")
	must(t, err)
	out, err := exec.CommandContext(t.Context(), script).Output()
	if err != nil {
		t.Fatalf("build kubectl with %s: %v", script, err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "kubectl")
}

// buildHallpass builds this command, the binary a user installs and kubectl runs.
func buildHallpass(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hallpass")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build the hallpass command: %v\n%s", err, out)
	}
	return bin
}

// testCluster is a kube-apiserver that trusts the Hallpass server, and its admin's kubeconfig.
type testCluster struct {
	kubectl, adminKubeconfig string
	server, caFile           string
}

// startTrustingCluster starts kube-apiserver (and etcd) with the AuthenticationConfiguration
// that the built `hallpass kubeconfig --apiserver-config` prints for the issuer.
func startTrustingCluster(t *testing.T, hallpass, kubectl, issuer, caFile string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	authn, err := exec.CommandContext(t.Context(), hallpass, "kubeconfig", "--apiserver-config",
		"--issuer", issuer, "--client-id", kubectlClient, "--ca-file", caFile).Output()
	must(t, err)
	authnFile := filepath.Join(dir, "authentication.yaml")
	must(t, os.WriteFile(authnFile, authn, 0o600))
	assets, err := envtestbin.Dir(context.Background(), filepath.Join("..", ".."))
	must(t, err)
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: envtestbin.StartTimeout}
	env.ControlPlane.GetAPIServer().Configure().Set("authentication-config", authnFile)
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver with the authentication config:\n%s\n%v", authn, err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	must(t, err)
	adminKubeconfig, err := admin.KubeConfig()
	must(t, err)
	c := &testCluster{kubectl: kubectl, server: cfg.Host, adminKubeconfig: filepath.Join(dir, "admin.kubeconfig"), caFile: filepath.Join(dir, "cluster-ca.pem")}
	must(t, os.WriteFile(c.adminKubeconfig, adminKubeconfig, 0o600))
	must(t, os.WriteFile(c.caFile, cfg.CAData, 0o600))
	return c
}

// admin runs kubectl as the cluster admin.
func (c *testCluster) admin(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.adminKubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s as the cluster admin: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// userMachine is a machine where bob runs kubectl: a home and cache directory of its own
// (so its own token cache), a kubeconfig set up as the guide says, and a "browser" that
// writes down the URL it is asked to open, for Chromium to open it.
type userMachine struct {
	t                         *testing.T
	kubectl, kubeconfig       string
	home, cacheHome           string
	browserScript, openedFile string
	// stderrOfLast is what the last kubectl command started here wrote to its terminal.
	stderrOfLast *syncBuffer
}

// deviceMessage is how `hallpass login --device` shows the address and the code.
var deviceMessage = regexp.MustCompile(`open (\S+) and enter the code (\S+)`)

func newUserMachine(t *testing.T, name, hallpass, kubectl string, c *testCluster, loginFlags []string) *userMachine {
	t.Helper()
	home := filepath.Join(t.TempDir(), name)
	must(t, os.MkdirAll(home, 0o700))
	m := &userMachine{t: t, kubectl: kubectl, kubeconfig: filepath.Join(home, "kubeconfig"), home: home, cacheHome: filepath.Join(home, "cache"),
		browserScript: filepath.Join(home, "browser.sh"), openedFile: filepath.Join(home, "opened-url")}
	must(t, os.WriteFile(m.browserScript, []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+m.openedFile+"\n"), 0o700))
	// The user's half, as the guide has it: the user entry of `hallpass kubeconfig`, then
	// the cluster and a context that uses the entry.
	entry, err := exec.CommandContext(t.Context(), hallpass, append([]string{"kubeconfig", "--command", hallpass}, loginFlags...)...).Output()
	must(t, err)
	must(t, os.WriteFile(m.kubeconfig, entry, 0o600))
	for _, args := range [][]string{
		{"config", "set-cluster", "test", "--server", c.server, "--certificate-authority", c.caFile, "--embed-certs"},
		{"config", "set-context", "test", "--cluster", "test", "--user", "hallpass"},
		{"config", "use-context", "test"},
	} {
		if r := m.run(args...); r.err != nil {
			t.Fatalf("set up the kubeconfig of %s: %s", name, r)
		}
	}
	return m
}

// result is what a kubectl command printed and how it ended.
type result struct {
	args           []string
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.err, r.stdout, r.stderr)
}

// running is a kubectl command that has not ended yet.
type running struct {
	t      *testing.T
	args   []string
	cancel context.CancelFunc
	stdout *bytes.Buffer
	stderr *syncBuffer
	// done is closed when the command has ended, with err.
	done chan struct{}
	err  error
}

// start runs kubectl on the machine, without waiting for it.
func (m *userMachine) start(args ...string) *running {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, m.kubectl, args...)
	// The machine's own home and cache (kubectl's discovery cache, hallpass's tokens),
	// its kubeconfig and its browser.
	cmd.Env = append(os.Environ(), "HOME="+m.home, "XDG_CACHE_HOME="+m.cacheHome, "KUBECONFIG="+m.kubeconfig, "BROWSER="+m.browserScript)
	r := &running{t: m.t, args: args, cancel: cancel, stdout: &bytes.Buffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	// Stopping it is a Ctrl-C in its terminal: SIGINT to its process group, the credential
	// plugin kubectl runs included (which would otherwise wait for a sign-in for minutes,
	// holding kubectl's output open).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Second
	_ = os.Remove(m.openedFile)
	if err := cmd.Start(); err != nil {
		cancel()
		m.t.Fatalf("start kubectl: %v", err)
	}
	m.stderrOfLast = r.stderr
	go func() { r.err = cmd.Wait(); close(r.done) }()
	m.t.Cleanup(func() { r.stop(); <-r.done })
	return r
}

// run runs kubectl on the machine and waits for it.
func (m *userMachine) run(args ...string) result {
	m.t.Helper()
	return m.start(args...).wait()
}

// stop ends the command (a user pressing Ctrl-C).
func (r *running) stop() { r.cancel() }

// wait waits for the command to end; it may be waiting for a sign-in that the test answers.
func (r *running) wait() result {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(90 * time.Second):
		r.t.Fatalf("kubectl %s did not end; stderr:\n%s", strings.Join(r.args, " "), r.stderr.String())
	}
	return result{args: r.args, stdout: r.stdout.String(), stderr: r.stderr.String(), err: r.err}
}

// waitForBrowser waits until kubectl's credential plugin opened the browser, and returns the
// address it opened.
func (m *userMachine) waitForBrowser() string {
	m.t.Helper()
	var opened string
	eventually(m.t, "kubectl opens the browser", func() bool {
		b, _ := os.ReadFile(m.openedFile)
		opened = string(b)
		return strings.HasPrefix(opened, "https://")
	}, func() string { return "kubectl's stderr:\n" + m.stderrOfLast.String() })
	return opened
}

// waitForCode waits until the last kubectl command shows the device sign-in's address and
// code, and returns them.
func (m *userMachine) waitForCode() (verificationURI, code string) {
	m.t.Helper()
	got := m.stderrOfLast.waitFor(m.t, deviceMessage)
	return got[1], got[2]
}

// spkiHash is the SHA-256 of the issuer certificate's public key, for Chromium's
// --ignore-certificate-errors-spki-list: it trusts that one key, as if the test CA were
// installed.
func spkiHash(t *testing.T, issuer string, ca *conntest.CA) string {
	t.Helper()
	u, err := url.Parse(issuer)
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	must(t, err)
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("%v\n%s", err, exit.Stderr)
	}
	t.Fatal(err)
}

// eventually waits up to 30 seconds for ok; last describes the last attempt when it fails.
func eventually(t *testing.T, what string, ok func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s; last attempt: %s", what, last())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
