package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/localca"
	"github.com/hallpass/hallpass/internal/loopback"
	chromium "github.com/hallpass/hallpass/internal/testutil/browser"
)

// TestTheDemoSignsKubectlInAndEnrolsAPasskeyOverHTTPS runs `hallpass dev` as `make demo`
// does: config/samples with the issuer mapped to https://localhost (a certificate from the
// dev CA) and the kubectl client trusted by kube-apiserver. The demo user signs kubectl in
// through the kubeconfig `hallpass dev` writes (Chromium is the browser the plugin opens),
// the real `kubectl auth whoami` names them and their group, and on the account page they
// enrol a passkey, which WebAuthn allows only on a host name over a trusted connection.
func TestTheDemoSignsKubectlInAndEnrolsAPasskeyOverHTTPS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev cluster")
	}
	dir := t.TempDir()
	repo := filepath.Join("..", "..")
	hallpass := filepath.Join(dir, "hallpass")
	if out, err := exec.Command("go", "build", "-o", hallpass, ".").CombinedOutput(); err != nil {
		t.Fatalf("build hallpass: %v\n%s", err, out)
	}
	assets, err := envtestbin.Dir(context.Background(), repo)
	must(t, err)
	port, err := loopback.FreePort()
	must(t, err)
	issuer := fmt.Sprintf("https://localhost:%d", port)
	caDir, userKubeconfig, ready := filepath.Join(dir, "ca"), filepath.Join(dir, "user.kubeconfig"), filepath.Join(dir, "ready")
	// The plugin's token cache and the "browser" it opens, as on a user's machine.
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	opened := filepath.Join(dir, "opened-url")
	must(t, os.WriteFile(filepath.Join(dir, "browser.sh"), []byte("#!/bin/sh\nprintf '%s' \"$1\" > "+opened+"\n"), 0o700))
	t.Setenv("BROWSER", filepath.Join(dir, "browser.sh"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"--crd-dir", filepath.Join(repo, "config", "crd", "bases"), "--envtest-assets", assets,
			"--server-binary", hallpass, "--work-dir", filepath.Join(dir, "work"), "--apply", filepath.Join(repo, "config", "samples"),
			"--map-url", "https://sso.example.com=" + issuer,
			"--map-url", "https://app1.example.com=http://127.0.0.1:3901", "--map-url", "https://app2.example.com=http://127.0.0.1:3902",
			"--ca-dir", caDir, "--kubectl-client", "kubectl", "--kubectl-kubeconfig-out", userKubeconfig,
			"--ready-file", ready, "--ready-timeout", "4m", "--zap-log-level", "error"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hallpass dev stopped with %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("hallpass dev did not stop within a minute of its context's end")
		}
	})
	waitForDev(t, ready, done)

	ca, err := localca.LoadOrCreate(caDir, "unused: the CA exists")
	must(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	discoveryOverTLS(t, issuer, pool)

	// kubectl auth whoami: the plugin opens the browser; Chromium, trusting the CA by the pin
	// make demo prints, signs the demo user in.
	pin := strings.TrimSpace(readFile(filepath.Join(caDir, caPinFile)))
	if pin != ca.SPKIHash() {
		t.Fatalf("the pin file holds %q, want the CA's %q", pin, ca.SPKIHash())
	}
	br := chromium.Start(t, chromium.Options{Hosts: []string{"localhost"},
		Flags: map[string]any{"ignore-certificate-errors-spki-list": pin}})
	whoami := exec.CommandContext(t.Context(), kubectlBinary(t), "--kubeconfig", userKubeconfig, "auth", "whoami", "-o", "json")
	var whoamiOut, whoamiErr strings.Builder
	whoami.Stdout, whoami.Stderr = &whoamiOut, &whoamiErr
	whoami.WaitDelay = 10 * time.Second // the plugin it runs may hold the output open a moment
	must(t, whoami.Start())
	answer := make(chan error, 1)
	go func() { answer <- whoami.Wait() }()
	waitForFile(t, opened, regexp.MustCompile(`^https://\S+$`))
	authURL := readFile(opened)
	br.Run("sign in as the demo user",
		chromedp.Navigate(authURL),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "demo", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
		chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`#result`)))
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("kubectl auth whoami: %v\n%s", err, whoamiErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("kubectl auth whoami did not return within 60 s of the sign-in")
	}
	var review authenticationv1.SelfSubjectReview
	must(t, json.Unmarshal([]byte(whoamiOut.String()), &review))
	if got := review.Status.UserInfo; got.Username != "hallpass:username-password|demo" || !slices.Contains(got.Groups, "hallpass:staff") {
		t.Errorf("kubectl auth whoami: user %q in groups %v, want hallpass:username-password|demo in hallpass:staff", got.Username, got.Groups)
	}

	// The account page: the same browser, signed in, enrols a passkey.
	addVirtualAuthenticator(br)
	br.Run("open the account page", chromedp.Navigate(issuer+"/account"),
		chromedp.WaitVisible(chromedp.CSS(`button[data-passkey="create"]`)))
	br.Run("add a passkey", chromedp.Click(chromedp.CSS(`button[data-passkey="create"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`input[value="remove-factor"] ~ button, #error, #passkey-status:not(:empty)`)))
	if main := br.Text("main"); !strings.Contains(main, "Remove Passkey") {
		t.Fatalf("after adding a passkey the demo's account page shows:\n%s", main)
	}
}

// waitForDev waits until `hallpass dev` writes its ready file, or fails with why it stopped.
func waitForDev(t *testing.T, ready string, done <-chan error) {
	t.Helper()
	deadline := time.After(6 * time.Minute)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("hallpass dev stopped before it was ready: %v", err)
		case <-deadline:
			t.Fatal("hallpass dev was not ready within 6 minutes")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// discoveryOverTLS fetches the issuer's discovery document trusting only pool.
func discoveryOverTLS(t *testing.T, issuer string, pool *x509.CertPool) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery over https with the dev CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery over https: %s", resp.Status)
	}
}

func addVirtualAuthenticator(b *chromium.Browser) {
	b.Run("add a virtual platform authenticator", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		return err
	}))
}
