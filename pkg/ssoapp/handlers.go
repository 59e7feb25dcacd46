package ssoapp

import (
	"context"
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Messages of the failure page. The first two are the seed scenario's, word for word.
const (
	msgTargetRequired     = "target_url is required for this endpoint"
	msgConnectionRequired = "connection is required for this endpoint"
	msgLoginExpired       = "This sign-in was not started in this browser, or took longer than 10 minutes. Please sign in again."
	msgLoginFailed        = "The sign-in could not be completed. Please try again."
	msgUnavailable        = "The sign-in service is unavailable. Please try again shortly."
	maxConnectionLength   = 128
)

type contextKey struct{}

// UserFromContext returns the user RequireLogin put in the request's context.
func UserFromContext(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(contextKey{}).(*User)
	return u, ok
}

// CurrentUser returns the user of the request's application session, if any.
func (a *App) CurrentUser(r *http.Request) (*User, bool) {
	c, err := r.Cookie(a.cfg.CookieName)
	if err != nil || c.Value == "" {
		return nil, false
	}
	return a.sessions.get(c.Value)
}

// RequireLogin serves next to signed-in users, with the user in the request's context, and
// sends anyone else to sign in, coming back to the page they asked for.
func (a *App) RequireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := a.CurrentUser(r); ok {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, u)))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "Sign in first.", http.StatusUnauthorized)
			return
		}
		target, err := localTarget(r.URL.RequestURI())
		if err != nil {
			target = "/"
		}
		a.startLogin(w, r, target, "")
	})
}

// handleSSO is the server-side SSO endpoint of the seed scenario: a signed-in user goes
// straight to target_url; anyone else goes to the provider with the given connection,
// where a valid central session signs them in without a login page.
func (a *App) handleSSO(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("target_url") == "" {
		a.fail(w, r, msgTargetRequired)
		return
	}
	target, err := localTarget(q.Get("target_url"))
	if err != nil {
		a.fail(w, r, err.Error())
		return
	}
	connection := q.Get("connection")
	if connection == "" {
		a.fail(w, r, msgConnectionRequired)
		return
	}
	if len(connection) > maxConnectionLength {
		a.fail(w, r, "connection is too long")
		return
	}
	if _, ok := a.CurrentUser(r); ok {
		http.Redirect(w, r, target, http.StatusFound) //nolint:gosec // G710: localTarget admits local paths only
		return
	}
	a.startLogin(w, r, target, connection)
}

// handleLogin starts a sign-in; target_url (default /) and connection are optional.
func (a *App) handleLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := "/"
	if t := q.Get("target_url"); t != "" {
		var err error
		if target, err = localTarget(t); err != nil {
			a.fail(w, r, err.Error())
			return
		}
	}
	connection := q.Get("connection")
	if len(connection) > maxConnectionLength {
		a.fail(w, r, "connection is too long")
		return
	}
	a.startLogin(w, r, target, connection)
}

func (a *App) loginCookieName() string { return a.cfg.CookieName + "_login" }

// startLogin sends the browser to the provider's authorization endpoint. The login's ID is
// both the state parameter and the value of a cookie, so that the callback only finishes a
// login that this browser started (no login CSRF).
func (a *App) startLogin(w http.ResponseWriter, r *http.Request, target, connection string) {
	oc, _, err := a.oauth2Config(r.Context())
	if err != nil {
		a.cfg.Logger.Error("Cannot start sign-in", "error", err)
		http.Error(w, msgUnavailable, http.StatusServiceUnavailable)
		return
	}
	l := pendingLogin{
		State: randomID(), Verifier: oauth2.GenerateVerifier(), Nonce: randomID(),
		Target: target, Connection: connection, Expires: a.cfg.Now().Add(loginTimeout).Unix(),
	}
	sealed, err := a.sealPending(l)
	if err != nil {
		a.cfg.Logger.Error("Cannot start sign-in", "error", err)
		http.Error(w, msgUnavailable, http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, a.cookie(a.loginCookieName(), sealed, int(loginTimeout.Seconds())))
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(l.Verifier), oidc.Nonce(l.Nonce)}
	if connection != "" {
		opts = append(opts, oauth2.SetAuthURLParam("connection", connection))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oc.AuthCodeURL(l.State, opts...), http.StatusFound) //nolint:gosec // G710: the provider's own authorization endpoint
}

