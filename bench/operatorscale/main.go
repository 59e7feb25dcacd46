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
//     benchmark's own client), or with -operator-process that of `hallpass operator` run
//     as a process of its own;
//
//   - CPU used over an idle window after all are Ready;
//
//   - API requests per client made by the operator (counted on its transport), in all and
//     by verb and resource;
//
//   - the config Secret's size;
//
//   - the CPU each process used until all were Ready: the API server, etcd, the server pod
//     and this one.
//
//     go run ./bench/operatorscale -n 1000 [-pprof 127.0.0.1:6060] [-cpuprofile cpu.out] [-heapprofile heap.out] [-apiserver-cpuprofile api.out]
//     [-operator-process] [-memory-limit 256Mi]
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	_ "net/http/pprof" // served only with -pprof, on the address given
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/bench/internal/apiserver"
	"github.com/hallpass/hallpass/bench/internal/clients"
	"github.com/hallpass/hallpass/bench/internal/proc"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/loopback"
	"github.com/hallpass/hallpass/internal/memlimit"
)

const (
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
	reconcilers int
	cpuProfile  string
	heapProfile string
	apiProfile  string
	timeout     time.Duration
	idle        time.Duration
	memoryLimit string
	// operatorProcess runs `hallpass operator` as a process of its own.
	operatorProcess bool
}

func parseFlags() flags {
	var f flags
	flag.IntVar(&f.n, "n", 1000, "number of SSOClients")
	flag.IntVar(&f.workers, "workers", 16, "parallel apply requests")
	flag.IntVar(&f.reconcilers, "reconcilers", 0, "SSOClients the operator reconciles at once (0: its default)")
	flag.StringVar(&f.repo, "repo", ".", "repository root")
	flag.StringVar(&f.pprof, "pprof", "", "serve net/http/pprof of the operator's process on this address")
	flag.StringVar(&f.cpuProfile, "cpuprofile", "", "write the CPU profile from the first apply to all Ready to this file")
	flag.StringVar(&f.heapProfile, "heapprofile", "", "write a heap profile at all Ready to this file")
	flag.StringVar(&f.apiProfile, "apiserver-cpuprofile", "", "write the API server's CPU profile of the first 30 s after the first apply to this file")
	flag.StringVar(&f.memoryLimit, "memory-limit", "", "the container memory limit to run the operator's process under, as `hallpass operator` does in a pod with that limit (e.g. 256Mi); the server pod and the builds are not limited")
	flag.BoolVar(&f.operatorProcess, "operator-process", false, "run `hallpass operator` as a process of its own, so that RSS and CPU are the operator's alone (its requests are then not counted by kind)")
	flag.DurationVar(&f.timeout, "timeout", 15*time.Minute, "give up when not all are Ready by then")
	flag.DurationVar(&f.idle, "idle", 60*time.Second, "idle window over which CPU is measured")
	flag.Parse()
	return f
}

