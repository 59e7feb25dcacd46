package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/connector/connectors"
	"github.com/hallpass/hallpass/internal/storage"
)

// Upstream logins. A connection of another type than Database is served by a connector
// (internal/connector). LDAP checks the password typed on the login page; every other type
// sends the browser to the upstream, which sends it back to pathConnectionCallback, where
// the central session is created exactly as after a password login.
//
// Between the two, the pending login lives in a cookie of its own: the sealed login
// transaction, the connection, a random state and the connector's private data (PKCE
// verifier, nonce, SAML request ID), sealed like the login transaction. The state
// also travels through the upstream (OAuth2 state, SAML RelayState) and must come back
// equal to the cookie's, so an answer of the upstream is only accepted in the browser that
// asked for it (no login CSRF) and only once (the cookie is deleted on the callback).
const (
	pathConnectionCallback = "/connections/{name}/callback"
	pathSAMLMetadata       = "/connections/{name}/saml/metadata"

	// upstreamLoginLifetime bounds the time a user may spend at the upstream.
	upstreamLoginLifetime = 15 * time.Minute
	// upstreamCookiePrefix + the first stateCookieChars of the state names the pending
	// login's cookie, so sign-ins in several tabs do not overwrite each other.
	upstreamCookiePrefix = "hallpass_up_"
	stateCookieChars     = 16
	// A connector that failed to open (upstream down, metadata unreadable) is retried after
	// upstreamRetryFirst, doubling with every failure up to upstreamRetryMax (ADR 0022):
	// soon after a short outage, and a dead IdP still slows at most one login per retry.
	upstreamRetryFirst = time.Second
	upstreamRetryMax   = 15 * time.Second
	// chooserOpenTimeout bounds opening connectors to list their origins on the chooser.
	chooserOpenTimeout = 5 * time.Second
)

func connectionCallbackPath(name string) string { return config.ConnectionCallbackPath(name) }
func samlMetadataPath(name string) string       { return config.SAMLMetadataPath(name) }

// isCallbackType reports whether a connection type sends the browser to an upstream.
func isCallbackType(typ string) bool {
	return typ != config.ConnectionDatabase && typ != config.ConnectionLDAP
}

// upstreamCache holds the open connectors, one per connection. A connector is reopened
// when its connection's config or the issuer changes (a reload), and a failed open is
// retried with backoff (upstreamRetryDelay). The zero value is ready to use.
type upstreamCache struct {
	mu      sync.Mutex
	entries map[string]*upstreamEntry
	// httpClient reaches the upstreams; nil lets each connector build its own.
	httpClient *http.Client
}

// WithUpstreamHTTPClient sets the HTTP client connectors reach upstream IdPs with, instead
// of one per connector that trusts the connection's root CA. Tests use it to resolve their
// host names to loopback.
func WithUpstreamHTTPClient(c *http.Client) Option {
	return func(s *Server) { s.upstream.httpClient = c }
}

type upstreamEntry struct {
	key  string
	conn any
	err  error
	// failures counts the opens that failed in a row; retryAt is when the next may be
	// tried (moved on by the request that claims the retry, see connector).
	failures int
	retryAt  time.Time
}

// upstreamRetryDelay is the wait after the nth failed open in a row (n >= 1).
func upstreamRetryDelay(n int) time.Duration {
	if n > 5 {
		return upstreamRetryMax
	}
	return min(upstreamRetryFirst<<(n-1), upstreamRetryMax)
}

// connector returns the open connector of conn, opening it if needed.
func (s *Server) connector(ctx context.Context, st *state, conn config.Connection) (any, error) {
	raw, err := json.Marshal(conn)
	if err != nil {
		return nil, fmt.Errorf("encode connection %s: %w", conn.Name, err)
	}
	key := st.cfg.Issuer + "\x00" + string(raw)
	cached, failures, ok := s.upstream.claim(conn.Name, key, s.now())
	if ok {
		return cached.conn, cached.err
	}
	// Opened outside the lock, so a slow upstream delays only its own logins; two
	// concurrent first logins may both open it, and the later one is kept.
	opened, err := connectors.Open(ctx, conn, connector.Options{
		CallbackURL: st.endpoint(connectionCallbackPath(conn.Name)),
		MetadataURL: st.endpoint(samlMetadataPath(conn.Name)),
		HTTPClient:  s.upstream.httpClient,
		Logger:      s.logger,
		Now:         s.now,
	})
	e := &upstreamEntry{key: key, conn: opened, err: err}
	if err != nil {
		e.failures = failures + 1
		e.retryAt = s.now().Add(upstreamRetryDelay(e.failures))
	}
	s.upstream.store(conn.Name, e)
	return opened, err
}

