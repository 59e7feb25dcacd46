package server

// Password reset and address verification by mail (ADR 0020). Both links carry a random
// token of which storage keeps only the digest; a link is bound to one user, single use
// and short-lived. The reset request answers the same page whether or not the address
// belongs to anyone, before looking it up: the lookup and the mail happen in the
// background, so neither the answer nor its timing tells whether an account exists.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

const (
	pathForgotPassword = "/login/forgot-password"
	pathResetPassword  = "/reset-password"
	pathVerifyEmail    = "/verify-email"

	resetLinkLifetime  = 30 * time.Minute
	verifyLinkLifetime = 24 * time.Hour
	// Reset requests within throttleWindow: a client address may ask freeResetRequests
	// times; one address receives at most freeResetMails messages, whoever asks.
	freeResetRequests = 10
	freeResetMails    = 3
	// maxUsersPerAddress bounds the links one request sends when several accounts of a
	// connection share an address.
	maxUsersPerAddress = 3

	msgResetSent = "If an account with this address exists, we have sent it a link to choose a new password. " +
		"The link works once, for 30 minutes."
	msgBadLink = "This link is not valid: it was used already, it expired, or it was copied incompletely. " +
		"Ask for a new one from the sign-in page."
)

// resetAvailable reports whether the login page of conn offers "Forgot password?": only
// a Database connection whose users sign up, on a server that sends mail.
func resetAvailable(st *state, conn config.Connection) bool {
	return st.cfg.Email != nil && conn.Type == config.ConnectionDatabase && conn.Database.SignupEnabled
}

// signedUp reports whether username is a user who signed up into conn, as opposed to one
// of the administrator's users Secret, whose password the server never changes.
func signedUp(conn config.Connection, username string) bool {
	return !slices.ContainsFunc(conn.Database.Users, func(u config.DatabaseUser) bool { return u.Username == username })
}

// inBackground runs work after the request, bounded by mailSlots: when the slots are
// taken the work is dropped and logged, so a flood of requests queues nothing.
func (s *Server) inBackground(ctx context.Context, what string, work func(context.Context) error) {
	select {
	case s.mailSlots <- struct{}{}:
	default:
		s.logger.WarnContext(ctx, "mail dropped: too much mail pending", "audit", "mail_dropped", "work", what)
		return
	}
	go func() {
		defer func() { <-s.mailSlots }()
		ctx := context.WithoutCancel(ctx)
		if err := work(ctx); err != nil {
			s.logger.ErrorContext(ctx, "mail failed", "work", what, "err", err)
		}
	}()
}

// waitForMail takes every mail slot, so it returns once the mail in flight is sent (or ctx
// ends) and no mail starts after it.
func (s *Server) waitForMail(ctx context.Context) error {
	for range cap(s.mailSlots) {
		select {
		case s.mailSlots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("wait for mail being sent: %w", ctx.Err())
		}
	}
	return nil
}

// sendEmailLink stores a new token for t (its Hash and ExpiresAt are set here) and mails
// the link to t.Email.
func (s *Server) sendEmailLink(ctx context.Context, st *state, t storage.EmailToken) error {
	token, err := config.RandomToken(32)
	if err != nil {
		return err
	}
	t.Hash = digest.Of(token)
	path, lifetime, m := pathResetPassword, resetLinkLifetime, mail{to: t.Email, subject: "Choose a new password"}
	if t.Purpose == storage.EmailTokenVerify {
		path, lifetime, m.subject = pathVerifyEmail, verifyLinkLifetime, "Confirm your email address"
	}
	t.ExpiresAt = s.now().Add(lifetime)
	if err := s.store.CreateEmailToken(ctx, t); err != nil {
		return err
	}
	link := st.endpoint(path) + "?token=" + token
	if t.Purpose == storage.EmailTokenVerify {
		m.body = fmt.Sprintf("Hello %s,\n\nconfirm that this is your email address by opening this link within 24 hours:\n\n%s\n\n"+
			"If you did not create an account, ignore this message.\n", t.Username, link)
	} else {
		m.body = fmt.Sprintf("Hello %s,\n\nsomeone asked to reset the password of your account. To choose a new password, "+
			"open this link within 30 minutes (it works once):\n\n%s\n\nIf you did not ask for this, ignore this message: "+
			"your password stays as it is.\n", t.Username, link)
	}
	if err := sendMail(ctx, st.cfg.Email, m, s.now()); err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "link sent", "audit", "email_link_sent", "purpose", t.Purpose, "connection", t.Connection, "subject", subject(t.Connection, t.Username))
	return nil
}

// countRequest counts one request on key within throttleWindow and reports whether it is
// within free.
func (s *Server) countRequest(ctx context.Context, key string, free int) (bool, error) {
	t, err := s.store.RecordLoginFailure(ctx, key, s.now(), throttleWindow)
	if err != nil {
		return false, fmt.Errorf("count request: %w", err)
	}
	return t.Failures <= free, nil
}