func run() error {
	f := parseFlags()
	ctx := context.Background()
	var goMemoryLimit int64
	if f.memoryLimit != "" {
		q, err := resource.ParseQuantity(f.memoryLimit)
		if err != nil {
			return fmt.Errorf("-memory-limit: %w", err)
		}
		goMemoryLimit = memlimit.For(q.Value()) // as hallpass operator does in a pod with that limit
		if !f.operatorProcess {
			debug.SetMemoryLimit(goMemoryLimit)
		}
	}
	if f.pprof != "" {
		go func() { _ = http.ListenAndServe(f.pprof, nil) }()
	}
	operator := &requestCounts{}
	cluster, issuer, operatorPID, err := startCluster(ctx, f, operator, goMemoryLimit)
	if err != nil {
		return err
	}
	defer cluster.Stop()
	measured, names := os.Getpid(), map[int]string{os.Getpid(): "this process: operator, pod runner, benchmark"}
	if f.operatorProcess {
		measured, names = operatorPID, map[int]string{os.Getpid(): "this process: pod runner, benchmark", operatorPID: "hallpass operator"}
	}

	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: devcluster.Scheme()})
	if err != nil {
		return err
	}
	if err := prepare(ctx, c, f.n); err != nil {
		return err
	}
	operator.reset()
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	apiProfileDone := apiserver.Profile(ctx, cfg, f.apiProfile)
	// The kernel keeps a peak of the whole RSS but not of its anonymous part.
	anonPeak := proc.SamplePeak(100*time.Millisecond, func() (int64, error) {
		m, err := proc.ReadMemory(measured)
		return m.Anonymous, err
	})
	cpuByProcess := proc.CPUByName(os.Getpid(), names)
	start := time.Now()
	if err := applyClients(ctx, c, f.n, f.workers); err != nil {
		return err
	}
	applied := time.Since(start)
	readyAfter, err := waitReady(ctx, cfg, f.n, start, f.timeout)
	allReady := readyAfter.all
	stopProfile()
	if err != nil {
		return err
	}
	cpuByProcess = diffCPU(proc.CPUByName(os.Getpid(), names), cpuByProcess)
	if err := <-apiProfileDone; err != nil {
		return err
	}
	if err := writeHeapProfile(f.heapProfile); err != nil {
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
	operatorRequests := operator.snapshot()
	renders, renderTime := renderHistogram()
	peakReady := memory(measured).Peak

	cpuBefore := cpuTime(measured)
	time.Sleep(f.idle)
	idleCPU := cpuTime(measured) - cpuBefore
	settled := memory(measured)
	anonMax := anonPeak()
	var cs corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: serverNS, Name: serverName + "-config"}, &cs); err != nil {
		return err
	}
	var size int
	for _, v := range cs.Data {
		size += len(v)
	}
	perClient := fmt.Sprintf("%.1f", float64(total(operatorRequests))/float64(f.n))
	if f.operatorProcess {
		perClient = "not counted"
	}
	fmt.Printf("| SSOClients | applied in | all Ready | /authorize accepts the last | RSS peak (at Ready) / settled, %s | anonymous RSS peak / settled | CPU over %s idle | operator API requests per client | config Secret |\n", names[measured], f.idle)
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %s | %s | %s | %d (%d) / %d MiB | %d / %d MiB | %s | %s | %d B |\n", f.n, applied.Round(100*time.Millisecond),
		allReady.Round(100*time.Millisecond), authorized.Round(100*time.Millisecond), settled.Peak>>20, peakReady>>20, settled.Resident>>20,
		anonMax>>20, settled.Anonymous>>20, idleCPU.Round(10*time.Millisecond), perClient, size)
	fmt.Printf("\nHalf the SSOClients Ready after %s, nine in ten after %s.\n\n", readyAfter.half.Round(100*time.Millisecond), readyAfter.most.Round(100*time.Millisecond))
	if !f.operatorProcess {
		printRequests(operatorRequests, f.n)
		fmt.Printf("\n%d config renders until /authorize accepted the last, %s in all\n\n", renders, renderTime.Round(100*time.Millisecond))
	}
	printCPU(cpuByProcess, allReady)
	return nil
}

// startCluster builds hallpass, starts the dev cluster (API server, etcd, operator, pod
// runner) and the sample SSOServer, and waits for it to be Ready. With -operator-process
// the operator is `hallpass operator`, a process of its own whose PID it returns, with the
// Go memory limit goMemoryLimit (none when zero) as GOMEMLIMIT.
func startCluster(ctx context.Context, f flags, counts *requestCounts, goMemoryLimit int64) (*devcluster.Cluster, string, int, error) {
	repo := f.repo
	bin, err := os.MkdirTemp("", "hallpass-bench-")
	if err != nil {
		return nil, "", 0, err
	}
	server := filepath.Join(bin, "hallpass")
	build := exec.CommandContext(ctx, "go", "build", "-o", server, "./cmd/hallpass")
	build.Dir, build.Stderr = repo, os.Stderr
	if err := build.Run(); err != nil {
		return nil, "", 0, fmt.Errorf("build hallpass: %w", err)
	}
	assets, err := envtestbin.Dir(ctx, repo)
	if err != nil {
		return nil, "", 0, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, "", 0, err
	}
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: filepath.Join(repo, "config", "crd", "bases"), BinaryAssetsDir: assets, ServerBinary: server, Logs: io.Discard,
		OperatorTransport: func(rt http.RoundTripper) http.RoundTripper { return counting{rt, counts} },
		ClientReconcilers: f.reconcilers,
		APIServerFlags:    map[string]string{"profiling": "true"},
		ExternalOperator:  f.operatorProcess,
	})
	if err != nil {
		return nil, "", 0, err
	}
	var operatorPID int
	if f.operatorProcess {
		// Stopped with the benchmark: the context of a benchmark is never cancelled, and the
		// process ends with this one by Pdeathsig.
		op := exec.CommandContext(ctx, server, "operator", "--metrics-bind-address=0", "--health-probe-bind-address=0",
			"--webhook-port=0", "--server-image="+devcluster.ServerImage)
		op.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
		if goMemoryLimit > 0 {
			op.Env = append(op.Env, fmt.Sprintf("GOMEMLIMIT=%d", goMemoryLimit))
		}
		op.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := op.Start(); err != nil {
			cluster.Stop()
			return nil, "", 0, fmt.Errorf("start hallpass operator: %w", err)
		}
		operatorPID = op.Process.Pid
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
		return nil, "", 0, err
	}
	return cluster, issuer, operatorPID, nil
}

