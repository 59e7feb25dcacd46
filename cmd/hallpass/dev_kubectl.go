package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
	"github.com/hallpass/hallpass/internal/devcluster"
	"github.com/hallpass/hallpass/internal/localca"
)

// initialAuthenticationConfig writes the dev kube-apiserver's authentication config before
// anything runs: no JWT authenticator yet, since the kubectl client's ID is known only once
// the operator has registered it. It returns "" when kubectl sign-in is not wanted.
func initialAuthenticationConfig(wanted bool) (string, error) {
	if !wanted {
		return "", nil
	}
	f, err := os.CreateTemp("", "hallpass-dev-authentication-*.yaml")
	if err != nil {
		return "", fmt.Errorf("create the API server's authentication config: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"); err != nil {
		return "", fmt.Errorf("write the API server's authentication config: %w", err)
	}
	return f.Name(), nil
}

// trustForKubectl does the cluster admin's half of kubectl sign-in for the dev cluster: once
// the kubectl SSOClient has its ID, the API server's authentication config gets the JWT
// authenticator `hallpass kubeconfig --apiserver-config` prints, and with
// --kubectl-kubeconfig-out a user's kubeconfig is written. It returns once the API server
// has loaded the authenticator.
func trustForKubectl(ctx context.Context, cluster *devcluster.Cluster, f devFlags, authnFile string) error {
	key := client.ObjectKey{Namespace: f.namespace, Name: f.kubectlClient}
	if ns, name, ok := strings.Cut(f.kubectlClient, "/"); ok {
		key = client.ObjectKey{Namespace: ns, Name: name}
	}
	login, err := kubectlLogin(ctx, cluster.Client, key, f)
	if err != nil {
		return err
	}
	doc, err := authenticationConfiguration(login, "hallpass:", "sub")
	if err != nil {
		return err
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("render the API server's authentication config: %w", err)
	}
	// Written in place: the API server watches this file.
	if err := os.WriteFile(authnFile, data, 0o600); err != nil {
		return fmt.Errorf("write the API server's authentication config: %w", err)
	}
	if err := waitAuthenticationLoaded(ctx, cluster, data, f.readyTimeout); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "hallpass dev: kube-apiserver trusts %s for ID tokens of SSOClient %s (client ID %s)\n", login.issuer, key, login.clientID)
	if f.kubectlKubeconfigOut == "" {
		return nil
	}
	return writeUserKubeconfig(cluster.Kubeconfig, f.kubectlKubeconfigOut, f.serverBinary, login)
}

// kubectlLogin waits until the SSOClient is Ready and returns how `hallpass login` signs in
// with it.
func kubectlLogin(ctx context.Context, c client.Client, key client.ObjectKey, f devFlags) (loginFlags, error) {
	ctx, cancel := context.WithTimeout(ctx, f.readyTimeout)
	defer cancel()
	var sc hallpassv1.SSOClient
	for {
		err := c.Get(ctx, key, &sc)
		if err == nil && sc.Status.ClientID != "" && meta.IsStatusConditionTrue(sc.Status.Conditions, hallpassv1.ConditionReady) {
			break
		}
		select {
		case <-ctx.Done():
			return loginFlags{}, fmt.Errorf("wait for SSOClient %s to be Ready (--kubectl-client): %w", key, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
	srvKey := client.ObjectKey{Namespace: sc.Spec.ServerRef.Namespace, Name: sc.Spec.ServerRef.Name}
	if srvKey.Namespace == "" {
		srvKey.Namespace = sc.Namespace
	}
	var srv hallpassv1.SSOServer
	if err := c.Get(ctx, srvKey, &srv); err != nil {
		return loginFlags{}, fmt.Errorf("get SSOServer %s of SSOClient %s: %w", srvKey, key, err)
	}
	login := loginFlags{issuer: srv.Spec.Issuer, clientID: sc.Status.ClientID}
	if f.caDir != "" {
		login.caFile = filepath.Join(f.caDir, localca.CertFile)
	}
	return login, nil
}

// waitAuthenticationLoaded waits until the API server reports that the authentication
// config it serves is data (its metrics name the config by SHA-256).
func waitAuthenticationLoaded(ctx context.Context, cluster *devcluster.Cluster, data []byte, timeout time.Duration) error {
	kube, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		metrics, err := kube.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err == nil && strings.Contains(string(metrics), fmt.Sprintf(`hash="sha256:%x"`, sha256.Sum256(data))) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kube-apiserver to load the authentication config: %w", context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// writeUserKubeconfig writes a kubeconfig for the dev cluster whose user is the one
// `hallpass kubeconfig` prints, running `hallpass login` of the binary hallpass.
func writeUserKubeconfig(adminKubeconfig, out, hallpass string, login loginFlags) error {
	admin, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		return fmt.Errorf("read admin kubeconfig: %w", err)
	}
	userYAML, err := yaml.Marshal(kubeconfigUser(login, "hallpass", hallpass))
	if err != nil {
		return fmt.Errorf("render the kubeconfig user: %w", err)
	}
	user, err := clientcmd.Load(userYAML)
	if err != nil {
		return fmt.Errorf("load the kubeconfig user: %w", err)
	}
	current, ok := admin.Contexts[admin.CurrentContext]
	if !ok || admin.Clusters[current.Cluster] == nil {
		return fmt.Errorf("read admin kubeconfig %s: its current context %q names no cluster", adminKubeconfig, admin.CurrentContext)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[current.Cluster] = admin.Clusters[current.Cluster]
	cfg.AuthInfos["hallpass"] = user.AuthInfos["hallpass"]
	cfg.Contexts["hallpass"] = &clientcmdapi.Context{Cluster: current.Cluster, AuthInfo: "hallpass", Namespace: "default"}
	cfg.CurrentContext = "hallpass"
	if err := clientcmd.WriteToFile(*cfg, out); err != nil {
		return fmt.Errorf("write --kubectl-kubeconfig-out: %w", err)
	}
	fmt.Fprintf(os.Stderr, "hallpass dev: kubeconfig signing in with Hallpass: %s\nIts user entry, as `hallpass kubeconfig` prints it, to add to a kubeconfig of your own:\n%s", out, userYAML)
	return nil
}
