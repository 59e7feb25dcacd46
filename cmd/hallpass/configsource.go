package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/hallpass/hallpass/internal/kubeclient"
	"github.com/hallpass/hallpass/internal/server/configsource"
)

// filePollInterval is how often `hallpass server` re-reads config files.
const filePollInterval = time.Second

// configSourceFlags say where a server's config and signing keys come from: files
// (standalone) or the operator's Secrets (in a cluster). `hallpass server` and
// `hallpass admin` read them the same way.
type configSourceFlags struct {
	configPath, keysPath     string
	configSecret, keysSecret string
	kubeconfig               string
	dataDir                  string
}

func (f *configSourceFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "", "config file (standalone mode); the server re-reads it every second")
	fs.StringVar(&f.keysPath, "keys", "", "signing keys file (standalone mode); default: "+defaultKeysFile+" beside the config file, which `hallpass server` creates when it is missing")
	fs.StringVar(&f.configSecret, "config-secret", "", "namespace/name of the config Secret (in a cluster); the server watches it")
	fs.StringVar(&f.keysSecret, "keys-secret", "", "namespace/name of the signing keys Secret (in a cluster); the server watches it")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster config")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the SQLite database, replacing the one in the config (to run outside a container)")
}

// configOrigin is where a config comes from, checked.
type configOrigin struct {
	f               configSourceFlags
	client          kubernetes.Interface
	cfgRef, keysRef configsource.SecretRef
}

// open checks that exactly one kind of source was given, completely.
func (f configSourceFlags) open() (*configOrigin, error) {
	fromFiles := f.configPath != "" || f.keysPath != ""
	fromSecrets := f.configSecret != "" || f.keysSecret != ""
	if fromFiles == fromSecrets || fromFiles && f.configPath == "" || fromSecrets && (f.configSecret == "" || f.keysSecret == "") {
		return nil, errors.New("give either --config (and --keys), or --config-secret and --keys-secret")
	}
	if fromFiles && f.keysPath == "" {
		f.keysPath = filepath.Join(filepath.Dir(f.configPath), defaultKeysFile)
	}
	s := &configOrigin{f: f}
	if fromFiles {
		return s, nil
	}
	var err error
	if s.cfgRef, err = configsource.ParseSecretRef(f.configSecret); err != nil {
		return nil, err
	}
	if s.keysRef, err = configsource.ParseSecretRef(f.keysSecret); err != nil {
		return nil, err
	}
	if s.client, err = kubeclient.New(f.kubeconfig); err != nil {
		return nil, err
	}
	return s, nil
}

// read returns the config and keys as they are now.
func (s *configOrigin) read(ctx context.Context) (configData, keysData []byte, err error) {
	if s.client == nil {
		return configsource.ReadFiles(s.f.configPath, s.f.keysPath)
	}
	return configsource.GetSecrets(ctx, s.client, s.cfgRef, s.keysRef)
}

// watch hands every change to l until ctx ends.
func (s *configOrigin) watch(ctx context.Context, l *configsource.Reloader) error {
	if s.client == nil {
		configsource.PollFiles(ctx, s.f.configPath, s.f.keysPath, filePollInterval, l)
		return nil
	}
	return configsource.WatchSecrets(ctx, s.client, s.cfgRef, s.keysRef, l)
}

// reporter returns the Reporter of the pod's served config into the status ConfigMap
// (namespace/name), or nil without one. Files have no cluster to report to.
func (s *configOrigin) reporter(statusConfigMap string, l *configsource.Reloader, logger *slog.Logger) (*configsource.Reporter, error) {
	if statusConfigMap == "" {
		return nil, nil
	}
	if s.client == nil {
		return nil, errors.New("--status-configmap needs --config-secret and --keys-secret")
	}
	ref, err := configsource.ParseSecretRef(statusConfigMap)
	if err != nil {
		return nil, fmt.Errorf("--status-configmap: %w", err)
	}
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		if pod, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("name this pod for its status report: %w", err)
		}
	}
	return configsource.NewReporter(s.client, ref, pod, l.AppliedConfigHash, logger), nil
}
