// Package node runs Hallpass on a real node: the image that `make image` builds, imported
// into containerd, run by a kubelet through runc, in a one-node cluster of one Kubernetes
// version (hack/node-cluster.sh: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kube-proxy, kubelet). The chart is installed with helm, the samples with
// kubectl, and a user signs in through the server's Service with headless Chromium.
//
// The test runs when HALLPASS_NODE is set (make test sets it, as its own step) and is
// skipped otherwise: it needs root, containerd, runc and the CNI plugins
// (hack/install-deps.sh --node), the node binaries (hack/node-binaries.sh, cached; the first
// build takes long) and a few minutes. HALLPASS_NODE_KEEP=1 leaves the cluster running
// after the test, in the directory the test logs, for a look with kubectl.
package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/envtestbin"
)

// The image the test builds and the chart installs.
const (
	imageVersion = "node-test"
	imageRef     = "hallpass/hallpass:" + imageVersion
)

// lockFile serialises real-node tests on a machine: the node's bridge, pod network, ports
// and kube-proxy's iptables chains are machine-wide.
const lockFile = "/tmp/hallpass-node.lock"

var env struct {
	enabled    bool
	repo       string
	work       string // temporary directory of the test
	cluster    string // hack/node-cluster.sh's directory
	kubeconfig string
	nodeBin    string // kubelet, kubectl, ... (hack/node-binaries.sh)
	helm       string
	k8s        client.Client
}

func TestMain(m *testing.M) {
	if os.Getenv("HALLPASS_NODE") == "" {
		os.Exit(m.Run())
	}
	env.enabled = true
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env.repo, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	unlock, err := lock()
	if err != nil {
		fmt.Fprintf(os.Stderr, "node: %v\n", err)
		return 1
	}
	defer unlock()
	if env.work, err = os.MkdirTemp("", "hallpass-node-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.cluster = filepath.Join(env.work, "cluster")
	keep := os.Getenv("HALLPASS_NODE_KEEP") != ""
	tearDown := func() {
		if keep {
			fmt.Fprintf(os.Stderr, "node: the cluster keeps running: KUBECONFIG=%s; stop it with hack/node-cluster.sh down %s\n", env.kubeconfig, env.cluster)
			return
		}
		if err := script(context.Background(), "down", env.cluster); err != nil {
			fmt.Fprintf(os.Stderr, "node: take the cluster down: %v\n", err)
		}
		_ = os.RemoveAll(env.work)
	}
	// Interrupted, the test would leave the node's processes, mounts and bridge behind.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		fmt.Fprintln(os.Stderr, "node: interrupted; taking the cluster down")
		keep = false
		tearDown()
		unlock()
		os.Exit(1)
	}()
	defer tearDown()
	if err := setUp(); err != nil {
		fmt.Fprintf(os.Stderr, "node: set up: %v\n", err)
		dumpClusterLogs()
		return 1
	}
	code := m.Run()
	if code != 0 {
		dumpClusterLogs()
	}
	return code
}

// setUp builds the image and the node binaries (both cached after the first run), brings up
// the cluster and imports the image into its containerd.
func setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	assets, err := envtestbin.Dir(ctx, env.repo)
	if err != nil {
		return err
	}
	if env.nodeBin, err = output(ctx, filepath.Join(env.repo, "hack", "node-binaries.sh")); err != nil {
		return err
	}
	if env.helm, err = helmBinary(ctx); err != nil {
		return err
	}
	archive := filepath.Join(env.work, "hallpass-image.tar")
	if _, err := output(ctx, "make", "--no-print-directory", "-s", "image",
		"VERSION="+imageVersion, "IMG="+imageRef, "IMAGE_ARCHIVE="+archive); err != nil {
		return err
	}
	started := time.Now()
	if err := script(ctx, "up", env.cluster, "KUBEBUILDER_ASSETS="+assets, "HALLPASS_NODE_BIN="+env.nodeBin); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "node: cluster up in %s\n", time.Since(started).Round(time.Second))
	if err := script(ctx, "load", env.cluster, archive); err != nil {
		return err
	}
	env.kubeconfig = filepath.Join(env.cluster, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		return fmt.Errorf("load the cluster's kubeconfig: %w", err)
	}
	scheme := devcluster.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	if env.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// script runs hack/node-cluster.sh with its output on stderr.
func script(ctx context.Context, args ...string) error {
	var extraEnv []string
	if len(args) > 2 && args[0] == "up" {
		args, extraEnv = args[:2], args[2:]
	}
	cmd := exec.CommandContext(ctx, filepath.Join(env.repo, "hack", "node-cluster.sh"), args...)
	cmd.Dir = env.repo
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/node-cluster.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// output runs a command in the repository and returns the last line it printed.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = env.repo
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

// helmBinary is $HALLPASS_HELM (make test sets it), else the pinned helm of `make helm`.
func helmBinary(ctx context.Context) (string, error) {
	if path := os.Getenv("HALLPASS_HELM"); path != "" {
		return path, nil
	}
	return output(ctx, "make", "--no-print-directory", "-s", "helm")
}

// lock takes lockFile, waiting up to 15 minutes for another real-node test to end.
func lock() (unlock func(), err error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", lockFile, err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s (another real-node test runs?): %w", lockFile, err)
		}
		time.Sleep(time.Second)
	}
}

// dumpClusterLogs prints what a failure needs: the pods, their events, and the ends of
// the node's logs.
func dumpClusterLogs() {
	if env.nodeBin == "" || env.cluster == "" {
		return
	}
	for _, args := range [][]string{
		{"get", "nodes,pods,pvc,pv", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by", ".lastTimestamp"},
		{"describe", "pods", "-A"},
		{"logs", "-n", "hallpass-system", "-l", "app.kubernetes.io/name=hallpass", "--tail", "100"},
		{"logs", "-n", serverNamespace, "-l", "app.kubernetes.io/name=hallpass-server", "--tail", "100"},
	} {
		out, _ := exec.Command(filepath.Join(env.nodeBin, "kubectl"), append([]string{"--kubeconfig", filepath.Join(env.cluster, "kubeconfig")}, args...)...).CombinedOutput()
		fmt.Fprintf(os.Stderr, "node: kubectl %s\n%s\n", strings.Join(args, " "), out)
	}
	logs, _ := filepath.Glob(filepath.Join(env.cluster, "logs", "*.log"))
	for _, log := range logs {
		out, _ := exec.Command("tail", "-n", "40", log).CombinedOutput()
		fmt.Fprintf(os.Stderr, "node: last lines of %s\n%s\n", log, out)
	}
}
