// Command apiwrites measures the floor under bench/operatorscale: what the writes a new
// SSOClient needs cost this machine's kube-apiserver and etcd with no operator running.
// A new client takes four writes (docs/adr/0030): the platform team's create of the
// SSOClient, and the operator's create of its credentials Secret, write of its client
// record and one status patch. This command makes exactly those writes for N clients,
// with watches like the operator's open (SSOClients, labelled Secrets, every Secret's
// metadata) so that the API server's fan-out is paid as it is with the operator, and
// reports:
//
//   - all four writes of every client, W clients at a time: the wall time, which no
//     operator can beat on this machine, and the CPU the API server and etcd used;
//
//   - each kind of write on its own, N of it, W at a time: its rate and the API server's and
//     etcd's CPU per write, so that a change of how the operator writes can be costed
//     before it is made.
//
//     go run ./bench/apiwrites -n 10000 [-workers 16] [-by-kind=false] [-apiserver-cpuprofile api.out]
//
// -apiserver-cpuprofile takes the API server's CPU profile of the first 30 s of the
// four-write run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/bench/internal/apiserver"
	"github.com/hallpass/hallpass/bench/internal/clients"
	"github.com/hallpass/hallpass/bench/internal/proc"
	"github.com/hallpass/hallpass/controllers"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

const (
	fieldOwner = client.FieldOwner("hallpass")
)

func main() {
	n := flag.Int("n", 3000, "clients, and writes of each kind")
	workers := flag.Int("workers", 16, "clients (or writes) at a time")
	repo := flag.String("repo", ".", "repository root")
	byKind := flag.Bool("by-kind", true, "also measure each kind of write on its own")
	apiProfile := flag.String("apiserver-cpuprofile", "", "write the API server's CPU profile of the first 30 s of the four-write run to this file")
	flag.Parse()
	if err := run(*n, *workers, *repo, *apiProfile, *byKind); err != nil {
		fmt.Fprintf(os.Stderr, "apiwrites: %v\n", err)
		os.Exit(1)
	}
}