// claim returns the cached entry of a connection with ok when it is to be used as it is: it
// was opened for this key, or its open failed and the next retry is not due. When a retry
// is due, the caller claims it (the entry's retryAt moves on, so concurrent requests keep
// the cached error meanwhile) and gets the number of failures so far.
func (c *upstreamCache) claim(name, key string, now time.Time) (e upstreamEntry, failures int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.entries[name]
	if cur == nil || cur.key != key {
		return upstreamEntry{}, 0, false
	}
	if cur.err == nil || now.Before(cur.retryAt) {
		return *cur, 0, true
	}
	cur.retryAt = now.Add(upstreamRetryDelay(cur.failures + 1))
	return upstreamEntry{}, cur.failures, false
}

func (c *upstreamCache) store(name string, e *upstreamEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*upstreamEntry{}
	}
	c.entries[name] = e
}

// upstreamFormTargets lists the origins the chooser's buttons may redirect to: the page's
// CSP form-action also governs the redirects that follow a form submission.
func (s *Server) upstreamFormTargets(f *loginFlow) []string {
	ctx, cancel := context.WithTimeout(context.Background(), chooserOpenTimeout)
	defer cancel()
	var out []string
	for _, name := range f.client.Connections {
		conn, ok := f.st.cfg.Connection(name)
		if !ok || !isCallbackType(conn.Type) {
			continue
		}
		c, err := s.connector(ctx, f.st, conn)
		if err != nil {
			continue // its button leads to an error page on this server
		}
		if o, ok := c.(connector.Origins); ok {
			out = append(out, o.LoginOrigins()...)
		}
	}
	return out
}

// pendingUpstream is the pending login of one browser at one upstream.
type pendingUpstream struct {
	State      string `json:"s"`
	Connection string `json:"c"`
	// TX is the sealed login transaction, as the login page had it.
	TX      string `json:"t"`
	Private []byte `json:"p,omitempty"`
	Expires int64  `json:"e"`
}

// startUpstreamLogin sends the browser to the upstream of conn.
func (s *Server) startUpstreamLogin(w http.ResponseWriter, r *http.Request, f *loginFlow, conn config.Connection) {
	// The chooser is a GET form, so the double-submit check of the password form does not
	// apply; the CSRF cookie set at /authorize must still be the transaction's, so a link
	// with someone else's transaction does not start a login in this browser.
	if v := f.st.cookies.value(r, csrfCookie); v == "" || subtle.ConstantTimeCompare([]byte(v), []byte(f.tx.CSRF)) != 1 {
		s.renderError(w, http.StatusForbidden, msgExpiredLogin)
		return
	}
	ctx := r.Context()
	cc, ok := s.callbackConnector(w, r, f.st, conn)
	if !ok {
		return
	}
	state, err := config.RandomToken(32)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	loginURL, private, err := cc.LoginURL(ctx, state)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("start login at connection %s: %w", conn.Name, err))
		return
	}
	expires := s.now().Add(upstreamLoginLifetime)
	sealed, err := f.st.keys.sealer.seal(purposeUpstreamLogin, pendingUpstream{State: state, Connection: conn.Name, TX: f.sealed, Private: private, Expires: expires.Unix()})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	http.SetCookie(w, s.upstreamCookie(f.st, conn.Name, state, sealed, int(upstreamLoginLifetime/time.Second)))
	s.logger.InfoContext(ctx, "login sent upstream", "connection", conn.Name, "client", f.client.ID)
	w.Header().Set("Location", loginURL)
	w.WriteHeader(http.StatusSeeOther)
}

