package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/passhash"
	"github.com/hallpass/hallpass/internal/storage"
)

// Messages the user sees. The credentials error is the same for an unknown user and a
// wrong password, so the page does not reveal which usernames exist.
const (
	msgBadCredentials  = "Wrong username or password."
	msgExpiredLogin    = "This sign-in page has expired. Go back to the application and sign in again."
	msgFormExpired     = "This form has expired. Please submit it again."
	msgBusy            = "The server is busy. Please try again in a moment."
	minPasswordLength  = 8
	maxCredentialBytes = 1024
)

// loginFlow is one request on the login or sign-up page, with its transaction opened.
type loginFlow struct {
	st     *state
	tx     loginTransaction
	sealed string
	client config.Client
}

// openLoginFlow reads the transaction of a login page request; it renders the error page
// itself and returns false when the request cannot continue.
func (s *Server) openLoginFlow(w http.ResponseWriter, r *http.Request) (*loginFlow, bool) {
	if !s.openPage(w, r, "This page") {
		return nil, false
	}
	return s.loginFlowOf(w, s.state.Load(), r.Form.Get("tx"))
}

// loginFlowOf opens a sealed login transaction, rendering the error page itself when the
// request cannot continue.
func (s *Server) loginFlowOf(w http.ResponseWriter, st *state, sealed string) (*loginFlow, bool) {
	tx, err := openTransaction(st, sealed, s.now())
	if err != nil {
		s.renderError(w, http.StatusBadRequest, msgExpiredLogin)
		return nil, false
	}
	// The client may have been changed or removed by a reload since /authorize.
	client, ok := st.client(tx.Request.ClientID)
	if !ok || !tx.Request.acceptedBy(client) {
		s.renderError(w, http.StatusBadRequest, "The application of this sign-in is no longer registered.")
		return nil, false
	}
	return &loginFlow{st: st, tx: tx, sealed: sealed, client: client}, true
}

// connection picks the connection of this page: the one the request named, else the one
// chosen on the chooser, else the client's only one. ok is false when the user must choose.
func (f *loginFlow) connection(chosen string) (config.Connection, bool) {
	name := f.tx.Request.Connection
	if name == "" && slices.Contains(f.client.Connections, chosen) {
		name = chosen
	}
	if name == "" && len(f.client.Connections) == 1 {
		name = f.client.Connections[0]
	}
	if name == "" {
		return config.Connection{}, false
	}
	return f.st.cfg.Connection(name)
}

func (f *loginFlow) pageURL(path string, conn string) string {
	q := url.Values{"tx": {f.sealed}}
	if conn != "" {
		q.Set("connection", conn)
	}
	return f.st.endpoint(path) + "?" + q.Encode()
}

// showPage renders the chooser, the password form or the sign-up form.
func (s *Server) showPage(w http.ResponseWriter, f *loginFlow, status int, signup bool, conn config.Connection, data pageData) {
	data.ClientName = f.client.Name
	data.TX, data.CSRF = f.sealed, f.tx.CSRF
	data.LoginURL = f.st.endpoint(pathLogin)
	data.Heading = "Sign in"
	if conn.Name == "" {
		for _, name := range f.client.Connections {
			c, _ := f.st.cfg.Connection(name)
			data.Choices = append(data.Choices, connectionChoice{Name: c.Name, DisplayName: displayName(c)})
		}
	} else {
		data.Connection = connectionChoice{Name: conn.Name, DisplayName: displayName(conn)}
		data.Signup = signup
		if f.tx.Request.Connection == "" && len(f.client.Connections) > 1 {
			data.BackURL = f.pageURL(pathLogin, "")
		}
		if signup {
			data.Heading = "Create your account"
			data.FormURL = f.st.endpoint(pathSignup)
			data.BackURL = f.pageURL(pathLogin, conn.Name)
		} else {
			data.FormURL = f.st.endpoint(pathLogin)
			var err error
			if data.Passkey, err = s.passkeySignIn(f, conn); err != nil {
				s.logger.Error("passkey sign-in not offered", "connection", conn.Name, "err", err)
			}
			if conn.Database != nil && conn.Database.SignupEnabled {
				data.SignupURL = f.pageURL(pathSignup, conn.Name)
			}
			if resetAvailable(f.st, conn) {
				data.ForgotURL = f.pageURL(pathForgotPassword, conn.Name)
			}
		}
		if data.Username == "" {
			data.Username = f.tx.Request.LoginHint
		}
	}
	// After the form post the browser is redirected to the client, which form-action must
	// allow as well.
	targets := []string{f.tx.Request.RedirectURI}
	if conn.Name == "" {
		targets = append(targets, s.upstreamFormTargets(f)...)
	}
	s.render(w, f.st, status, "login", &data, passkeyCSP(f.st, data.Passkey, targets...))
}

