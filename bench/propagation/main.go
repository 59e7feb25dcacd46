// Command propagation measures how long a change to an SSOClient takes to reach the running
// SSO server: from the API call that creates (or changes) the client to the first
// /authorize request the server accepts for it. The path measured is the product's: the
// API server, the operator (admission, credentials, render, config Secret), the server's
// watch on its config Secret and its hot reload. The server is the real `hallpass server`
// process started by the dev cluster's pod runner.
//
//	go run ./bench/propagation -n 50
//
// It prints p50, p90, p99 and max for new clients and for changed redirect URIs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/loopback"
)

// Bounds: one change that takes longer than changeTimeout fails the run.
const (
	changeTimeout = 30 * time.Second
	pollInterval  = 5 * time.Millisecond
)

// notRegistered is how the server's /authorize page says it does not know a client.
const notRegistered = "not registered"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "propagation: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 50, "number of changes of each kind")
	repo := flag.String("repo", ".", "repository root")
	flag.Parse()
	ctx := context.Background()

	bin, err := os.MkdirTemp("", "hallpass-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	server := filepath.Join(bin, "hallpass")
	build := exec.Command("go", "build", "-o", server, "./cmd/hallpass")
	build.Dir, build.Stderr = *repo, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build hallpass: %w", err)
	}
	assets, err := envtestbin.Dir(ctx, *repo)
	if err != nil {
		return err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return err
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)

	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: filepath.Join(*repo, "config", "crd", "bases"), BinaryAssetsDir: assets,
		ServerBinary: server, Logs: io.Discard,
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	objs, err := devcluster.ReadManifests(filepath.Join(*repo, "config", "samples"))
	if err != nil {
		return err
	}
	devcluster.MapURLs(objs, map[string]string{"https://sso.example.com": issuer})
	const ns = "default"
	if err := devcluster.Apply(ctx, cluster.Client, ns, objs); err != nil {
		return err
	}
	if err := cluster.WaitServersReady(ctx, ns, 2*time.Minute); err != nil {
		return err
	}
	c := cluster.Client
	httpc := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	var created, changed []time.Duration
	for i := range *n {
		name := fmt.Sprintf("bench-%d", i)
		redirect := fmt.Sprintf("https://%s.example.com/callback", name)
		sc := &hallpassv1.SSOClient{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: hallpassv1.SSOClientSpec{
				ServerRef: hallpassv1.ServerReference{Name: "hallpass"}, Type: hallpassv1.RegularWebApp,
				RedirectURIs: []string{redirect}, Connections: []string{"username-password"},
			},
		}
		start := time.Now()
		if err := c.Create(ctx, sc); err != nil {
			return fmt.Errorf("create SSOClient %s: %w", name, err)
		}
		id, err := waitClientID(ctx, c, ns, name, start)
		if err != nil {
			return err
		}
		if err := waitAccepted(ctx, httpc, issuer, id, redirect, start); err != nil {
			return fmt.Errorf("new client %s: %w", name, err)
		}
		created = append(created, time.Since(start))

		// A change: a new redirect URI, accepted once the server has the new config.
		redirect = fmt.Sprintf("https://%s.example.com/callback-2", name)
		patch := client.MergeFrom(sc.DeepCopy())
		sc.Spec.RedirectURIs = []string{redirect}
		start = time.Now()
		if err := c.Patch(ctx, sc, patch); err != nil {
			return fmt.Errorf("patch SSOClient %s: %w", name, err)
		}
		if err := waitAccepted(ctx, httpc, issuer, id, redirect, start); err != nil {
			return fmt.Errorf("changed client %s: %w", name, err)
		}
		changed = append(changed, time.Since(start))
	}
	info, _ := cluster.Runner.Pod(ns, "hallpass")
	fmt.Printf("Propagation from the API call to the running server accepting the client (%d changes each, server restarts: %d)\n\n", *n, info.Restarts)
	fmt.Println("| change | p50 | p90 | p99 | max |")
	fmt.Println("|---|---|---|---|---|")
	for _, row := range []struct {
		what string
		d    []time.Duration
	}{{"new SSOClient", created}, {"changed redirectURIs", changed}} {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", row.what, pct(row.d, 50), pct(row.d, 90), pct(row.d, 99), pct(row.d, 100))
	}
	return nil
}

// waitClientID waits for the operator to give the client its ID.
func waitClientID(ctx context.Context, c client.Client, ns, name string, start time.Time) (string, error) {
	for time.Since(start) < changeTimeout {
		var sc hallpassv1.SSOClient
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sc); err == nil && sc.Status.ClientID != "" {
			return sc.Status.ClientID, nil
		}
		time.Sleep(pollInterval)
	}
	return "", fmt.Errorf("SSOClient %s got no client ID within %s", name, changeTimeout)
}

// waitAccepted polls /authorize until the server accepts the client with this redirect URI:
// it then answers with its login page or a redirect, not with an error page saying the
// application or its redirect URI is not registered.
func waitAccepted(ctx context.Context, httpc *http.Client, issuer, clientID, redirect string, start time.Time) error {
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}
	u := issuer + "/authorize?" + q.Encode()
	last := ""
	for time.Since(start) < changeTimeout {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := httpc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("status %d", resp.StatusCode)
			if resp.StatusCode < 400 && !strings.Contains(string(body), notRegistered) {
				return nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("not accepted by the server within %s (last answer: %s)", changeTimeout, last)
}

func pct(d []time.Duration, p int) string {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = max(1, min(i, len(s))) - 1
	return s[i].Round(time.Millisecond).String()
}