// upstreamCookie is scoped to the connection's callback. A SAML IdP answers with a
// cross-site POST, which carries only SameSite=None cookies; those must be Secure, so an
// http issuer in dev mode falls back to Lax (enough for redirect-based upstreams).
func (s *Server) upstreamCookie(st *state, connection, state, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{ //nolint:gosec // G124: Secure is off only for an http issuer in dev mode, see above
		Name:     upstreamCookiePrefix + state[:stateCookieChars],
		Value:    value,
		Path:     st.prefix + "/connections/" + connection + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   st.secureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	if st.secureCookies {
		c.SameSite = http.SameSiteNoneMode
	}
	return c
}

const msgUpstreamExpired = "This sign-in has expired or was started in another browser. Go back to the application and sign in again."

// callbackSlot bounds the work of a SAML callback, which this server's CPU checks: XML
// parsing, signature checks and RSA decryption. It is bounded like password hashing, so a
// burst of forged responses (anyone can start a login) cannot take every core; past the
// bound the user is told to retry. The slot is taken before the pending login is, so that
// user still has it. Other types take no slot.
func (s *Server) callbackSlot(w http.ResponseWriter, r *http.Request, conn config.Connection) (release func(), ok bool) {
	if conn.Type != config.ConnectionSAML {
		return func() {}, true
	}
	release, ok = s.acquireVerification(r.Context())
	if !ok {
		s.metrics.logins.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", busyRetryAfter)
		s.renderError(w, http.StatusServiceUnavailable, msgBusy)
	}
	return release, ok
}

// handleConnectionCallback takes the browser back from the upstream (GET for OAuth2 and
// OIDC, POST for a SAML response) and finishes the login.
func (s *Server) handleConnectionCallback(w http.ResponseWriter, r *http.Request) {
	if !s.openPage(w, r, "This page") {
		return
	}
	st := s.state.Load()
	name := r.PathValue("name")
	conn, ok := st.cfg.Connection(name)
	if !ok || !isCallbackType(conn.Type) {
		s.renderError(w, http.StatusNotFound, "This sign-in method is not configured on this server.")
		return
	}
	release, ok := s.callbackSlot(w, r, conn)
	if !ok {
		return
	}
	defer release()
	state := r.Form.Get("state")
	if state == "" {
		state = r.Form.Get("RelayState")
	}
	pending, ok := s.takePendingUpstream(w, r, st, name, state)
	if !ok {
		s.renderError(w, http.StatusBadRequest, msgUpstreamExpired)
		return
	}
	// The browser forgets the pending login at once; storage makes sure that a copy of its
	// cookie and the upstream's answer, replayed to this or another replica, is refused too.
	first, err := s.store.UseOnce(r.Context(), "upstream-login:"+pending.State, s.now(), time.Unix(pending.Expires+1, 0))
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !first {
		s.logger.WarnContext(r.Context(), "upstream answer replayed", "connection", name)
		s.renderError(w, http.StatusBadRequest, msgUpstreamExpired)
		return
	}
	f, ok := s.loginFlowOf(w, st, pending.TX)
	if !ok {
		return
	}
	// The client's connections may have changed in a reload since /authorize.
	client := f.client
	if !slices.Contains(client.Connections, name) || (f.tx.Request.Connection != "" && f.tx.Request.Connection != name) {
		s.renderError(w, http.StatusBadRequest, "This application does not allow this sign-in method.")
		return
	}
	ctx := r.Context()
	cc, ok := s.callbackConnector(w, r, st, conn)
	if !ok {
		return
	}
	id, upstream, err := cc.HandleCallback(ctx, r, pending.Private)
	if err != nil {
		s.metrics.logins.WithLabelValues("failure").Inc()
		if msg := connector.UserMessage(err); msg != "" {
			s.logger.InfoContext(ctx, "upstream login refused", "connection", name, "client", client.ID, "err", err)
			s.renderError(w, http.StatusUnauthorized, fmt.Sprintf("Signing in with %s failed. %s", displayName(conn), msg))
			return
		}
		s.upstreamUnavailable(w, r, conn, err)
		return
	}
	amr := []string{amrFederated}
	if conn.TrustUpstreamMFA && upstreamDidMFA(id.AMR) {
		amr = withMFA(amr, amrFederated)
	}
	s.finishLogin(w, r, f, newSession{connection: conn.Name, claims: identityClaims(name, id), amr: amr, upstream: upstream})
}

// amrFederated marks a login the upstream authenticated. RFC 8176 has no value for it;
// "fed" is the one in common use (Microsoft Entra, Keycloak brokering).
const amrFederated = "fed"

func identityClaims(connection string, id connector.Identity) storage.Claims {
	return storage.Claims{
		Subject:       connector.Subject(connection, id.UserID),
		Username:      id.Username,
		Name:          id.Name,
		Email:         id.Email,
		EmailVerified: id.EmailVerified,
		Groups:        id.Groups,
	}
}

// takePendingUpstream reads and deletes the pending login that state names. ok is false
// when there is none, it is for another connection or state, or it has expired.
func (s *Server) takePendingUpstream(w http.ResponseWriter, r *http.Request, st *state, connection, state string) (pendingUpstream, bool) {
	if len(state) < stateCookieChars || len(state) > 128 {
		return pendingUpstream{}, false
	}
	ck, err := r.Cookie(upstreamCookiePrefix + state[:stateCookieChars])
	if err != nil {
		return pendingUpstream{}, false
	}
	http.SetCookie(w, s.upstreamCookie(st, connection, state, "", -1))
	var p pendingUpstream
	if err := st.keys.sealer.open(purposeUpstreamLogin, ck.Value, &p); err != nil {
		return pendingUpstream{}, false
	}
	ok := subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) == 1 &&
		p.Connection == connection && s.now().Unix() <= p.Expires
	return p, ok
}

