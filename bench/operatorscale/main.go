// Command operatorscale measures the operator at scale: it applies N SSOClients (confidential,
// two redirect URIs, a back-channel logout URI) spread over 100 namespaces, in parallel
// batches as a GitOps sync would, to a real kube-apiserver and etcd, with the operator
// in-process and the real `hallpass server` as the server's pod (the dev cluster's pod
// runner), and reports:
//
//   - the time from the first apply to every SSOClient Ready (which means the server's pod
//     reports applying a config that serves it, docs/adr/0021);
//
//   - the time to the first /authorize the server accepts for the last client;
//
//   - this process's RSS, peak and settled (the operator, the pod runner and this
//     benchmark's own client);
//
//   - CPU used over an idle window after all are Ready;
//
//   - API requests per client made by the operator (client-go's request metric, less this
//     benchmark's own requests);
//
//   - the config Secret's size.
//
//     go run ./bench/operatorscale -n 1000 [-pprof 127.0.0.1:6060]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only with -pprof, on the address given
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

const (
	namespaces = 100
	serverNS   = "default"
	serverName = "hallpass"
	benchLabel = "bench.hallpass.dev/operatorscale"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "operatorscale: %v\n", err)
		os.Exit(1)
	}
}

type flags struct {
	n, workers  int
	repo, pprof string
	timeout     time.Duration
	idle        time.Duration
}

func parseFlags() flags {
	var f flags
	flag.IntVar(&f.n, "n", 1000, "number of SSOClients")
	flag.IntVar(&f.workers, "workers", 16, "parallel apply requests")
	flag.StringVar(&f.repo, "repo", ".", "repository root")
	flag.StringVar(&f.pprof, "pprof", "", "serve net/http/pprof of the operator's process on this address")
	flag.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up when not all are Ready by then")
	flag.DurationVar(&f.idle, "idle", 60*time.Second, "idle window over which CPU is measured")
	flag.Parse()
	return f
}

func run() error {
	f := parseFlags()
	ctx := context.Background()
	if f.pprof != "" {
		go func() { _ = http.ListenAndServe(f.pprof, nil) }()
	}
	cluster, issuer, err := startCluster(ctx, f.repo)
	if err != nil {
		return err
	}
	defer cluster.Stop()

	var mine atomic.Int64
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return counting{rt, &mine} }
	c, err := client.New(cfg, client.Options{Scheme: devcluster.Scheme()})
	if err != nil {
		return err
	}
	if err := prepare(ctx, c, f.n); err != nil {
		return err
	}
	before, mineBefore := requests(), mine.Load()
	start := time.Now()
	if err := applyClients(ctx, c, f.n, f.workers); err != nil {
		return err
	}
	applied := time.Since(start)
	allReady, err := waitReady(ctx, c, f.n, start, f.timeout)
	if err != nil {
		return err
	}
	last, err := lastClient(ctx, c, f.n)
	if err != nil {
		return err
	}
	httpc := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if err := waitAccepted(ctx, httpc, issuer, last.Status.ClientID, last.Spec.RedirectURIs[0]); err != nil {
		return err
	}
	authorized := time.Since(start)
	operatorRequests := requests() - before - float64(mine.Load()-mineBefore)
	peakReady, _ := rss()

	cpuBefore := cpuTime()
	time.Sleep(f.idle)
	idleCPU := cpuTime() - cpuBefore
	peak, settled := rss()
	var cs corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: serverNS, Name: serverName + "-config"}, &cs); err != nil {
		return err
	}
	var size int
	for _, v := range cs.Data {
		size += len(v)
	}
	fmt.Printf("| SSOClients | applied in | all Ready | /authorize accepts the last | RSS peak (at Ready) / settled | CPU over %s idle | operator API requests per client | config Secret |\n", f.idle)
	fmt.Println("|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %s | %s | %s | %d (%d) / %d MiB | %s | %.1f | %d B |\n", f.n, applied.Round(100*time.Millisecond),
		allReady.Round(100*time.Millisecond), authorized.Round(100*time.Millisecond), peak>>20, peakReady>>20, settled>>20,
		idleCPU.Round(10*time.Millisecond), operatorRequests/float64(f.n), size)
	return nil
}