// handleForgotPassword asks for the address of the account and sends it a reset link.
func (s *Server) handleForgotPassword(w http.ResponseWriter, r *http.Request) {
	f, ok := s.openLoginFlow(w, r)
	if !ok {
		return
	}
	conn, chosen := f.connection(r.Form.Get("connection"))
	if !chosen || !resetAvailable(f.st, conn) {
		s.renderError(w, http.StatusBadRequest, "Password reset is not available for this application.")
		return
	}
	data := pageData{Heading: "Reset your password", Stage: "forgot", TX: f.sealed, CSRF: f.tx.CSRF, ClientName: f.client.Name,
		FormURL: f.st.endpoint(pathForgotPassword), BackURL: f.pageURL(pathLogin, conn.Name),
		Connection: connectionChoice{Name: conn.Name, DisplayName: displayName(conn)}}
	show := func(status int) { s.render(w, f.st, status, "email", &data, pageCSP(f.st, "")) }
	if r.Method == http.MethodGet {
		show(http.StatusOK)
		return
	}
	data.Email = strings.TrimSpace(r.PostForm.Get("email"))
	switch {
	case !checkCSRF(r, f.st, f.tx):
		data.Error = msgFormExpired
		show(http.StatusForbidden)
		return
	case !validMailAddress(data.Email):
		data.Error = "Enter the email address of your account."
		show(http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if ok, err := s.countRequest(ctx, "reset-ip:"+s.clientIP(r), freeResetRequests); err != nil {
		s.serverError(w, r, err)
		return
	} else if !ok {
		data.Error = "Too many requests from your network. Try again in 15 minutes."
		show(http.StatusTooManyRequests)
		return
	}
	st, email := f.st, data.Email
	s.inBackground(ctx, "send reset link", func(ctx context.Context) error { return s.sendResetLinks(ctx, st, conn, email) })
	data.Stage, data.Message = "sent", msgResetSent
	show(http.StatusOK)
}

// sendResetLinks mails a reset link to every signed-up user of conn with this address
// (up to maxUsersPerAddress), unless the address had its share of mail already.
func (s *Server) sendResetLinks(ctx context.Context, st *state, conn config.Connection, email string) error {
	if ok, err := s.countRequest(ctx, "reset-mail:"+conn.Name+":"+strings.ToLower(email), freeResetMails); err != nil || !ok {
		if err == nil {
			s.logger.InfoContext(ctx, "reset link not sent: the address had its share", "audit", "reset_throttled", "connection", conn.Name)
		}
		return err
	}
	users, err := s.store.UsersByEmail(ctx, conn.Name, email, maxUsersPerAddress)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range users {
		if signedUp(conn, u.Username) {
			errs = append(errs, s.sendEmailLink(ctx, st, storage.EmailToken{Purpose: storage.EmailTokenReset, Connection: conn.Name, Username: u.Username, Email: email}))
		}
	}
	return errors.Join(errs...)
}

// handleResetPassword shows the form of a reset link and sets the new password: the link
// is spent, and every session of the user ends (with back-channel logout).
func (s *Server) handleResetPassword(w http.ResponseWriter, r *http.Request) {
	if !s.openPage(w, r, "This page") {
		return
	}
	st := s.state.Load()
	ctx := r.Context()
	token := r.Form.Get("token")
	t, err := s.store.GetEmailToken(ctx, digest.Of(token), storage.EmailTokenReset, s.now())
	conn, known := st.cfg.Connection(t.Connection)
	switch {
	case errors.Is(err, storage.ErrNotFound), err == nil && (!known || !resetAvailable(st, conn) || !signedUp(conn, t.Username)):
		s.renderError(w, http.StatusBadRequest, msgBadLink)
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	data := pageData{Heading: "Choose a new password", Stage: "reset", Token: token, CSRF: csrf, Username: t.Username,
		FormURL: st.endpoint(pathResetPassword)}
	show := func(status int, msg string) {
		data.Error = msg
		s.render(w, st, status, "email", &data, pageCSP(st, ""))
	}
	if r.Method == http.MethodGet {
		show(http.StatusOK, "")
		return
	}
	if !formCSRF(r, st) {
		show(http.StatusForbidden, msgFormExpired)
		return
	}
	if problem := newPasswordProblem(r.PostForm); problem != "" {
		show(http.StatusBadRequest, problem)
		return
	}
	hash, ok := s.hashNewPassword(ctx, w, r, r.PostForm.Get("new-password"), show)
	if !ok {
		return
	}
	// Spent only now, so a mistyped confirmation does not cost the link; of two
	// submissions at once, only one gets past this.
	if _, err := s.store.UseEmailToken(ctx, t.Hash, storage.EmailTokenReset, s.now()); errors.Is(err, storage.ErrNotFound) {
		s.renderError(w, http.StatusBadRequest, msgBadLink)
		return
	} else if err != nil {
		s.serverError(w, r, err)
		return
	}
	if err := s.store.SetUserPassword(ctx, t.Connection, t.Username, hash); err != nil {
		s.serverError(w, r, err)
		return
	}
	sub := subject(t.Connection, t.Username)
	ended, err := s.RevokeUserSessions(ctx, t.Connection, sub)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.logger.InfoContext(ctx, "password reset", "audit", "password_reset", "connection", t.Connection, "subject", sub, "sessions_ended", ended)
	s.render(w, st, http.StatusOK, "message", &pageData{Heading: "Your password was changed",
		Message: "Sign in with your new password. Every session of your account has ended."}, pageCSP(st, ""))
}

// handleVerifyEmail spends a verification link and marks the address verified.
func (s *Server) handleVerifyEmail(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	st := s.state.Load()
	ctx := r.Context()
	t, err := s.store.UseEmailToken(ctx, digest.Of(r.URL.Query().Get("token")), storage.EmailTokenVerify, s.now())
	verified := false
	if err == nil {
		verified, err = s.store.VerifyUserEmail(ctx, t.Connection, t.Username, t.Email)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound), err == nil && !verified:
		s.renderError(w, http.StatusBadRequest, msgBadLink)
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	s.logger.InfoContext(ctx, "email verified", "audit", "email_verified", "connection", t.Connection, "subject", subject(t.Connection, t.Username))
	s.render(w, st, http.StatusOK, "message", &pageData{Heading: "Your email address is confirmed",
		Message: "Thank you. Applications see it as verified from your next sign-in."}, pageCSP(st, ""))
}
