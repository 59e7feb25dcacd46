// Package server is Hallpass's OpenID Connect provider: the central SSO session, the
// authorization, token, userinfo, revocation and introspection endpoints, the login page of
// the Database connection, and logout.
//
// A Server serves one config at a time from an atomic pointer, so Apply swaps in a new
// config (clients, connections, keys, lifetimes) between two requests without a restart;
// sessions live in storage and survive every reload.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// Server is the OpenID provider. It is an http.Handler.
type Server struct {
	store  storage.Storage
	now    func() time.Time
	logger *slog.Logger
	state  atomic.Pointer[state]
	mux    *http.ServeMux

	metrics *metrics
	// upstream holds the open connectors of upstream connections (upstream.go).
	upstream upstreamCache
	// backchannel delivers logout tokens when sessions end (backchannel.go).
	backchannel *backchannel
	// verifySlots bounds concurrent password hashing (throttle.go).
	verifySlots chan struct{}
	// mailSlots bounds the mail being looked up and sent in the background (email.go).
	mailSlots chan struct{}
}

// Option configures a Server.
type Option func(*Server)

// WithClock replaces time.Now, so tests can cross session and token lifetimes.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// state is everything derived from one config and key set. It is immutable once built.
type state struct {
	cfg    *config.Config
	issuer *url.URL
	// prefix is the issuer's path ("" or "/tenant"), under which every endpoint is mounted.
	prefix string
	keys   *keySet
	// secureCookies is false only for an http issuer in dev mode, where browsers would drop
	// a Secure cookie.
	secureCookies bool
	// cookies names and scopes the browser-wide cookies for this issuer (cookies.go).
	cookies cookieJar
	// corsOrigins is the union of every client's web origins, used to answer CORS
	// preflights that carry no client identity.
	corsOrigins map[string]bool
	// trustedProxies may name the client address in X-Forwarded-For (throttle.go).
	trustedProxies []netip.Prefix
}

// New builds a server for a validated config and its signing keys.
func New(cfg *config.Config, keys *config.SigningKeys, store storage.Storage, opts ...Option) (*Server, error) {
	s := &Server{store: store, now: time.Now, logger: slog.Default(), metrics: newMetrics(), backchannel: newBackchannel(),
		verifySlots: make(chan struct{}, maxConcurrentVerifications), mailSlots: make(chan struct{}, maxPendingMail)}
	for _, o := range opts {
		o(s)
	}
	if err := s.Apply(cfg, keys); err != nil {
		return nil, err
	}
	s.mux = s.routes()
	s.backchannel.start(s)
	return s, nil
}

// Apply validates a config and its keys and makes them the ones served, atomically. On
// error the previous config keeps serving.
func (s *Server) Apply(cfg *config.Config, keys *config.SigningKeys) error {
	st, err := newState(cfg, keys)
	if err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	if old := s.state.Load(); old != nil && old.cfg.Storage != cfg.Storage {
		// The open storage holds every session; switching it under live traffic would log
		// everyone out, so it takes a restart.
		s.logger.Warn("storage settings changed; they take effect at the next restart")
	}
	s.state.Store(st)
	return nil
}

// Config returns the config being served.
func (s *Server) Config() *config.Config { return s.state.Load().cfg }