// prepare creates the namespaces and lets the server admit them with budgets for n clients.
func prepare(ctx context.Context, c client.Client, n int) error {
	for i := range clients.Namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clients.Namespace(i), Labels: map[string]string{benchLabel: "true"}}}
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
	srv.Spec.Budgets.ClientsPerNamespace = int32(min(10000, n/clients.Namespaces+1))
	srv.Spec.Budgets.ConfigBytesPerNamespace = int32(min(8<<20, (n/clients.Namespaces+1)*2048))
	srv.Spec.Budgets.ConfigBytesPerNamespace = max(srv.Spec.Budgets.ConfigBytesPerNamespace, 4096)
	return c.Patch(ctx, &srv, patch)
}

// applyClients creates the clients with workers parallel requests.
func applyClients(ctx context.Context, c client.Client, n, workers int) error {
	server := hallpassv1.ServerReference{Name: serverName, Namespace: serverNS}
	return clients.Parallel(n, workers, func(i int) error {
		sc := clients.New(i, server)
		if err := c.Create(ctx, sc); err != nil {
			return fmt.Errorf("create SSOClient %s: %w", sc.Name, err)
		}
		return nil
	})
}

// readyAfter is when half the clients, nine in ten and all were Ready, from the first
// apply.
type readyAfter struct{ half, most, all time.Duration }

// waitReady watches the SSOClients until every bench SSOClient is Ready with its
// generation observed, and prints the progress every five seconds to stderr: how many have
// credentials, how many the server has rendered, how many are Ready. A watch, not a list
// every so often: listing ten thousand clients twice a second would load the API server
// more than the operator does; and each event updates the counts, since copying ten
// thousand cached clients every tenth of a second cost this process a tenth of its CPU.
func waitReady(ctx context.Context, cfg *rest.Config, n int, start time.Time, timeout time.Duration) (readyAfter, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Only what progress needs is kept: the benchmark's cache is in the operator's process
	// and would otherwise count in its RSS.
	informers, err := cache.New(cfg, cache.Options{Scheme: devcluster.Scheme(), DefaultTransform: slim})
	if err != nil {
		return readyAfter{}, err
	}
	informer, err := informers.GetInformer(ctx, &hallpassv1.SSOClient{})
	if err != nil {
		return readyAfter{}, err
	}
	var p progress
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.update(nil, obj) },
		UpdateFunc: p.update,
		DeleteFunc: func(obj any) { p.update(obj, nil) },
	}); err != nil {
		return readyAfter{}, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return readyAfter{}, errors.New("the SSOClient watch did not sync")
	}
	lastReport := time.Now()
	var r readyAfter
	for {
		now := p.snapshot()
		if r.half == 0 && 2*now.ready >= n {
			r.half = time.Since(start)
		}
		if r.most == 0 && 10*now.ready >= 9*n {
			r.most = time.Since(start)
		}
		if now.ready >= n {
			r.all = time.Since(start)
			return r, nil
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "%6.1fs: %d SSOClients, %d with credentials, %d rendered, %d Ready\n",
				time.Since(start).Seconds(), now.clients, now.credentials, now.rendered, now.ready)
		}
		if time.Since(start) > timeout {
			return readyAfter{}, fmt.Errorf("%d of %d SSOClients Ready after %s", now.ready, n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slim keeps of an SSOClient what progress reads.
func slim(obj any) (any, error) {
	sc, ok := obj.(*hallpassv1.SSOClient)
	if !ok {
		return obj, nil
	}
	out := &hallpassv1.SSOClient{ObjectMeta: metav1.ObjectMeta{
		Namespace: sc.Namespace, Name: sc.Name, Generation: sc.Generation, ResourceVersion: sc.ResourceVersion,
	}}
	out.Status.ClientID = sc.Status.ClientID
	out.Status.ObservedGeneration = sc.Status.ObservedGeneration
	for _, c := range sc.Status.Conditions {
		if c.Type == hallpassv1.SSOClientServed || c.Type == hallpassv1.ConditionReady {
			out.Status.Conditions = append(out.Status.Conditions, metav1.Condition{Type: c.Type, Status: c.Status})
		}
	}
	return out, nil
}

// progress counts the bench's SSOClients by how far they got.
type progress struct {
	mu     sync.Mutex
	counts counts
}

type counts struct{ clients, credentials, rendered, ready int }

func (p *progress) update(before, after any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts.add(before, -1)
	p.counts.add(after, 1)
}

func (p *progress) snapshot() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// add counts obj (an SSOClient, or a deleted one's tombstone, which counts as nothing) d
// times.
func (c *counts) add(obj any, d int) {
	sc, ok := obj.(*hallpassv1.SSOClient)
	if !ok || !strings.HasPrefix(sc.Namespace, "team-") {
		return
	}
	c.clients += d
	if sc.Status.ClientID != "" {
		c.credentials += d
	}
	if cond := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.SSOClientServed); cond != nil && cond.Status != metav1.ConditionUnknown {
		c.rendered += d
	}
	if cond := meta.FindStatusCondition(sc.Status.Conditions, hallpassv1.ConditionReady); cond != nil && cond.Status == metav1.ConditionTrue &&
		sc.Status.ObservedGeneration == sc.Generation {
		c.ready += d
	}
}

func lastClient(ctx context.Context, c client.Client, n int) (*hallpassv1.SSOClient, error) {
	var sc hallpassv1.SSOClient
	ns, name := clients.Key(n - 1)
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sc)
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

// counting counts the operator's requests by verb and resource.
type counting struct {
	rt     http.RoundTripper
	counts *requestCounts
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := c.rt.RoundTrip(r)
	c.counts.add(requestKind(r), time.Since(start))
	return resp, err
}

// requestCounts counts requests by kind, and the time until their response headers (a
// watch's is its start).
type requestCounts struct {
	mu sync.Mutex
	m  map[string]requestCount
}

type requestCount struct {
	n    int
	time time.Duration
}

func (c *requestCounts) add(kind string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]requestCount{}
	}
	rc := c.m[kind]
	rc.n++
	rc.time += d
	c.m[kind] = rc
}