// startCluster builds hallpass, starts the dev cluster (API server, etcd, operator, pod
// runner) and the sample SSOServer, and waits for it to be Ready.
func startCluster(ctx context.Context, repo string) (*devcluster.Cluster, string, error) {
	bin, err := os.MkdirTemp("", "hallpass-bench-")
	if err != nil {
		return nil, "", err
	}
	server := filepath.Join(bin, "hallpass")
	build := exec.CommandContext(ctx, "go", "build", "-o", server, "./cmd/hallpass")
	build.Dir, build.Stderr = repo, os.Stderr
	if err := build.Run(); err != nil {
		return nil, "", fmt.Errorf("build hallpass: %w", err)
	}
	assets, err := envtestbin.Dir(ctx, repo)
	if err != nil {
		return nil, "", err
	}
	port, err := devcluster.FreePort()
	if err != nil {
		return nil, "", err
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: filepath.Join(repo, "config", "crd", "bases"), BinaryAssetsDir: assets, ServerBinary: server, Logs: io.Discard,
	})
	if err != nil {
		return nil, "", err
	}
	objs, err := devcluster.ReadManifests(filepath.Join(repo, "config", "samples"))
	if err == nil {
		devcluster.MapURLs(objs, map[string]string{"https://sso.example.com": issuer})
		err = devcluster.Apply(ctx, cluster.Client, serverNS, objs)
	}
	if err == nil {
		err = cluster.WaitServersReady(ctx, serverNS, 2*time.Minute)
	}
	if err != nil {
		cluster.Stop()
		return nil, "", err
	}
	return cluster, issuer, nil
}

// prepare creates the namespaces and lets the server admit them with budgets for n clients.
func prepare(ctx context.Context, c client.Client, n int) error {
	for i := range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{benchLabel: "true"}}}
		if err := c.Create(ctx, ns); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
	}
	var srv hallpassv1.SSOServer
	if err := c.Get(ctx, client.ObjectKey{Namespace: serverNS, Name: serverName}, &srv); err != nil {
		return err
	}
	patch := client.MergeFrom(srv.DeepCopy())
	srv.Spec.AllowedClientNamespaces = &hallpassv1.NamespaceSelection{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{benchLabel: "true"}}}
	srv.Spec.Budgets.ClientsPerNamespace = int32(min(10000, n/namespaces+1))
	srv.Spec.Budgets.ConfigBytesPerNamespace = int32(min(8<<20, (n/namespaces+1)*2048))
	srv.Spec.Budgets.ConfigBytesPerNamespace = max(srv.Spec.Budgets.ConfigBytesPerNamespace, 4096)
	return c.Patch(ctx, &srv, patch)
}

func nsName(i int) string { return fmt.Sprintf("team-%03d", i) }

func clientName(i int) string { return fmt.Sprintf("app-%05d", i) }

// applyClients creates the clients with workers parallel requests.
func applyClients(ctx context.Context, c client.Client, n, workers int) error {
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				name := clientName(i)
				host := "https://" + name + "." + nsName(i%namespaces) + ".example.com"
				sc := &hallpassv1.SSOClient{
					ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i % namespaces), Name: name},
					Spec: hallpassv1.SSOClientSpec{
						ServerRef: hallpassv1.ServerReference{Name: serverName, Namespace: serverNS}, Type: hallpassv1.RegularWebApp,
						RedirectURIs:         []string{host + "/callback", host + "/auth/sso/callback"},
						BackchannelLogoutURI: host + "/backchannel-logout",
						Connections:          []string{"username-password"},
					},
				}
				if err := c.Create(ctx, sc); err != nil {
					errs <- fmt.Errorf("create SSOClient %s: %w", name, err)
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			return err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// waitReady polls until every bench SSOClient is Ready with its generation observed.
func waitReady(ctx context.Context, c client.Client, n int, start time.Time, timeout time.Duration) (time.Duration, error) {
	for {
		var list hallpassv1.SSOClientList
		if err := c.List(ctx, &list); err != nil {
			return 0, err
		}
		ready := 0
		for _, sc := range list.Items {
			if cond := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.ConditionReady); cond != nil && cond.Status == metav1.ConditionTrue &&
				strings.HasPrefix(sc.Namespace, "team-") && sc.Status.ObservedGeneration == sc.Generation {
				ready++
			}
		}
		if ready >= n {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("%d of %d SSOClients Ready after %s", ready, n, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func lastClient(ctx context.Context, c client.Client, n int) (*hallpassv1.SSOClient, error) {
	var sc hallpassv1.SSOClient
	err := c.Get(ctx, client.ObjectKey{Namespace: nsName((n - 1) % namespaces), Name: clientName(n - 1)}, &sc)
	return &sc, err
}

// waitAccepted polls /authorize until the server accepts the client: it answers with its
// login page or a redirect, not an error page saying the client is not registered.
func waitAccepted(ctx context.Context, httpc *http.Client, issuer, clientID, redirect string) error {
	q := "client_id=" + clientID + "&redirect_uri=" + redirect + "&response_type=code&scope=openid&state=s&nonce=n" +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, issuer+"/authorize?"+q, nil)
		if resp, err := httpc.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode < 400 && !strings.Contains(string(body), "not registered") {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("the server does not accept client %s a minute after it is Ready", clientID)
}

// counting counts this benchmark's own requests, to subtract them from the process's.
type counting struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// requests sums client-go's rest_client_requests_total of this process.
func requests() float64 {
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "rest_client_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total += counterValue(m)
		}
	}
	return total
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return 0
}

// rss returns this process's peak and current resident set size in bytes.
func rss() (peak, current int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			peak = kb << 10
		case "VmRSS:":
			current = kb << 10
		}
	}
	return peak, current
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