func displayName(c config.Connection) string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

// handleLogin shows the login page (GET) and checks a password (POST).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := s.openLoginFlow(w, r)
	if !ok {
		return
	}
	if len(f.client.Connections) == 0 {
		s.renderError(w, http.StatusBadRequest, "This application has no sign-in method enabled.")
		return
	}
	conn, chosen := f.connection(r.Form.Get("connection"))
	if chosen && isCallbackType(conn.Type) {
		s.startUpstreamLogin(w, r, f, conn)
		return
	}
	if r.Method == http.MethodGet || !chosen {
		s.showPage(w, f, http.StatusOK, false, conn, pageData{})
		return
	}
	if !checkCSRF(r, f.st, f.tx) {
		s.showPage(w, f, http.StatusForbidden, false, conn, pageData{Error: msgFormExpired})
		return
	}
	if r.PostForm.Has("credential") {
		s.loginWithPasskey(w, r, f, conn)
		return
	}
	s.loginWithPassword(w, r, f, conn)
}

// loginWithPassword checks the username and password of the login form, throttled per
// user and per client address, and finishes the login when they are right.
func (s *Server) loginWithPassword(w http.ResponseWriter, r *http.Request, f *loginFlow, conn config.Connection) {
	// Normalized once, so the throttle and the lookup see the same name.
	username, password := normalizeUsername(conn, r.PostForm.Get("username")), r.PostForm.Get("password")
	ctx := r.Context()
	keys := loginThrottleKeys(conn.Name, s.throttleUsername(ctx, f.st, conn, username), s.clientIP(r))
	throttled := func(wait time.Duration) {
		s.metrics.logins.WithLabelValues("throttled").Inc()
		secs := waitSeconds(wait)
		s.showPage(w, f, http.StatusTooManyRequests, false, conn, pageData{Username: username,
			Error: fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", secs)})
	}
	wait, before, err := s.throttleWait(ctx, keys)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if wait > 0 {
		throttled(wait)
		return
	}
	// Only a Database connection hashes here; LDAP's directory checks the password.
	release, ok := func() {}, true
	if conn.Type == config.ConnectionDatabase {
		release, ok = s.acquireVerification(ctx)
	}
	if !ok {
		s.metrics.logins.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", busyRetryAfter)
		s.showPage(w, f, http.StatusServiceUnavailable, false, conn, pageData{Username: username, Error: msgBusy})
		return
	}
	// The attempt counts before the password is checked, so parallel attempts cannot all
	// pass the check above.
	if ok, err := s.reserveAttempt(ctx, keys, before); err != nil || !ok {
		release()
		if err != nil {
			s.serverError(w, r, err)
		} else {
			throttled(time.Second)
		}
		return
	}
	claims, ok, err := s.checkCredentials(ctx, f.st, conn, username, password)
	release()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !ok {
		if err := s.recordLoginFailure(ctx, keys); err != nil {
			s.serverError(w, r, err)
			return
		}
		s.metrics.logins.WithLabelValues("failure").Inc()
		s.logger.InfoContext(ctx, "login failed", "connection", conn.Name, "client", f.client.ID)
		s.showPage(w, f, http.StatusUnauthorized, false, conn, pageData{Username: username, Error: msgBadCredentials})
		return
	}
	if err := s.resetThrottle(ctx, keys); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.finishLogin(w, r, f, newSession{connection: conn.Name, claims: claims, amr: []string{amrPassword}})
}

// normalizeUsername is a typed username as throttled and looked up: surrounding whitespace
// trimmed and inner runs of whitespace collapsed to one space, so " alice" and "alice "
// are not separate throttle buckets of one user. A directory (LDAP) matches usernames
// case-insensitively, so there it is case-folded as well; Database usernames are exact.
func normalizeUsername(conn config.Connection, username string) string {
	username = strings.Join(strings.Fields(username), " ")
	if conn.Type == config.ConnectionLDAP {
		username = strings.ToLower(username)
	}
	return username
}

// checkPassword looks the user up in the connection's imported users, then among the
// users who signed up, and verifies the password; an unknown user is verified against a
// dummy hash so both failures take the same time.
func (s *Server) checkPassword(ctx context.Context, conn config.Connection, username, password string) (storage.Claims, bool, error) {
	if username == "" || len(username) > maxCredentialBytes || len(password) > maxCredentialBytes {
		_, _ = passhash.Verify(passhash.Dummy(), password)
		return storage.Claims{}, false, nil
	}
	hash, claims, found, err := s.findUser(ctx, conn, username)
	if err != nil {
		return storage.Claims{}, false, err
	}
	if !found {
		_, _ = passhash.Verify(passhash.Dummy(), password)
		return storage.Claims{}, false, nil
	}
	ok, err := passhash.Verify(hash, password)
	if err != nil {
		// A malformed hash in the users Secret is an operator problem, not the user's: log
		// it and answer like a wrong password.
		s.logger.ErrorContext(ctx, "user has an unusable password hash", "connection", conn.Name, "err", err)
		return storage.Claims{}, false, nil
	}
	return claims, ok, nil
}

func (s *Server) findUser(ctx context.Context, conn config.Connection, username string) (hash string, claims storage.Claims, found bool, err error) {
	for _, u := range conn.Database.Users {
		if u.Username == username {
			return u.PasswordHash, storage.Claims{
				Subject:       subject(conn.Name, u.Username),
				Username:      u.Username,
				Name:          u.Name,
				Email:         u.Email,
				EmailVerified: u.EmailVerified,
				Groups:        u.Groups,
			}, true, nil
		}
	}
	if !conn.Database.SignupEnabled {
		return "", storage.Claims{}, false, nil
	}
	u, err := s.store.GetUser(ctx, conn.Name, username)
	if errors.Is(err, storage.ErrNotFound) {
		return "", storage.Claims{}, false, nil
	}
	if err != nil {
		return "", storage.Claims{}, false, fmt.Errorf("load user: %w", err)
	}
	return u.PasswordHash, u.Claims, true, nil
}

// subject is the stable `sub` of a database user: unique across connections.
func subject(connection, username string) string { return connection + "|" + username }

// finishLogin is the end of every first factor, a password or an upstream's answer: it
// asks for a second factor where one is needed, else starts the central session with the
// client in it and answers the authorization request.
func (s *Server) finishLogin(w http.ResponseWriter, r *http.Request, f *loginFlow, ns newSession) {
	if s.askSecondFactor(w, r, f, mfaTransaction{Connection: ns.connection, Claims: ns.claims, AMR: ns.amr, Upstream: ns.upstream}) {
		return
	}
	sess, err := s.startLoginSession(r.Context(), w, r, f, ns)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.completeAuthorization(w, r, f.st, &f.tx.Request, sess)
}

// startLoginSession starts the central session of a completed sign-in.
func (s *Server) startLoginSession(ctx context.Context, w http.ResponseWriter, r *http.Request, f *loginFlow, ns newSession) (storage.Session, error) {
	ns.client, ns.reusable = f.client.ID, f.client.SingleSignOn
	sess, err := s.startSession(ctx, w, r, f.st, ns)
	if err != nil {
		return storage.Session{}, err
	}
	s.metrics.logins.WithLabelValues("success").Inc()
	s.logger.InfoContext(ctx, "login succeeded", "connection", ns.connection, "client", f.client.ID, "sid", sess.SID, "amr", sess.AMR)
	return sess, nil
}

// handleSignup registers a user into a Database connection that allows sign-up.
func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	f, ok := s.openLoginFlow(w, r)
	if !ok {
		return
	}
	conn, chosen := f.connection(r.Form.Get("connection"))
	if !chosen || conn.Type != config.ConnectionDatabase || !conn.Database.SignupEnabled {
		s.renderError(w, http.StatusBadRequest, "Sign-up is not available for this application.")
		return
	}
	if r.Method == http.MethodGet {
		s.showPage(w, f, http.StatusOK, true, conn, pageData{})
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	retry := func(status int, msg string) {
		s.showPage(w, f, status, true, conn, pageData{Username: username, Email: email, Error: msg})
	}
	if !checkCSRF(r, f.st, f.tx) {
		retry(http.StatusForbidden, msgFormExpired)
		return
	}
	if problem := signupProblem(username, email, password); problem != "" {
		retry(http.StatusBadRequest, problem)
		return
	}
	ctx := r.Context()
	if !s.admitSignup(w, r, retry) {
		return
	}
	if _, _, found, err := s.findUser(ctx, conn, username); err != nil {
		s.serverError(w, r, err)
		return
	} else if found {
		retry(http.StatusConflict, "This username is taken.")
		return
	}
	hash, ok := s.hashNewPassword(ctx, w, r, password, retry)
	if !ok {
		return
	}
	claims := storage.Claims{Subject: subject(conn.Name, username), Username: username, Email: email}
	err := s.store.CreateUser(ctx, storage.User{Connection: conn.Name, Username: username, PasswordHash: hash, Claims: claims, CreatedAt: s.now()})
	if errors.Is(err, storage.ErrAlreadyExists) {
		retry(http.StatusConflict, "This username is taken.")
		return
	}
	if err != nil {
		s.serverError(w, r, fmt.Errorf("create user: %w", err))
		return
	}
	s.logger.InfoContext(ctx, "user signed up", "connection", conn.Name, "client", f.client.ID)
	if email != "" && f.st.cfg.Email != nil {
		s.inBackground(ctx, "send verification link", func(ctx context.Context) error {
			return s.sendEmailLink(ctx, f.st, storage.EmailToken{Purpose: storage.EmailTokenVerify, Connection: conn.Name, Username: username, Email: email})
		})
	}
	s.finishLogin(w, r, f, newSession{connection: conn.Name, claims: claims, amr: []string{amrPassword}})
}

// signupProblem says what is wrong with the fields of a sign-up form, or "".
func signupProblem(username, email, password string) string {
	switch {
	case !validUsername(username):
		return "Choose a username of 1 to 64 letters, digits, dots, dashes, underscores or @."
	case len(password) < minPasswordLength || len(password) > maxCredentialBytes:
		return fmt.Sprintf("Choose a password of at least %d characters.", minPasswordLength)
	case email != "" && !validMailAddress(email):
		return "Enter a valid email address or leave it empty."
	}
	return ""
}

// admitSignup counts a sign-up attempt against its client address. Every attempt counts: each
// costs a password hash and may probe which usernames exist. When the address is over its
// budget, or the count fails, it has answered the request and returns false.
func (s *Server) admitSignup(w http.ResponseWriter, r *http.Request, retry func(status int, msg string)) bool {
	ctx := r.Context()
	keys := signupThrottleKeys(s.clientIP(r))
	wait, before, err := s.throttleWait(ctx, keys)
	if err != nil {
		s.serverError(w, r, err)
		return false
	}
	if ok, err := s.reserveAttempt(ctx, keys, before); err != nil {
		s.serverError(w, r, err)
		return false
	} else if !ok || wait > 0 {
		retry(http.StatusTooManyRequests, fmt.Sprintf("Too many sign-ups from your network. Try again in %d seconds.", waitSeconds(wait)))
		return false
	}
	return true
}

func validUsername(u string) bool {
	if len(u) == 0 || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@", r)) {
			return false
		}
	}
	return true
}
