package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

func init() {
	commands["dev"] = command{summary: "run a local control plane, the operator and its server pods (make demo)", run: runDev}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	crdDir := fs.String("crd-dir", "config/crd/bases", "directory of the CRD manifests")
	assets := fs.String("envtest-assets", "", "directory of kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS, else built by hack/envtest-binaries.sh)")
	serverBinary := fs.String("server-binary", "", "hallpass binary that server pods run (default: this binary)")
	workDir := fs.String("work-dir", "", "directory for pod data and kubeconfigs (default: a temporary directory, removed on exit)")
	kubeconfigOut := fs.String("kubeconfig-out", "", "also write the administrator kubeconfig here, for kubectl and the example apps")
	namespace := fs.String("namespace", "default", "namespace of applied manifests that name none")
	readyTimeout := fs.Duration("ready-timeout", 2*time.Minute, "how long to wait for the SSOServers of the applied manifests to become Ready")
	readyFile := fs.String("ready-file", "", "file written once everything applied is Ready (scripts wait for it)")
	var apply, mapURL stringList
	fs.Var(&apply, "apply", "directory of manifests to apply once started (repeatable): its kustomization's resources, or every .yaml file")
	fs.Var(&mapURL, "map-url", "FROM=TO: replace the URL prefix FROM with TO in applied manifests (repeatable), e.g. https://sso.example.com=http://127.0.0.1:5556")
	zapOpts := zap.Options{Development: true, Level: zapcore.InfoLevel}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	mapping, err := urlMappings(mapURL)
	if err != nil {
		return err
	}
	if *serverBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this binary: %w", err)
		}
		*serverBinary = exe
	}
	if *assets == "" {
		var err error
		if *assets, err = envtestbin.Dir(ctx, "."); err != nil {
			return err
		}
	}

	logger := zap.New(zap.UseFlagOptions(&zapOpts))
	fmt.Fprintln(os.Stderr, "hallpass dev: starting kube-apiserver, etcd and the operator")
	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: *crdDir, BinaryAssetsDir: *assets, ServerBinary: *serverBinary, WorkDir: *workDir,
		Logs: os.Stderr, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if *kubeconfigOut != "" {
		data, err := os.ReadFile(cluster.Kubeconfig)
		if err != nil {
			return fmt.Errorf("read admin kubeconfig: %w", err)
		}
		if err := os.WriteFile(*kubeconfigOut, data, 0o600); err != nil {
			return fmt.Errorf("write --kubeconfig-out: %w", err)
		}
		defer os.Remove(*kubeconfigOut)
	}
	fmt.Fprintf(os.Stderr, "hallpass dev: API server at %s; kubeconfig %s\n", cluster.Config.Host, firstNonEmpty(*kubeconfigOut, cluster.Kubeconfig))

	if err := applyManifests(ctx, cluster, apply, *namespace, mapping, *readyTimeout); err != nil {
		return err
	}
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(cluster.Config.Host+"\n"), 0o600); err != nil {
			return fmt.Errorf("write --ready-file: %w", err)
		}
		defer os.Remove(*readyFile)
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "hallpass dev: stopping")
	return nil
}

// urlMappings parses the --map-url values.
func urlMappings(values []string) (map[string]string, error) {
	mapping := map[string]string{}
	for _, m := range values {
		from, to, ok := strings.Cut(m, "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("--map-url %q is not FROM=TO", m)
		}
		mapping[strings.TrimSuffix(from, "/")] = strings.TrimSuffix(to, "/")
	}
	return mapping, nil
}

// applyManifests applies the manifests of each directory, with their URLs mapped, and
// waits for the SSOServers to become Ready.
func applyManifests(ctx context.Context, cluster *devcluster.Cluster, dirs []string, namespace string, mapping map[string]string, timeout time.Duration) error {
	for _, dir := range dirs {
		objs, err := devcluster.ReadManifests(dir)
		if err != nil {
			return err
		}
		devcluster.MapURLs(objs, mapping)
		if err := devcluster.Apply(ctx, cluster.Client, namespace, objs); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "hallpass dev: applied %d objects from %s\n", len(objs), dir)
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := cluster.WaitServersReady(ctx, namespace, timeout); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "hallpass dev: every SSOServer is Ready")
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
