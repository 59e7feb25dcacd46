// Command app2 is App 2 of the Hallpass demo: a regular web application in Go that signs
// users in with pkg/ssoapp. Its /auth/sso endpoint is the seed scenario's: a user who
// signed in on App 1 follows a link to
//
//	/auth/sso?connection=username-password&target_url=/dashboard
//
// and lands on /dashboard without a login page.
//
// It reads its client ID, secret and issuer from HALLPASS_CLIENT_ID, HALLPASS_CLIENT_SECRET
// and HALLPASS_ISSUER, or else from the credentials Secret the operator wrote for its
// SSOClient (--kubeconfig, --namespace, --credentials-secret).
package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/hallpass/hallpass/examples/internal/serve"
	"github.com/hallpass/hallpass/pkg/ssoapp"
	"github.com/hallpass/hallpass/pkg/ssoapp/credentials"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "app2: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	listen := flag.String("listen", "127.0.0.1:3002", "address to serve on")
	baseURL := flag.String("base-url", "http://127.0.0.1:3002", "this app's external URL; BASE/callback must be a redirect URI of its SSOClient")
	title := flag.String("title", "App 2", "name shown on the pages")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig to read the credentials Secret with (in-cluster config when empty)")
	namespace := flag.String("namespace", "default", "namespace of the credentials Secret")
	secretName := flag.String("credentials-secret", "app2-sso-credentials", "credentials Secret written by the operator for this app's SSOClient")
	connection := flag.String("connection", "username-password", "connection for the sign-in link")
	caFile := flag.String("ca-file", "", "PEM file of the CA that signed the issuer's certificate, when the system's CAs do not vouch for it (the demo's local CA)")
	insecure := flag.Bool("allow-insecure-http", false, "allow an http --base-url on a host that is not loopback (local tests with names such as app2.test)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	creds, ok := credentials.FromEnv()
	if !ok {
		var err error
		if creds, err = credentials.FromSecret(ctx, *kubeconfig, *namespace, *secretName, 2*time.Minute); err != nil {
			return err
		}
	}
	httpClient, err := ssoapp.HTTPClientTrusting(*caFile, 10*time.Second)
	if err != nil {
		return fmt.Errorf("--ca-file: %w", err)
	}
	app, err := ssoapp.New(ssoapp.Config{
		Issuer: creds.Issuer, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		BaseURL: *baseURL, AllowInsecureHTTP: *insecure, Logger: logger, HTTPClient: httpClient,
	})
	if err != nil {
		return err
	}
	// Signing out posts to /logout, which redirects to the SSO server: form-action covers
	// the redirect too, so the issuer's origin is allowed.
	issuerOrigin, err := origin(creds.Issuer)
	if err != nil {
		return err
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' " + issuerOrigin
	render := func(w http.ResponseWriter, t *template.Template, data pageData) {
		w.Header().Set("Content-Security-Policy", csp)
		renderPage(w, t, data)
	}
	mux := http.NewServeMux()
	app.Mount(mux)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		u, _ := app.CurrentUser(r)
		render(w, homePage, pageData{Title: *title, User: u, Connection: *connection})
	})
	mux.Handle("GET /dashboard", app.RequireLogin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := ssoapp.UserFromContext(r.Context())
		render(w, dashboardPage, pageData{Title: *title, User: u, Claims: sortedClaims(u.Claims)})
	})))

	return serve.Run(ctx, logger, *listen, mux, "app", *title, "url", *baseURL, "issuer", creds.Issuer, "client_id", creds.ClientID)
}

type pageData struct {
	Title      string
	User       *ssoapp.User
	Connection string
	Claims     [][2]string
}

func sortedClaims(c map[string]any) [][2]string {
	var out [][2]string
	for k, v := range c {
		out = append(out, [2]string{k, fmt.Sprint(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("issuer %q is not an absolute URL", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func renderPage(w http.ResponseWriter, t *template.Template, data pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := t.Execute(w, data); err != nil {
		slog.Error("render page", "error", err)
	}
}

const layout = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}
header{display:flex;justify-content:space-between;align-items:center;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td{padding:.2rem .6rem;border-bottom:1px solid #eee;font-family:monospace}
button,.button{padding:.4rem .9rem}</style></head><body>
<header><h1>{{.Title}}</h1><span id="who">{{if .User}}Signed in as {{.User.Name}}{{else}}Not signed in{{end}}</span></header>
{{template "content" .}}
</body></html>`

var homePage = template.Must(template.Must(template.New("home").Parse(layout)).Parse(`{{define "content"}}
<p>A regular web application. It signs users in through the Hallpass SSO server with pkg/ssoapp.</p>
{{if .User}}<p><a id="dashboard" href="/dashboard">Open the dashboard</a></p>
{{else}}<p><a id="login" href="/auth/login?target_url=/dashboard&amp;connection={{.Connection}}">Sign in</a></p>{{end}}
{{end}}`))

var dashboardPage = template.Must(template.Must(template.New("dashboard").Parse(layout)).Parse(`{{define "content"}}
<h2 id="dashboard-title">Dashboard</h2>
<p id="welcome">Welcome, {{.User.Name}} ({{.User.Email}}).</p>
<p>Claims of your ID token:</p>
<table>{{range .Claims}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>{{end}}</table>
<form method="post" action="/logout"><p><button id="logout" type="submit">Sign out</button></p></form>
{{end}}`))