func (c *requestCounts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]requestCount{}
}

func (c *requestCounts) snapshot() map[string]requestCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

func total(m map[string]requestCount) int {
	n := 0
	for _, v := range m {
		n += v.n
	}
	return n
}

// printRequests prints the operator's requests per client by verb and resource, most
// first, with their mean latency.
func printRequests(m map[string]requestCount, n int) {
	kinds := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Or(m[b].n-m[a].n, strings.Compare(a, b)) })
	fmt.Println("| operator requests | per client | mean latency |")
	fmt.Println("|---|---|---|")
	for _, k := range kinds {
		fmt.Printf("| %s | %.2f | %.1f ms |\n", k, float64(m[k].n)/float64(n), float64(m[k].time.Microseconds())/1000/float64(m[k].n))
	}
}

// requestKind names a request to the API server by verb and resource, such as
// "get secrets", "list ssoclients", "apply ssoclients/status" or "create events".
func requestKind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return r.Method + " " + r.URL.Path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return r.Method + " " + r.URL.Path
	}
	kind, named := parts[0], len(parts) > 1
	if len(parts) > 2 {
		kind += "/" + parts[2]
	}
	verb := strings.ToLower(r.Method)
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		verb = "watch"
	case r.Method == http.MethodGet && named:
		verb = "get"
	case r.Method == http.MethodGet:
		verb = "list"
	case r.Method == http.MethodPost:
		verb = "create"
	case r.Method == http.MethodPut:
		verb = "update"
	case r.Method == http.MethodPatch && strings.Contains(r.Header.Get("Content-Type"), "apply-patch"):
		verb = "apply"
	}
	return verb + " " + kind
}

func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = out.Close()
	}, nil
}

func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(out)
}

// renderHistogram reads the in-process operator's render metric: how many renders there
// were and how long they took in all.
func renderHistogram() (int, time.Duration) {
	families, _ := metrics.Registry.Gather()
	var n int
	var sum float64
	for _, f := range families {
		if f.GetName() != "hallpass_operator_config_render_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += int(m.GetHistogram().GetSampleCount())
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return n, time.Duration(sum * float64(time.Second))
}

// cpuTime returns the CPU time process pid has used so far.
func cpuTime(pid int) time.Duration {
	st, _ := proc.ReadStat(pid)
	return st.CPU
}

// memory reads process pid's memory; zero when it cannot.
func memory(pid int) proc.Memory {
	m, _ := proc.ReadMemory(pid)
	return m
}

func diffCPU(after, before map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// printCPU prints the CPU time each process used from the first apply to all Ready, and its
// share of the two cores over that time.
func printCPU(m map[string]time.Duration, window time.Duration) {
	names := slices.SortedFunc(maps.Keys(m), func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	fmt.Println("| process | CPU from first apply to all Ready | cores used on average |")
	fmt.Println("|---|---|---|")
	for _, name := range names {
		fmt.Printf("| %s | %s | %.2f |\n", name, m[name].Round(100*time.Millisecond), m[name].Seconds()/window.Seconds())
	}
}
