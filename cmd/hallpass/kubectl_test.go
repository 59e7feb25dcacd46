package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector/conntest"
	"github.com/hallpass/hallpass/internal/envtestbin"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// runAsHallpass makes the test binary the hallpass command when a kubectl credential plugin
// config runs it: kube clients exec the plugin as a process, as kubectl does.
const runAsHallpass = "HALLPASS_TEST_RUN_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(runAsHallpass) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKubeAPIServerTrustsHallpassForKubectl is the whole chain with the real peer: a
// kube-apiserver started with the AuthenticationConfiguration that `hallpass kubeconfig
// --apiserver-config` prints, trusting a Hallpass server over https (a test CA), and a kube
// client whose credential plugin is `hallpass login`, exactly as the kubeconfig entry of
// `hallpass kubeconfig` has it. client-go's exec credential support runs the plugin (the
// code kubectl uses; kubectl itself is not installed by the test setup). Headless Chromium is
// the user's browser: it answers the device flow, then the browser flow signs in silently
// from the session the first one started; RBAC on the Hallpass group grants and denies; after
// a sign-out everywhere the refresh fails and the plugin asks to sign in again.
func TestKubeAPIServerTrustsHallpassForKubectl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	dir := t.TempDir()
	ca := conntest.NewCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(caFile, []byte(ca.CertPEM), 0o600))
	// ID tokens live 31 seconds: the plugin reuses a cached one only while more than 30 are
	// left, so every new client after a second refreshes, as one would after an hour.
	issuer := startIssuer(t, ca, func(c *config.Config) { c.Tokens.IDToken.Duration = 31 * time.Second })

	// The cluster admin's half: the API server's authentication config.
	var authn bytes.Buffer
	must(t, runKubeconfig([]string{"--apiserver-config", "--issuer", issuer, "--client-id", kubectlClient, "--ca-file", caFile}, &authn))
	authnFile := filepath.Join(dir, "authentication.yaml")
	must(t, os.WriteFile(authnFile, authn.Bytes(), 0o600))
	assets, err := envtestbin.Dir(context.Background(), filepath.Join("..", ".."))
	must(t, err)
	env := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: envtestbin.StartTimeout}
	env.ControlPlane.GetAPIServer().Configure().Set("authentication-config", authnFile)
	admin, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver with the authentication config:\n%s\n%v", authn.String(), err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	adminClient := kubernetes.NewForConfigOrDie(admin)

	// The user's half: kube clients whose credential plugin is hallpass login. Its messages
	// to the user (stderr) go to a file the test reads, as a terminal would show them.
	self, err := os.Executable()
	must(t, err)
	// Each client has its own token cache (as two users' machines would), named by cache.
	userClient := func(name, cache string, extraArgs ...string) (*kubernetes.Clientset, string) {
		stderrFile := filepath.Join(dir, name+".stderr")
		args := append([]string{"-c", `exec "$0" "$@" 2>>` + stderrFile, self,
			"login", "--issuer", issuer, "--client-id", kubectlClient, "--ca-file", caFile,
			"--cache-dir", filepath.Join(dir, "cache-"+cache), "--timeout", "20s"}, extraArgs...)
		cfg := &rest.Config{Host: admin.Host, TLSClientConfig: rest.TLSClientConfig{CAData: admin.CAData},
			ExecProvider: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "/bin/sh", Args: args,
				Env: []clientcmdapi.ExecEnvVar{{Name: runAsHallpass, Value: "1"}, {Name: "BROWSER", Value: filepath.Join(dir, "browser.sh")},
					{Name: "HALLPASS_TEST_CLIENT", Value: name}}, // a client of its own: client-go caches credentials per plugin config
				InteractiveMode: clientcmdapi.IfAvailableExecInteractiveMode}}
		return kubernetes.NewForConfigOrDie(cfg), stderrFile
	}
	// The "browser" the plugin opens writes the URL down; Chromium then opens it.
	opened := filepath.Join(dir, "opened-url")
	must(t, os.WriteFile(filepath.Join(dir, "browser.sh"), []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+opened+"\n"), 0o700))
	whoami := func(c *kubernetes.Clientset) (*authenticationv1.SelfSubjectReview, error) {
		return c.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	}
	br := chromium.Start(t, chromium.Options{Flags: map[string]any{"ignore-certificate-errors-spki-list": spkiHash(t, issuer, ca)}})

	// 1. Device flow: the plugin shows a code; Chromium, with no session yet, signs in.
	deviceClient, deviceStderr := userClient("device", "device", "--device")
	type review struct {
		r   *authenticationv1.SelfSubjectReview
		err error
	}
	answer := make(chan review, 1)
	go func() { r, err := whoami(deviceClient); answer <- review{r, err} }()
	link := waitForFile(t, deviceStderr, regexp.MustCompile(`\(or open (\S+)\)`))
	br.Run("allow the device and sign in",
		chromedp.Navigate(link),
		chromedp.Click(chromedp.CSS(`#allow`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), bobPassword),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`input[name="password"]`)),
	)
	var got review
	select {
	case got = <-answer:
	case <-time.After(60 * time.Second):
		t.Fatalf("whoami did not return; plugin stderr:\n%s", readFile(deviceStderr))
	}
	if got.err != nil {
		t.Fatalf("whoami with the device sign-in: %v\nplugin stderr:\n%s", got.err, readFile(deviceStderr))
	}
	user := got.r.Status.UserInfo
	if user.Username != "hallpass:people|bob" || !slices.Contains(user.Groups, "hallpass:sre") {
		t.Fatalf("whoami: user %q groups %v, want hallpass:people|bob in hallpass:sre", user.Username, user.Groups)
	}

	// 2. RBAC on the Hallpass group: denied without a binding, granted with one, denied
	// again once it is gone.
	canList := func(c *kubernetes.Clientset) error {
		_, err := c.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
		return err
	}
	if err := canList(deviceClient); !apierrors.IsForbidden(err) {
		t.Fatalf("listing namespaces without a binding: %v, want Forbidden", err)
	}
	// A role of its own: the aggregated view role gets its rules from kube-controller-manager,
	// which this control plane does not run.
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "namespace-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list"}}}}
	_, err = adminClient.RbacV1().ClusterRoles().Create(context.Background(), role, metav1.CreateOptions{})
	must(t, err)
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sre-namespace-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "hallpass:sre"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}}
	_, err = adminClient.RbacV1().ClusterRoleBindings().Create(context.Background(), binding, metav1.CreateOptions{})
	must(t, err)
	var lastErr error
	eventually(t, "the binding grants access", func() bool { lastErr = canList(deviceClient); return lastErr == nil }, &lastErr)
	must(t, adminClient.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{}))
	eventually(t, "removing the binding denies access", func() bool { lastErr = canList(deviceClient); return apierrors.IsForbidden(lastErr) }, &lastErr)

	// 3. Browser flow on a loopback redirect: Chromium has the central session now, so the
	// sign-in needs no page at all.
	browserClient, browserStderr := userClient("browser", "browser")
	go func() { r, err := whoami(browserClient); answer <- review{r, err} }()
	authURL := waitForFile(t, opened, regexp.MustCompile(`^(https://\S+)$`))
	stop := br.RecordPages()
	br.Run("open the authorization URL", chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.CSS(`#result`)))
	if pages := stop(); slices.ContainsFunc(pages, func(p string) bool { return strings.HasPrefix(p, issuer+"/login") }) {
		t.Errorf("the browser sign-in showed the login page although the browser had a session: %v", pages)
	}
	select {
	case got = <-answer:
	case <-time.After(60 * time.Second):
		t.Fatalf("whoami did not return; plugin stderr:\n%s", readFile(browserStderr))
	}
	if got.err != nil || got.r.Status.UserInfo.Username != "hallpass:people|bob" {
		t.Fatalf("whoami with the browser sign-in: %v %+v\nplugin stderr:\n%s", got.err, got.r, readFile(browserStderr))
	}

	// 4. Sign out everywhere: the refresh tokens die with the session; a client that needs a
	// new token (here with the device sign-in's cache) is asked to sign in again, and gives
	// up here, since nobody answers.
	br.Run("sign out, confirming", chromedp.Navigate(issuer+"/v2/logout"),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitNotPresent(chromedp.CSS(`form[method="post"] button[type="submit"]`)))
	time.Sleep(2 * time.Second) // past the cache's reuse window
	afterClient, afterStderr := userClient("after-logout", "device", "--device")
	if _, err := whoami(afterClient); err == nil {
		t.Fatal("whoami after signing out everywhere succeeded")
	}
	if s := readFile(afterStderr); !strings.Contains(s, "no longer valid") || !strings.Contains(s, "enter the code") {
		t.Errorf("after signing out the plugin does not ask to sign in again:\n%s", s)
	}
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
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// waitForFile waits until re matches the file's content and returns the first group.
func waitForFile(t *testing.T, path string, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(readFile(path)); m != nil {
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never matched %s:\n%s", path, re, readFile(path))
	return ""
}

func eventually(t *testing.T, what string, ok func() bool, lastErr *error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s (last error: %v)", what, *lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