// handleCallback finishes a sign-in: checks state against the browser's login cookie,
// exchanges the code with the PKCE verifier, verifies the ID token and its nonce, and
// starts an application session.
func (a *App) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(a.loginCookieName())
	http.SetCookie(w, a.cookie(a.loginCookieName(), "", -1))
	if err != nil || state == "" {
		a.fail(w, r, msgLoginExpired)
		return
	}
	l, err := a.openPending(c.Value, a.cfg.Now())
	if err != nil || subtle.ConstantTimeCompare([]byte(l.State), []byte(state)) != 1 {
		a.fail(w, r, msgLoginExpired)
		return
	}
	// RFC 9207: a response naming another issuer is a mix-up attack, whatever it carries.
	// Hallpass advertises authorization_response_iss_parameter_supported, so a response
	// without iss did not come from it either.
	if iss := q.Get("iss"); iss != a.cfg.Issuer {
		a.fail(w, r, "The sign-in response came from an unexpected server.")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The SSO server did not sign you in: " + e
		if d := q.Get("error_description"); d != "" {
			msg += " (" + d + ")"
		}
		a.fail(w, r, msg)
		return
	}
	code := q.Get("code")
	if code == "" {
		a.fail(w, r, msgLoginFailed)
		return
	}

	user, msg := a.redeem(r.Context(), code, l)
	if user == nil {
		a.fail(w, r, msg)
		return
	}
	// A new ID on every sign-in: a session ID known before signing in is worth nothing.
	if old, err := r.Cookie(a.cfg.CookieName); err == nil {
		a.sessions.delete(old.Value)
	}
	id := a.sessions.add(user, a.cfg.SessionLifetime)
	if id == "" {
		a.fail(w, r, msgUnavailable)
		return
	}
	http.SetCookie(w, a.sessionCookie(id, int(a.cfg.SessionLifetime.Seconds())))
	http.Redirect(w, r, l.Target, http.StatusFound)
}

// redeem exchanges the code with the login's PKCE verifier and verifies the ID token and
// its nonce. It returns the signed-in user, or nil and the message to show.
func (a *App) redeem(ctx context.Context, code string, l pendingLogin) (*User, string) {
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, a.cfg.HTTPClient)
	oc, p, err := a.oauth2Config(ctx)
	if err != nil {
		a.cfg.Logger.Error("Cannot finish sign-in", "error", err)
		return nil, msgUnavailable
	}
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		a.cfg.Logger.Warn("Exchange authorization code", "error", err)
		return nil, msgLoginFailed
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		a.cfg.Logger.Warn("Token response has no ID token")
		return nil, msgLoginFailed
	}
	idt, err := a.verifier(p).Verify(ctx, raw)
	if err != nil {
		a.cfg.Logger.Warn("Verify ID token", "error", err)
		return nil, msgLoginFailed
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		a.cfg.Logger.Warn("ID token nonce does not match the login")
		return nil, msgLoginFailed
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, msgLoginFailed
	}
	return &User{
		Subject: idt.Subject, Name: str(claims["name"]), Email: str(claims["email"]),
		Claims: claims, IDToken: raw, SessionID: str(claims["sid"]), SignedInAt: a.cfg.Now(),
	}, ""
}

func (a *App) sessionCookie(value string, maxAge int) *http.Cookie {
	return a.cookie(a.cfg.CookieName, value, maxAge)
}

// cookie is every cookie the application sets: HttpOnly, SameSite=Lax, and Secure unless
// the application itself is served over http (development), where browsers drop Secure
// cookies.
func (a *App) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{ //nolint:gosec // G124: Secure is off only for an http application, see above
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: a.secureCookies, SameSite: http.SameSiteLaxMode,
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// handleLogout ends the application session and sends the browser to the provider's
// end_session_endpoint (OpenID Connect RP-Initiated Logout), which ends the central
// session and returns to BaseURL + LogoutReturnPath. It accepts POST only: the session
// cookie is SameSite=Lax, so another site cannot sign the user out.
func (a *App) handleLogout(w http.ResponseWriter, r *http.Request) {
	returnTo := a.cfg.BaseURL + a.cfg.LogoutReturnPath
	var idToken string
	if c, err := r.Cookie(a.cfg.CookieName); err == nil {
		if u, ok := a.sessions.get(c.Value); ok {
			idToken = u.IDToken
		}
		a.sessions.delete(c.Value)
	}
	http.SetCookie(w, a.sessionCookie("", -1))
	if _, err := a.discover(r.Context()); err != nil || a.endpoint.EndSession == "" {
		// Without the provider only the application session can end.
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
		return
	}
	q := url.Values{"client_id": {a.cfg.ClientID}, "post_logout_redirect_uri": {returnTo}}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	http.Redirect(w, r, a.endpoint.EndSession+"?"+q.Encode(), http.StatusSeeOther)
}

// fail sends the browser to the failure page with a message, as the seed's Rails endpoint
// does (redirect_to '/auth/failure?message=...').
func (a *App) fail(w http.ResponseWriter, r *http.Request, message string) {
	http.Redirect(w, r, a.cfg.FailurePath+"?"+url.Values{"message": {message}}.Encode(), http.StatusFound)
}

var failurePage = template.Must(template.New("failure").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
.message{padding:1rem;border-left:4px solid #b42318;background:#fef3f2}</style></head>
<body><h1>Sign-in failed</h1><p class="message" id="failure-message">{{.}}</p><p><a href="/">Back to the home page</a></p></body></html>
`))

// handleFailure shows why a sign-in was refused. The message comes from the query string,
// so anyone can craft one: it is rendered as text, never as markup, and bounded.
func handleFailure(w http.ResponseWriter, r *http.Request) {
	msg := r.URL.Query().Get("message")
	if msg == "" {
		msg = "The sign-in failed."
	}
	if len(msg) > 500 {
		msg = msg[:500]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(http.StatusBadRequest)
	_ = failurePage.Execute(w, msg)
}