func newState(cfg *config.Config, keys *config.SigningKeys) (*state, error) {
	if cfg == nil || keys == nil {
		return nil, errors.New("config and signing keys are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ks, err := newKeySet(keys, cfg.Signing.Algorithm)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("parse issuer: %w", err)
	}
	st := &state{
		cfg:           cfg,
		issuer:        u,
		prefix:        strings.TrimSuffix(u.Path, "/"),
		keys:          ks,
		secureCookies: !(cfg.DevMode && u.Scheme == "http"),
		corsOrigins:   map[string]bool{},
	}
	st.cookies = newCookieJar(u, st.secureCookies)
	for _, c := range cfg.Clients {
		for _, o := range c.WebOrigins {
			st.corsOrigins[o] = true
		}
	}
	if st.trustedProxies, err = parseTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	return st, nil
}

// endpoint returns the absolute URL of one of the server's paths.
func (st *state) endpoint(path string) string {
	return strings.TrimSuffix(st.cfg.Issuer, "/") + path
}

// Endpoint paths, relative to the issuer.
const (
	pathDiscovery      = "/.well-known/openid-configuration"
	pathASMetadata     = "/.well-known/oauth-authorization-server"
	pathJWKS           = "/jwks"
	pathAuthorize      = "/authorize"
	pathToken          = "/token"
	pathUserinfo       = "/userinfo"
	pathRevoke         = "/revoke"
	pathIntrospect     = "/introspect"
	pathEndSession     = "/oidc/logout"
	pathAuth0Logout    = "/v2/logout"
	pathLogin          = "/login"
	pathSignup         = "/signup"
	pathLoginStylesCSS = "/assets/login.css"
	// The device authorization grant's endpoints have Auth0's paths.
	pathDeviceAuthorization = "/oauth/device/code"
	pathDevice              = "/activate"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathDiscovery, s.handleDiscovery)
	mux.HandleFunc("GET "+pathASMetadata, s.handleDiscovery)
	mux.HandleFunc("GET "+pathJWKS, s.handleJWKS)
	mux.HandleFunc(pathAuthorize, s.handleAuthorize)
	mux.HandleFunc(pathToken, s.handleToken)
	mux.HandleFunc(pathUserinfo, s.handleUserinfo)
	mux.HandleFunc(pathRevoke, s.handleRevoke)
	mux.HandleFunc(pathIntrospect, s.handleIntrospect)
	mux.HandleFunc(pathEndSession, s.handleEndSession)
	mux.HandleFunc(pathAuth0Logout, s.handleAuth0Logout)
	mux.HandleFunc("GET "+pathFederatedReturn, s.handleFederatedReturn)
	mux.HandleFunc(pathLogin, s.handleLogin)
	mux.HandleFunc(pathConnectionCallback, s.handleConnectionCallback)
	mux.HandleFunc("GET "+pathSAMLMetadata, s.handleSAMLMetadata)
	mux.HandleFunc(pathSignup, s.handleSignup)
	mux.HandleFunc(pathForgotPassword, s.handleForgotPassword)
	mux.HandleFunc(pathResetPassword, s.handleResetPassword)
	mux.HandleFunc("GET "+pathVerifyEmail, s.handleVerifyEmail)
	mux.HandleFunc(pathMFA, s.handleMFA)
	mux.HandleFunc(pathAccount, s.handleAccount)
	mux.HandleFunc(pathDeviceAuthorization, s.handleDeviceAuthorization)
	mux.HandleFunc(pathDevice, s.handleDevice)
	mux.HandleFunc("GET "+pathLoginStylesCSS, s.handleStyles)
	mux.HandleFunc("GET "+pathPasskeyScript, s.handlePasskeyScript)
	return mux
}

// Request bodies are small forms, except a SAML response posted to a connection's
// callback (a signed, possibly encrypted assertion).
const (
	maxBodyBytes         = 64 << 10
	maxCallbackBodyBytes = 1 << 20
)

// limitBody refuses a body announced larger than the path's limit with 413, and caps the
// reading of any other at that limit (a form that does not fit fails to parse).
func limitBody(w http.ResponseWriter, r *http.Request) bool {
	limit := int64(maxBodyBytes)
	if strings.HasPrefix(r.URL.Path, "/connections/") && strings.HasSuffix(r.URL.Path, "/callback") {
		limit = maxCallbackBodyBytes
	}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	return true
}

// ServeHTTP strips the issuer's path prefix, adds the security headers, limits the request
// body and turns a panic into a plain 500, so no stack trace ever reaches a client.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	defer func() {
		if v := recover(); v != nil {
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.logger.Error("request panicked", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "internal server error", http.StatusInternalServerError)
		}
	}()
	setSecurityHeaders(w, st)
	if st.prefix != "" {
		rest, ok := strings.CutPrefix(r.URL.Path, st.prefix)
		if !ok || (rest != "" && rest[0] != '/') {
			http.NotFound(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		r2.URL = &u
		r = r2
	}
	if !limitBody(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}