func run(n, workers int, repo, apiProfile string, byKind bool) error {
	ctx := context.Background()
	assets, err := envtestbin.Dir(ctx, repo)
	if err != nil {
		return err
	}
	// No operator and no SSOServer: the pod runner has nothing to run.
	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: filepath.Join(repo, "config", "crd", "bases"), BinaryAssetsDir: assets, ServerBinary: os.Args[0],
		ExternalOperator: true, APIServerFlags: map[string]string{"profiling": "true"},
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: devcluster.Scheme()})
	if err != nil {
		return err
	}
	if err := watchAsTheOperatorDoes(ctx, cfg); err != nil {
		return err
	}
	for i := range clients.Namespaces {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clients.Namespace(i)}}); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
	}
	w := writer{c: c, clients: make([]*hallpassv1.SSOClient, 2*n)}

	profileDone := apiserver.Profile(ctx, cfg, apiProfile)
	cpu := measure(func() error {
		return clients.Parallel(n, workers, func(i int) error {
			for _, write := range []func(int) error{w.createClient, w.createCredentials, w.createRecord, w.patchStatus} {
				if err := write(i); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if cpu.err != nil {
		return cpu.err
	}
	if err := <-profileDone; err != nil {
		return err
	}
	fmt.Printf("| %d clients' four writes, %d clients at a time | wall | kube-apiserver CPU | etcd CPU |\n|---|---|---|---|\n", n, workers)
	fmt.Printf("| all | %s | %s (%.2f cores) | %s |\n\n", cpu.wall.Round(100*time.Millisecond), cpu.apiServer.Round(100*time.Millisecond),
		cpu.apiServer.Seconds()/cpu.wall.Seconds(), cpu.etcd.Round(100*time.Millisecond))

	if !byKind {
		return nil
	}
	// The same kinds again, one at a time, on clients of their own.
	kinds := []struct {
		name  string
		write func(int) error
	}{
		{"create SSOClient", w.createClient},
		{"create credentials Secret", w.createCredentials},
		{"create client record Secret", w.createRecord},
		{"server-side apply of a new client record Secret", w.applyRecord},
		{"merge-patch SSOClient status", w.patchStatus},
		{"merge-patch credentials Secret", w.patchCredentials},
	}
	fmt.Printf("| write (%d, %d at a time) | per second | kube-apiserver CPU per write | etcd CPU per write |\n|---|---|---|---|\n", n, workers)
	for _, k := range kinds {
		cpu := measure(func() error {
			return clients.Parallel(n, workers, func(i int) error { return k.write(n + i) })
		})
		if cpu.err != nil {
			return fmt.Errorf("%s: %w", k.name, cpu.err)
		}
		fmt.Printf("| %s | %.0f | %.2f ms | %.2f ms |\n", k.name, float64(n)/cpu.wall.Seconds(),
			float64(cpu.apiServer.Microseconds())/1000/float64(n), float64(cpu.etcd.Microseconds())/1000/float64(n))
	}
	return nil
}

// watchAsTheOperatorDoes opens the watches `hallpass operator` has on what these writes
// touch, so that each write's fan-out to watchers costs what it costs with the operator.
func watchAsTheOperatorDoes(ctx context.Context, cfg *rest.Config) error {
	typed := controllers.CacheOptions()
	typed.Scheme = devcluster.Scheme()
	metadata := controllers.MetadataCacheOptions()
	metadata.Scheme = devcluster.Scheme()
	secretMetadata := &metav1.PartialObjectMetadata{}
	secretMetadata.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	for _, w := range []struct {
		opts cache.Options
		objs []client.Object
	}{
		{typed, []client.Object{&hallpassv1.SSOClient{}, &corev1.Secret{}}},
		{metadata, []client.Object{secretMetadata}},
	} {
		informers, err := cache.New(cfg, w.opts)
		if err != nil {
			return err
		}
		for _, obj := range w.objs {
			if _, err := informers.GetInformer(ctx, obj); err != nil {
				return fmt.Errorf("watch %T: %w", obj, err)
			}
		}
		go func() { _ = informers.Start(ctx) }()
		if !informers.WaitForCacheSync(ctx) {
			return fmt.Errorf("the watches did not sync")
		}
	}
	return nil
}

// writer makes the writes of client i, shaped as the operator and bench/operatorscale make
// them.
type writer struct {
	c       client.Client
	clients []*hallpassv1.SSOClient
}

func (w writer) createClient(i int) error {
	sc := clients.New(i, hallpassv1.ServerReference{Name: "hallpass", Namespace: "default"})
	w.clients[i] = sc
	if err := w.c.Create(context.Background(), sc); err != nil {
		return fmt.Errorf("create SSOClient: %w", err)
	}
	return nil
}

func (w writer) createCredentials(i int) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: clients.Namespace(i % clients.Namespaces), Name: clients.Name(i) + "-credentials", Labels: map[string]string{
			hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue, hallpassv1.LabelClient: clients.Name(i),
		}},
		Data: map[string][]byte{"client-id": []byte(fmt.Sprintf("%032x", i)), "client-secret": []byte(fmt.Sprintf("%043x", i))},
	}
	if err := w.c.Create(context.Background(), s, fieldOwner); err != nil {
		return fmt.Errorf("create credentials Secret: %w", err)
	}
	return nil
}

func (w writer) patchCredentials(i int) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: clients.Namespace(i % clients.Namespaces), Name: clients.Name(i) + "-credentials"}}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"bench.hallpass.dev/touched":"true"}}}`))
	if err := w.c.Patch(context.Background(), s, patch, fieldOwner); err != nil {
		return fmt.Errorf("patch credentials Secret: %w", err)
	}
	return nil
}

// record is client i's record as the operator keeps it in the server's namespace.
func record(i int) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(fmt.Sprintf("hallpass-client-%020x", i), "default").
		WithLabels(map[string]string{
			hallpassv1.LabelManagedBy: hallpassv1.ManagedByValue, hallpassv1.LabelServer: "hallpass", "sso.hallpass.dev/record": "client",
		}).
		WithType(corev1.SecretTypeOpaque).
		WithAnnotations(map[string]string{
			"sso.hallpass.dev/client-namespace": clients.Namespace(i % clients.Namespaces), "sso.hallpass.dev/client-name": clients.Name(i),
			"sso.hallpass.dev/client-uid": fmt.Sprintf("%036x", i), "sso.hallpass.dev/deletion-policy": "Delete",
			"sso.hallpass.dev/credentials-uid": fmt.Sprintf("%036x", i+1), "sso.hallpass.dev/secret-rotated-at": "2026-12-07T17:00:00Z",
		}).
		WithData(map[string][]byte{"client-id": []byte(fmt.Sprintf("%032x", i)), "client-secret": []byte(fmt.Sprintf("%043x", i))})
}

func (w writer) createRecord(i int) error {
	r := record(i)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: *r.Namespace, Name: *r.Name, Labels: r.Labels, Annotations: r.Annotations},
		Type:       *r.Type, Data: r.Data,
	}
	if err := w.c.Create(context.Background(), s, fieldOwner); err != nil {
		return fmt.Errorf("create client record: %w", err)
	}
	return nil
}

func (w writer) applyRecord(i int) error {
	if err := w.c.Apply(context.Background(), record(i), fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("apply client record: %w", err)
	}
	return nil
}

// patchStatus writes the status of a served client, as its first status write does; the
// client is one createClient made.
func (w writer) patchStatus(i int) error {
	sc := w.clients[i]
	before := sc.DeepCopy()
	sc.Status.ClientID = fmt.Sprintf("%032x", i)
	sc.Status.ObservedGeneration = sc.Generation
	for _, t := range []string{hallpassv1.SSOClientAccepted, hallpassv1.SSOClientCredentialsReady, hallpassv1.SSOClientServed, hallpassv1.ConditionReady} {
		meta.SetStatusCondition(&sc.Status.Conditions, metav1.Condition{
			Type: t, Status: metav1.ConditionTrue, Reason: hallpassv1.ReasonReconciled, ObservedGeneration: sc.Generation,
		})
	}
	if err := w.c.Status().Patch(context.Background(), sc, client.MergeFrom(before), fieldOwner); err != nil {
		return fmt.Errorf("patch SSOClient status: %w", err)
	}
	return nil
}

// cpuUse is what a run of writes cost.
type cpuUse struct {
	wall, apiServer, etcd time.Duration
	err                   error
}

// measure runs writes and reports its wall time and the CPU the API server and etcd (this
// process's children) used meanwhile and in the second after, while the watches deliver.
func measure(writes func() error) cpuUse {
	before := proc.CPUByName(os.Getpid(), nil)
	start := time.Now()
	err := writes()
	wall := time.Since(start)
	time.Sleep(time.Second)
	after := proc.CPUByName(os.Getpid(), nil)
	return cpuUse{wall: wall, apiServer: after["kube-apiserver"] - before["kube-apiserver"], etcd: after["etcd"] - before["etcd"], err: err}
}
