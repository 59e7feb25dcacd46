// Command app1 is App 1 of the Hallpass demo: a single-page application that signs in with
// npm's oidc-client-ts (authorization code with PKCE, a public client without a secret).
// This small Go server only serves the page, the oidc-client-ts browser build from
// node_modules (installed by `npm ci` from the committed lock file, no CDN), and
// /config.json with the client ID it reads from the credentials Secret the operator wrote.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/examples/internal/serve"
	"github.com/hallpass/hallpass/pkg/ssoapp/credentials"
)

//go:embed static
var static embed.FS

// oidcClientBuild is the self-contained browser build of oidc-client-ts (it defines the
// global `oidc`), relative to node_modules.
const oidcClientBuild = "oidc-client-ts/dist/browser/oidc-client-ts.min.js"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "app1: %v\n", err)
		os.Exit(1)
	}
}

// clientConfig is what the page needs to sign in; none of it is secret.
type clientConfig struct {
	Authority             string `json:"authority"`
	ClientID              string `json:"client_id"`
	RedirectURI           string `json:"redirect_uri"`
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri"`
	Connection            string `json:"connection"`
	App2SSOURL            string `json:"app2_sso_url"`
}

func run(ctx context.Context) error {
	listen := flag.String("listen", "127.0.0.1:3001", "address to serve on")
	baseURL := flag.String("base-url", "http://127.0.0.1:3001", "this app's external URL; BASE/callback must be a redirect URI of its SSOClient")
	app2URL := flag.String("app2-url", "http://127.0.0.1:3002", "App 2's external URL, for the SSO link")
	nodeModules := flag.String("node-modules", "examples/app1/node_modules", "node_modules installed by `npm ci` in examples/app1")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig to read the credentials Secret with (in-cluster config when empty)")
	namespace := flag.String("namespace", "default", "namespace of the credentials Secret")
	secretName := flag.String("credentials-secret", "app1-sso-credentials", "credentials Secret written by the operator for this app's SSOClient")
	connection := flag.String("connection", "username-password", "connection to sign in with, and to name in the link to App 2")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	oidcJS, err := os.ReadFile(filepath.Join(*nodeModules, oidcClientBuild))
	if err != nil {
		return fmt.Errorf("read the oidc-client-ts browser build (run `npm ci` in examples/app1): %w", err)
	}
	creds, ok := credentials.FromEnv()
	if !ok {
		if creds, err = credentials.FromSecret(ctx, *kubeconfig, *namespace, *secretName, 2*time.Minute); err != nil {
			return err
		}
	}
	issuer, err := url.Parse(creds.Issuer)
	if err != nil || issuer.Host == "" {
		return fmt.Errorf("issuer %q is not an absolute URL", creds.Issuer)
	}
	cfg, err := json.Marshal(clientConfig{
		Authority: creds.Issuer, ClientID: creds.ClientID,
		RedirectURI: *baseURL + "/callback", PostLogoutRedirectURI: *baseURL + "/",
		Connection: *connection,
		App2SSOURL: *app2URL + "/auth/sso?" + url.Values{"connection": {*connection}, "target_url": {"/dashboard"}}.Encode(),
	})
	if err != nil {
		return fmt.Errorf("encode client config: %w", err)
	}

	files, _ := fs.Sub(static, "static")
	// The page talks to the SSO server only: discovery, keys and the token endpoint.
	csp := "default-src 'self'; connect-src 'self' " + issuer.Scheme + "://" + issuer.Host + "; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFileFS(w, r, files, "index.html")
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /callback", page)
	mux.HandleFunc("GET /app.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, files, "app.js")
	})
	mux.HandleFunc("GET /vendor/oidc-client-ts.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(oidcJS)
	})
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(cfg)
	})

	return serve.Run(ctx, logger, *listen, mux, "app", "App 1", "url", *baseURL, "issuer", creds.Issuer, "client_id", creds.ClientID)
}
