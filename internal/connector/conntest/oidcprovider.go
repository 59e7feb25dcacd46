package conntest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The oidc-provider peer's client and users (see test/peers/oidc-provider/server.js).
const (
	OIDCClientID     = "hallpass"
	OIDCClientSecret = "hallpass-upstream-secret"
	OIDCAlicePass    = "alice-password"
	OIDCBobPass      = "bob-password"
	oidcStartBudget  = 30 * time.Second
)

// OIDCProvider is a running npm oidc-provider.
type OIDCProvider struct {
	Issuer string
	Port   int
}

// OIDCProviderOptions configure one peer. Host defaults to 127.0.0.1; a browser test
// passes a name it maps to loopback. Port defaults to a free one; a test that configures
// the connection before the peer is up picks it (FreePort).
type OIDCProviderOptions struct {
	Host                   string
	Port                   int
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
}

// RepoRoot is the directory of go.mod, found from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("go.mod not found above the working directory")
	return ""
}

// StartOIDCProvider runs test/peers/oidc-provider with node on a free loopback port and
// stops it when the test ends.
func StartOIDCProvider(t testing.TB, o OIDCProviderOptions) *OIDCProvider {
	t.Helper()
	skipShort(t, "starts npm's oidc-provider")
	dir := filepath.Join(RepoRoot(t), "test", "peers", "oidc-provider")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("oidc-provider is not installed in %s: run hack/install-deps.sh (npm ci of the committed lock file)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (hack/install-deps.sh installs npm and node): %v", err)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = FreePort(t)
	}
	p := &OIDCProvider{Issuer: fmt.Sprintf("http://%s:%d", o.Host, port), Port: port}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("PORT=%d", port),
		"ISSUER="+p.Issuer,
		"CLIENT_ID="+OIDCClientID,
		"CLIENT_SECRET="+OIDCClientSecret,
		"REDIRECT_URIS="+strings.Join(o.RedirectURIs, ","),
		"POST_LOGOUT_REDIRECT_URIS="+strings.Join(o.PostLogoutRedirectURIs, ","),
	)
	startPeer(t, "oidc-provider", cmd, cancel)
	WaitForPort(t, fmt.Sprintf("127.0.0.1:%d", port), oidcStartBudget)
	return p
}