// callbackConnector opens the connector of conn, which redirects to an upstream; when it
// cannot, it has answered the request and ok is false.
func (s *Server) callbackConnector(w http.ResponseWriter, r *http.Request, st *state, conn config.Connection) (cc connector.CallbackConnector, ok bool) {
	c, err := s.connector(r.Context(), st, conn)
	if err != nil {
		s.upstreamUnavailable(w, r, conn, err)
		return nil, false
	}
	if cc, ok = c.(connector.CallbackConnector); !ok {
		s.serverError(w, r, fmt.Errorf("connection %s does not redirect to an upstream", conn.Name))
	}
	return cc, ok
}

// upstreamUnavailable shows that the upstream could not be used, and logs why.
func (s *Server) upstreamUnavailable(w http.ResponseWriter, r *http.Request, conn config.Connection, err error) {
	s.logger.ErrorContext(r.Context(), "upstream unavailable", "connection", conn.Name, "err", err)
	s.renderError(w, http.StatusBadGateway, fmt.Sprintf("Signing in with %s is not possible right now: the identity provider could not be reached. Please try again later.", displayName(conn)))
}

// checkCredentials checks a password typed on the login page: against the users of a
// Database connection, or by the directory of an LDAP connection.
func (s *Server) checkCredentials(ctx context.Context, st *state, conn config.Connection, username, password string) (storage.Claims, bool, error) {
	if conn.Type != config.ConnectionLDAP {
		return s.checkPassword(ctx, conn, username, password)
	}
	c, err := s.connector(ctx, st, conn)
	if err != nil {
		return storage.Claims{}, false, err
	}
	pc, ok := c.(connector.PasswordConnector)
	if !ok {
		return storage.Claims{}, false, fmt.Errorf("connection %s does not check passwords", conn.Name)
	}
	id, ok, err := pc.Login(ctx, username, password)
	if err != nil || !ok {
		return storage.Claims{}, false, err
	}
	return identityClaims(conn.Name, id), true, nil
}

// handleSAMLMetadata serves a SAML connection's service provider metadata, which the IdP's
// administrator imports; its URL is also the SP's entity ID.
func (s *Server) handleSAMLMetadata(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	conn, ok := st.cfg.Connection(r.PathValue("name"))
	if !ok || conn.Type != config.ConnectionSAML {
		http.NotFound(w, r)
		return
	}
	c, err := s.connector(r.Context(), st, conn)
	if err != nil {
		s.upstreamUnavailable(w, r, conn, err)
		return
	}
	mc, ok := c.(connector.MetadataConnector)
	if !ok {
		http.NotFound(w, r)
		return
	}
	contentType, body, err := mc.Metadata()
	if err != nil {
		s.serverError(w, r, fmt.Errorf("build SAML metadata of %s: %w", conn.Name, err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(body) //nolint:gosec // G705: the SP metadata the connector generated, served as XML
}
