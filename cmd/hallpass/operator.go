package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/controllers"
	"github.com/hallpass/hallpass/internal/memlimit"
	"github.com/hallpass/hallpass/internal/version"
	"github.com/hallpass/hallpass/internal/webhookcert"
)

func init() {
	commands["operator"] = command{summary: "reconcile SSOServers, SSOClients and IdentityConnections", run: runOperator}
}

// Scheme holds every kind the operator reads or writes.
func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hallpassv1.AddToScheme(scheme))
	return scheme
}

func runOperator(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-bind-address", ":8080", "address of the metrics endpoint (0 disables it)")
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader, so that only one of several operator replicas acts")
	leaderElectionNamespace := fs.String("leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's own; required with --leader-elect outside a cluster)")
	serverImage := fs.String("server-image", envOr("HALLPASS_SERVER_IMAGE", version.ServerImage()), "default image of SSO server pods")
	var serverLogLevel slog.Level
	fs.TextVar(&serverLogLevel, "server-log-level", slog.LevelInfo, "--log-level of SSO server pods: debug, info, warn or error")
	allowedImages := fs.String("allowed-server-images", os.Getenv("HALLPASS_ALLOWED_SERVER_IMAGES"),
		"comma-separated image repositories an SSOServer's spec.image may name (default: the repository of --server-image only)")
	webhookPort := fs.Int("webhook-port", 9443, "port of the admission webhook server (0 disables the webhooks)")
	webhookCertDir := fs.String("webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of the webhook's tls.crt and tls.key")
	webhookSelfSigned := fs.Bool("webhook-self-signed", true, "manage the webhook's certificate (false: it is provided in --webhook-cert-dir, e.g. by cert-manager)")
	webhookService := fs.String("webhook-service", "hallpass-webhook-service", "Service in front of the webhook server, in the operator's namespace ($POD_NAMESPACE)")
	webhookConfig := fs.String("webhook-configuration", "hallpass-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle the operator sets")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	memoryLimit := memlimit.FromContainer()
	if *leaderElect && *leaderElectionNamespace == "" && !inCluster() {
		return errors.New("--leader-elect outside a cluster needs --leader-election-namespace, the namespace of the Lease the replicas share")
	}

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	if *webhookPort != 0 && *webhookSelfSigned {
		if err := ensureWebhookCertificate(ctx, cfg, *webhookCertDir, *webhookService, *webhookConfig); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  newScheme(),
		WebhookServer:           webhook.NewServer(webhook.Options{Port: *webhookPort, CertDir: *webhookCertDir}),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: *leaderElectionNamespace,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.Setup(ctx, mgr, controllers.Options{
		ServerImage: *serverImage, ServerLogLevel: strings.ToLower(serverLogLevel.String()),
		AllowedServerImages: splitList(*allowedImages), Webhooks: *webhookPort != 0,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	ctrl.Log.Info("Starting operator", "version", version.Version, "serverImage", *serverImage, "allowedServerImages", *allowedImages,
		"goMemoryLimit", memoryLimit)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// ensureWebhookCertificate gives the webhook server a certificate the API server trusts,
// shared by every replica through a Secret in the operator's namespace.
func ensureWebhookCertificate(ctx context.Context, cfg *rest.Config, certDir, service, configuration string) error {
	namespace := os.Getenv("POD_NAMESPACE")
	if namespace == "" {
		return errors.New("POD_NAMESPACE is not set: the operator's Deployment passes it (config/manager), or run with --webhook-port=0")
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return webhookcert.Ensure(ctx, c, webhookcert.Options{
		Namespace: namespace, SecretName: service + "-tls", Service: service,
		CertDir: certDir, WebhookConfiguration: configuration,
	})
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// leaderElectionID names the Lease the operator's replicas elect their leader with.
const leaderElectionID = "operator.sso.hallpass.dev"

// inCluster reports whether the operator runs in a pod, where the namespace of the leader
// election Lease defaults to the pod's own.
func inCluster() bool {
	_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	return err == nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
