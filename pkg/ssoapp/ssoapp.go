// Package ssoapp is what a Go web application mounts to sign its users in through a
// Hallpass SSO server (or any OpenID provider): the server-side SSO endpoint
//
//	GET /auth/sso?connection=<connection>&target_url=<local path>
//
// which sends a user who already has a session of this application straight to target_url,
// and otherwise through the provider's /authorize with that connection, where a valid
// central session signs them in without a login page. It also provides the callback
// (authorization code with PKCE, state and nonce), an application session cookie, a
// RequireLogin middleware, RP-initiated logout, and a back-channel logout receiver.
//
//	app, err := ssoapp.New(ssoapp.Config{Issuer: ..., ClientID: ..., ClientSecret: ..., BaseURL: "https://app2.example.com"})
//	app.Mount(mux)
//	mux.Handle("GET /dashboard", app.RequireLogin(dashboard))
package ssoapp

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/replay"
)

// Defaults of Config.
const (
	DefaultCallbackPath    = "/callback"
	DefaultFailurePath     = "/auth/failure"
	DefaultSessionLifetime = 8 * time.Hour
	DefaultCookieName      = "ssoapp_session"
	// loginTimeout bounds how long a user may take between leaving for the provider and
	// coming back to the callback.
	loginTimeout = 10 * time.Minute
	// providerTimeout bounds each request to the provider made on behalf of a user.
	providerTimeout = 10 * time.Second
)

// Config configures an App.
type Config struct {
	// Issuer is the SSO server's issuer URL (the "issuer" key of the credentials Secret).
	Issuer string
	// ClientID and ClientSecret are the application's credentials. A public client has no
	// secret.
	ClientID, ClientSecret string
	// BaseURL is this application's external URL, e.g. https://app2.example.com. The
	// callback is BaseURL + CallbackPath and must be one of the client's redirect URIs.
	BaseURL string
	// CallbackPath defaults to /callback.
	CallbackPath string
	// LogoutReturnPath is where the provider sends the user after logout, as BaseURL +
	// LogoutReturnPath; it must be a registered post-logout redirect URI. Defaults to "/".
	LogoutReturnPath string
	// FailurePath is the page that explains a refused or failed sign-in. Defaults to
	// /auth/failure, which Mount serves.
	FailurePath string
	// Scopes requested; defaults to openid, profile and email.
	Scopes []string
	// SessionLifetime is how long an application session lasts; defaults to 8h. It is
	// independent of the central session, as in Auth0's model of application sessions.
	SessionLifetime time.Duration
	// CookieName names the application session cookie; defaults to ssoapp_session.
	CookieName string
	// AllowInsecureHTTP permits an http BaseURL on a host other than loopback, for local
	// development with names such as app2.test. Cookies are then not Secure.
	AllowInsecureHTTP bool
	// HTTPClient reaches the provider; defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives sign-in failures; defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// User is the signed-in user of an application session.
type User struct {
	Subject string
	Name    string
	Email   string
	// Claims are all claims of the ID token.
	Claims map[string]any
	// IDToken is the raw ID token, sent as id_token_hint on logout.
	IDToken string
	// SessionID is the provider's sid claim: the central session this login came from.
	SessionID string
	// SignedInAt is when this application session started.
	SignedInAt time.Time
}

// App holds the handlers of one application.
type App struct {
	cfg           Config
	secureCookies bool
	sessions      *store[*User]
	// sealer seals sign-ins in progress into the login cookie (pending.go).
	sealer cipher.AEAD
	// logoutJTIs refuses a replayed back-channel logout token (backchannel.go).
	logoutJTIs *replay.Cache

	mu       sync.Mutex
	provider *oidc.Provider
	endpoint struct {
		EndSession string `json:"end_session_endpoint"`
	}
}

// New checks cfg and returns an App. It does not contact the provider: discovery happens on
// the first sign-in and is retried until it succeeds, so the application can start before
// its SSO server.
func New(cfg Config) (*App, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("ssoapp: Issuer and ClientID are required")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("ssoapp: BaseURL %q must be an absolute http(s) URL without query or fragment", cfg.BaseURL)
	}
	if base.Scheme == "http" && !isLoopback(base.Hostname()) && !cfg.AllowInsecureHTTP {
		return nil, fmt.Errorf("ssoapp: BaseURL %q uses http on a host that is not loopback; use https, or set AllowInsecureHTTP for local development", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	setDefault(&cfg.CallbackPath, DefaultCallbackPath)
	setDefault(&cfg.LogoutReturnPath, "/")
	setDefault(&cfg.FailurePath, DefaultFailurePath)
	setDefault(&cfg.CookieName, DefaultCookieName)
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = DefaultSessionLifetime
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: providerTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sealer, err := newSealer()
	if err != nil {
		return nil, err
	}
	return &App{
		cfg: cfg,
		// Secure whenever the application is served over https. Browsers drop Secure cookies
		// set over http, so an http development URL gets plain ones.
		secureCookies: base.Scheme == "https",
		sessions:      newStore[*User](maxSessions, cfg.Now),
		sealer:        sealer,
		logoutJTIs:    replay.New(maxLogoutJTIs),
	}, nil
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Mount registers the application's SSO endpoints on mux:
//
//	GET  /auth/sso                the server-side SSO endpoint
//	GET  /auth/login              sign in (target_url and connection optional)
//	GET  <CallbackPath>           the OAuth 2.0 redirect URI
//	POST /logout                  end the application session and the central session
//	POST /backchannel-logout      OpenID Connect Back-Channel Logout receiver
//	GET  /auth/failure            explains why a sign-in was refused or failed
func (a *App) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/sso", a.handleSSO)
	mux.HandleFunc("GET /auth/login", a.handleLogin)
	mux.HandleFunc("GET "+a.cfg.CallbackPath, a.handleCallback)
	mux.HandleFunc("POST /logout", a.handleLogout)
	mux.HandleFunc("POST /backchannel-logout", a.handleBackchannelLogout)
	if a.cfg.FailurePath == DefaultFailurePath {
		mux.HandleFunc("GET "+DefaultFailurePath, handleFailure)
	}
}

// oauth2Config returns the client's OAuth 2.0 configuration, discovering the provider on
// first use.
func (a *App) oauth2Config(ctx context.Context) (*oauth2.Config, *oidc.Provider, error) {
	p, err := a.discover(ctx)
	if err != nil {
		return nil, nil, err
	}
	return &oauth2.Config{
		ClientID:     a.cfg.ClientID,
		ClientSecret: a.cfg.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  a.cfg.BaseURL + a.cfg.CallbackPath,
		Scopes:       a.cfg.Scopes,
	}, p, nil
}

func (a *App) discover(ctx context.Context) (*oidc.Provider, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.provider != nil {
		return a.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	// The provider keeps the client from this context (not its deadline) for fetching keys.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, a.cfg.HTTPClient), a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover SSO server %s: %w", a.cfg.Issuer, err)
	}
	if err := p.Claims(&a.endpoint); err != nil {
		return nil, fmt.Errorf("read discovery document of %s: %w", a.cfg.Issuer, err)
	}
	a.provider = p
	return p, nil
}

func (a *App) verifier(p *oidc.Provider) *oidc.IDTokenVerifier {
	return p.VerifierContext(oidc.ClientContext(context.Background(), a.cfg.HTTPClient), &oidc.Config{ClientID: a.cfg.ClientID, Now: a.cfg.Now})
}
