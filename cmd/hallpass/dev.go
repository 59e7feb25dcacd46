package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
	"github.com/hallpass/hallpass/internal/localca"
)

func init() {
	commands["dev"] = command{summary: "run a local control plane, the operator and its server pods (make demo)", run: runDev}
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// caPinFile, in --ca-dir, holds the base64 SHA-256 of the dev CA's public key, the value of
// Chromium's --ignore-certificate-errors-spki-list.
const caPinFile = "ca.spki-sha256"

// devFlags are the flags of `hallpass dev`.
type devFlags struct {
	crdDir, assets, serverBinary, workDir, kubeconfigOut, namespace, readyFile string
	readyTimeout                                                               time.Duration
	apply, mapURL                                                              stringList
	caDir, kubectlClient, kubectlKubeconfigOut                                 string
	zap                                                                        zap.Options
}

func parseDevFlags(args []string) (devFlags, error) {
	f := devFlags{zap: zap.Options{Development: true, Level: zapcore.InfoLevel}}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&f.crdDir, "crd-dir", "config/crd/bases", "directory of the CRD manifests")
	fs.StringVar(&f.assets, "envtest-assets", "", "directory of kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS, else built by hack/envtest-binaries.sh)")
	fs.StringVar(&f.serverBinary, "server-binary", "", "hallpass binary that server pods run (default: this binary)")
	fs.StringVar(&f.workDir, "work-dir", "", "directory for pod data and kubeconfigs (default: a temporary directory, removed on exit)")
	fs.StringVar(&f.kubeconfigOut, "kubeconfig-out", "", "also write the administrator kubeconfig here, for kubectl and the example apps")
	fs.StringVar(&f.namespace, "namespace", "default", "namespace of applied manifests that name none")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", 2*time.Minute, "how long to wait for the SSOServers of the applied manifests to become Ready")
	fs.StringVar(&f.readyFile, "ready-file", "", "file written once everything applied is Ready (scripts wait for it)")
	fs.Var(&f.apply, "apply", "directory of manifests to apply once started (repeatable): its kustomization's resources, or every .yaml file")
	fs.Var(&f.mapURL, "map-url", "FROM=TO: replace the URL prefix FROM with TO in applied manifests (repeatable), e.g. https://sso.example.com=https://localhost:5556")
	fs.StringVar(&f.caDir, "ca-dir", "", "keep a local CA (for loopback names only) in this directory, created when missing, and give each applied SSOServer whose issuer is https on localhost a serving certificate from it, as cert-manager would in a cluster")
	fs.StringVar(&f.kubectlClient, "kubectl-client", "", "[namespace/]name of an applied Native SSOClient: kube-apiserver then trusts its server's ID tokens for it, as `hallpass kubeconfig --apiserver-config` prints")
	fs.StringVar(&f.kubectlKubeconfigOut, "kubectl-kubeconfig-out", "", "with --kubectl-client, write a kubeconfig here whose user signs in with `hallpass login`")
	f.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.kubectlKubeconfigOut != "" && f.kubectlClient == "" {
		return f, errors.New("--kubectl-kubeconfig-out needs --kubectl-client")
	}
	return f, nil
}

func runDev(ctx context.Context, args []string) error {
	f, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	mapping, err := urlMappings(f.mapURL)
	if err != nil {
		return err
	}
	if f.serverBinary == "" {
		if f.serverBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("find this binary: %w", err)
		}
	}
	if f.assets == "" {
		if f.assets, err = envtestbin.Dir(ctx, "."); err != nil {
			return err
		}
	}
	var ca *localca.CA
	if f.caDir != "" {
		if ca, err = localca.LoadOrCreate(f.caDir, "Hallpass dev CA (loopback names only)"); err != nil {
			return err
		}
		// Scripts (make demo) read the pin to print a Chromium command line that trusts the CA.
		if err := os.WriteFile(filepath.Join(f.caDir, caPinFile), []byte(ca.SPKIHash()+"\n"), 0o644); err != nil { //nolint:gosec // G306: a public key's hash
			return fmt.Errorf("write the dev CA's pin: %w", err)
		}
		fmt.Fprintf(os.Stderr, "hallpass dev: https issuers on localhost get certificates of the dev CA %s (valid for loopback names only); "+
			"trust it in your browser, or start Chromium with --ignore-certificate-errors-spki-list=%s\n", filepath.Join(f.caDir, localca.CertFile), ca.SPKIHash())
	}
	authn, err := initialAuthenticationConfig(f.kubectlClient != "")
	if err != nil {
		return err
	}
	defer os.Remove(authn)

	fmt.Fprintln(os.Stderr, "hallpass dev: starting kube-apiserver, etcd and the operator")
	cluster, err := devcluster.Start(ctx, devcluster.Options{
		CRDDir: f.crdDir, BinaryAssetsDir: f.assets, ServerBinary: f.serverBinary, WorkDir: f.workDir,
		Logs: os.Stderr, Logger: zap.New(zap.UseFlagOptions(&f.zap)), AuthenticationConfig: authn,
	})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if f.kubeconfigOut != "" {
		if err := copyFile(cluster.Kubeconfig, f.kubeconfigOut); err != nil {
			return fmt.Errorf("write --kubeconfig-out: %w", err)
		}
		defer os.Remove(f.kubeconfigOut)
	}
	fmt.Fprintf(os.Stderr, "hallpass dev: API server at %s; kubeconfig %s\n", cluster.Config.Host, firstNonEmpty(f.kubeconfigOut, cluster.Kubeconfig))

	if err := applyManifests(ctx, cluster, f, mapping, ca); err != nil {
		return err
	}
	if f.kubectlClient != "" {
		if err := trustForKubectl(ctx, cluster, f, authn); err != nil {
			return err
		}
		if f.kubectlKubeconfigOut != "" {
			defer os.Remove(f.kubectlKubeconfigOut)
		}
	}
	if f.readyFile != "" {
		if err := os.WriteFile(f.readyFile, []byte(cluster.Config.Host+"\n"), 0o600); err != nil {
			return fmt.Errorf("write --ready-file: %w", err)
		}
		defer os.Remove(f.readyFile)
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "hallpass dev: stopping")
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
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

// applyManifests applies the manifests of each directory, with their URLs mapped and, with
// a CA, certificates for their loopback https issuers, and waits for the SSOServers to
// become Ready.
func applyManifests(ctx context.Context, cluster *devcluster.Cluster, f devFlags, mapping map[string]string, ca *localca.CA) error {
	for _, dir := range f.apply {
		objs, err := devcluster.ReadManifests(dir)
		if err != nil {
			return err
		}
		devcluster.MapURLs(objs, mapping)
		if ca != nil {
			if objs, err = devcluster.ServeHTTPS(objs, ca); err != nil {
				return err
			}
		}
		if err := devcluster.Apply(ctx, cluster.Client, f.namespace, objs); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "hallpass dev: applied %d objects from %s\n", len(objs), dir)
	}
	if len(f.apply) == 0 {
		return nil
	}
	if err := cluster.WaitServersReady(ctx, f.namespace, f.readyTimeout); err != nil {
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
