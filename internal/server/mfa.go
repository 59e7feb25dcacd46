package server

// Second factors (ADR 0016). A sign-in that has to end with a second factor stops after the
// first one (a password, or an upstream's answer) on the second-factor page; the state
// between the two travels in that page, sealed like a login transaction, so no replica
// needs to have seen the first step. A step-up raises an existing session the same way,
// without asking for the password again.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// Authentication method references (RFC 8176) and the acr of a multi-factor login.
const (
	amrPassword = "pwd"
	amrOTP      = "otp"
	amrMFA      = "mfa"
	acrMFA      = "urn:hallpass:acr:mfa"
)

const (
	pathMFA = "/login/mfa"
	// mfaLifetime bounds the time between the first factor and the second.
	mfaLifetime = 10 * time.Minute
	msgBadCode  = "That code is not right. Enter the current code from your authenticator app, or one of your recovery codes."
	// msgBadPasskeyFactor refuses a passkey's answer made for another page, site or key.
	msgBadPasskeyFactor = "That passkey could not be used here. Try again, or enter one of your recovery codes."
)

// Stages of the second-factor page.
const (
	stageVerify   = "verify"
	stageEnrol    = "enrol"
	stageContinue = "continue"
)

// mfaTransaction is a sign-in between its first factor and its second.
type mfaTransaction struct {
	// TX is the sealed login transaction: the authorization request and its CSRF token.
	TX    string `json:"t"`
	Stage string `json:"s"`
	// Connection, Claims, AMR and Upstream are the first factor's result, the user the
	// second factor is for.
	Connection string         `json:"c"`
	Claims     storage.Claims `json:"u"`
	AMR        []string       `json:"a,omitempty"`
	Upstream   []byte         `json:"p,omitempty"`
	// SessionIDHash names the session a step-up raises, or (at stageContinue) the session
	// the second factor completed.
	SessionIDHash string `json:"h,omitempty"`
	// Secret is the TOTP secret being enrolled (stageEnrol), if TOTP is allowed.
	Secret string `json:"k,omitempty"`
	// GraceEnds is when the user's enrolment grace ends (Unix seconds; stageEnrol), or 0
	// when the user may not put enrolment off.
	GraceEnds int64 `json:"g,omitempty"`
	Expires   int64 `json:"e"`
}

// hasMFA reports whether authentication methods include a second factor.
func hasMFA(amr []string) bool { return slices.Contains(amr, amrMFA) }

// withMFA adds a second factor of method to amr.
func withMFA(amr []string, method string) []string {
	out := slices.Clone(amr)
	for _, m := range []string{method, amrMFA} {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// upstreamMFAMethods are the amr values (RFC 8176) that show an upstream checked a second
// factor: an explicit "mfa", or a method that is never a first factor alone in practice.
var upstreamMFAMethods = []string{amrMFA, amrOTP, "hwk", "swk", "sms", "fpt"}

// upstreamDidMFA reports whether an upstream's amr shows a second factor.
func upstreamDidMFA(amr []string) bool {
	return slices.ContainsFunc(amr, func(m string) bool { return slices.Contains(upstreamMFAMethods, m) })
}

// mfaDemanded reports whether this authorization needs a session with a second factor,
// whoever the user is: by the server's policy, the client's requireMFA or the request's
// acr_values.
func mfaDemanded(cfg *config.Config, client config.Client, req *authorizeRequest) bool {
	return cfg.MFA.Policy == config.MFARequired || client.RequireMFA || slices.Contains(req.ACRValues, acrMFA)
}

// usableFactors are the user's factors of kinds the policy allows.
func (s *Server) usableFactors(ctx context.Context, st *state, connection, subject string) ([]storage.Factor, error) {
	all, err := s.store.ListFactors(ctx, connection, subject)
	if err != nil {
		return nil, fmt.Errorf("load factors: %w", err)
	}
	kinds := map[string]string{storage.FactorTOTP: config.FactorTOTP, storage.FactorWebAuthn: config.FactorWebAuthn}
	return slices.DeleteFunc(all, func(f storage.Factor) bool {
		kind, known := kinds[f.Type]
		return !known || !st.cfg.MFA.Allows(kind)
	}), nil
}

// askSecondFactor decides whether a sign-in whose first factor succeeded needs a second
// one, and if so shows its page; it returns false when the sign-in can go on without.
func (s *Server) askSecondFactor(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) bool {
	if hasMFA(mt.AMR) {
		return false
	}
	ctx := r.Context()
	factors, err := s.usableFactors(ctx, f.st, mt.Connection, mt.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return true
	}
	optional := f.st.cfg.MFA.Policy == config.MFAOptional && len(factors) > 0
	if !optional && !mfaDemanded(f.st.cfg, f.client, &f.tx.Request) {
		return false
	}
	mt.TX, mt.Expires = f.sealed, s.now().Add(mfaLifetime).Unix()
	mt.Stage = stageVerify
	if len(factors) == 0 && !s.prepareEnrolment(w, r, f, &mt) {
		return true
	}
	s.showMFAPage(w, r, f, http.StatusOK, mt, "", nil)
	return true
}

// startStepUp asks a signed-in user for a second factor the session does not have yet.
func (s *Server) startStepUp(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, client config.Client, sess storage.Session) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	tx := loginTransaction{Request: *req, CSRF: csrf, Expires: s.now().Add(loginTransactionLifetime).Unix()}
	sealed, err := sealTransaction(st, tx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	f := &loginFlow{st: st, tx: tx, sealed: sealed, client: client}
	if !s.askSecondFactor(w, r, f, mfaTransaction{Connection: sess.Connection, Claims: sess.Claims, AMR: sess.AMR, SessionIDHash: sess.IDHash}) {
		// Only reached when the policy changed in between: nothing is missing any more.
		s.completeAuthorization(w, r, st, req, sess)
	}
}

// showMFAPage renders the page of mt's stage; recovery codes, when given, are shown once.
func (s *Server) showMFAPage(w http.ResponseWriter, r *http.Request, f *loginFlow, status int, mt mfaTransaction, errMsg string, recoveryCodes []string) {
	sealed, err := f.st.keys.sealer.seal(purposeSecondFactor, mt)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	data := pageData{ClientName: f.client.Name, CSRF: f.tx.CSRF, FormURL: f.st.endpoint(pathMFA), MFA: sealed,
		Stage: mt.Stage, Error: errMsg, RecoveryCodes: recoveryCodes}
	switch {
	case recoveryCodes != nil:
		data.Heading = "Save your recovery codes"
	case mt.Stage == stageEnrol:
		if err := s.enrolmentPage(f.st, mt, &data); err != nil {
			s.serverError(w, r, err)
			return
		}
	default:
		data.Heading = "Two-step verification"
		factors, err := s.usableFactors(r.Context(), f.st, mt.Connection, mt.Claims.Subject)
		if err == nil {
			data.HasTOTP = slices.ContainsFunc(factors, func(f storage.Factor) bool { return f.Type == storage.FactorTOTP })
			data.Passkey, err = s.passkeySecondFactor(f.st, mt, factors)
		}
		if err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	noStore(w)
	s.render(w, f.st, status, "mfa", &data, passkeyCSP(f.st, data.Passkey, f.tx.Request.RedirectURI))
}

// totpIssuer names the server in authenticator apps: its branding title, else its host.
func totpIssuer(st *state) string {
	if st.cfg.Branding.Title != "" {
		return st.cfg.Branding.Title
	}
	return st.issuer.Host
}

func accountName(c storage.Claims) string {
	for _, n := range []string{c.Username, c.Email} {
		if n != "" {
			return n
		}
	}
	return c.Subject
}

// handleMFA serves the second-factor page: the code of an enrolled factor or a recovery
// code, the enrolment of a first TOTP factor, and the step after the recovery codes.
func (s *Server) handleMFA(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "This page accepts POST only.")
		return
	}
	var mt mfaTransaction
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "The request could not be read.")
		return
	}
	st := s.state.Load()
	if err := st.keys.sealer.open(purposeSecondFactor, r.PostForm.Get("m"), &mt); err != nil || s.now().Unix() > mt.Expires {
		s.renderError(w, http.StatusBadRequest, msgExpiredLogin)
		return
	}
	f, ok := s.loginFlowOf(w, st, mt.TX)
	if !ok {
		return
	}
	if !checkCSRF(r, f.st, f.tx) {
		s.renderError(w, http.StatusForbidden, msgFormExpired)
		return
	}
	switch mt.Stage {
	case stageContinue:
		s.continueAfterMFA(w, r, f, mt)
	case stageEnrol:
		s.enrol(w, r, f, mt)
	default:
		s.verifySecondFactor(w, r, f, mt)
	}
}

// secondFactorKeys throttle second-factor attempts like passwords, per user.
func (s *Server) secondFactorKeys(r *http.Request, mt mfaTransaction) []throttleKey {
	return loginThrottleKeys("mfa:"+mt.Connection, mt.Claims.Subject, s.clientIP(r))
}

// factorRecovery is the factor kind of recovery codes in audit events.
const factorRecovery = "recovery"

// typedFactor is the kind of factor a typed code was meant for, as audited: digits (or
// nothing) are an authenticator app's code; letters or dashes, a recovery code's (those are
// base32 in groups).
func typedFactor(code string) string {
	if strings.Trim(code, "0123456789 ") == "" {
		return storage.FactorTOTP
	}
	return factorRecovery
}

// throttledAttempt runs check under the login throttle of keys, as an attempt with a factor
// of kind; check returns why the attempt was refused, or "" when it passed. It shows the
// page itself, with that reason, and returns false when the attempt was throttled or
// refused.
func (s *Server) throttledAttempt(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction, kind string, keys []throttleKey, check func() (refused string, err error)) bool {
	var refused string
	passed, throttled, wait, err := s.throttledCheck(r.Context(), keys, func() (bool, error) {
		var err error
		refused, err = check()
		return refused == "", err
	})
	switch {
	case err != nil:
		s.serverError(w, r, err)
	case throttled:
		s.auditFactor(r.Context(), "throttled", kind, mt.Connection, mt.Claims.Subject)
		msg := "Too many wrong codes. Try again in %d seconds."
		if kind == storage.FactorWebAuthn {
			msg = "Too many failed attempts. Try again in %d seconds."
		}
		s.showMFAPage(w, r, f, http.StatusTooManyRequests, mt, fmt.Sprintf(msg, waitSeconds(wait)), nil)
	case !passed:
		s.showMFAPage(w, r, f, http.StatusUnauthorized, mt, refused, nil)
	}
	return passed && err == nil
}

// verifySecondFactor checks a code against the user's TOTP factors, then as a recovery
// code.
func (s *Server) verifySecondFactor(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	ctx := r.Context()
	code := strings.TrimSpace(r.PostForm.Get("code"))
	method := amrOTP
	kind := typedFactor(code)
	if r.PostForm.Has("credential") {
		kind = storage.FactorWebAuthn
	}
	ok := s.throttledAttempt(w, r, f, mt, kind, s.secondFactorKeys(r, mt), func() (string, error) {
		if kind == storage.FactorWebAuthn {
			var refused string
			var err error
			method, refused, err = s.verifyPasskeySecondFactor(ctx, f.st, r, mt)
			return refused, err
		}
		if code == "" || len(code) > maxCredentialBytes {
			return msgBadCode, nil
		}
		factors, err := s.usableFactors(ctx, f.st, mt.Connection, mt.Claims.Subject)
		if err != nil {
			return "", err
		}
		now := s.now()
		for _, fa := range factors {
			step, match := totpStep(string(fa.Secret), code, now)
			if !match {
				continue
			}
			first, err := s.store.UseFactorStep(ctx, fa.ID, step, now)
			if err != nil {
				return "", fmt.Errorf("record TOTP use: %w", err)
			}
			if !first {
				s.auditFactor(ctx, "replay_refused", fa.Type, mt.Connection, mt.Claims.Subject)
				return msgBadCode, nil
			}
			s.auditFactor(ctx, "verified", fa.Type, mt.Connection, mt.Claims.Subject)
			return "", nil
		}
		used, err := s.store.UseRecoveryCode(ctx, mt.Connection, mt.Claims.Subject, recoveryCodeHash(code))
		if err != nil {
			return "", err
		}
		if used {
			s.auditFactor(ctx, "recovery_code_used", factorRecovery, mt.Connection, mt.Claims.Subject)
			return "", nil
		}
		s.auditFactor(ctx, "failed", kind, mt.Connection, mt.Claims.Subject)
		return msgBadCode, nil
	})
	if ok {
		s.secondFactorDone(w, r, f, mt, method, nil)
	}
}

// enrolTOTP stores the factor of the enrolment page once the user proves to have it, with
// a first set of recovery codes.
func (s *Server) enrolTOTP(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	ctx := r.Context()
	now := s.now()
	var step int64
	ok := s.throttledAttempt(w, r, f, mt, storage.FactorTOTP, s.secondFactorKeys(r, mt), func() (string, error) {
		var match bool
		step, match = totpStep(mt.Secret, r.PostForm.Get("code"), now)
		if !match || mt.Secret == "" {
			s.auditFactor(ctx, "failed", storage.FactorTOTP, mt.Connection, mt.Claims.Subject)
			return msgBadCode, nil
		}
		return "", nil
	})
	if !ok {
		return
	}
	id, err := config.RandomToken(16)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	// The enrolment's own code counts as used: it cannot sign in a second time.
	err = s.store.CreateFactor(ctx, storage.Factor{ID: id, Connection: mt.Connection, Subject: mt.Claims.Subject,
		Type: storage.FactorTOTP, Name: "Authenticator app", Secret: []byte(mt.Secret), LastStep: step, CreatedAt: now, LastUsedAt: now})
	if err != nil {
		s.serverError(w, r, fmt.Errorf("enrol TOTP factor: %w", err))
		return
	}
	s.auditFactor(ctx, "enrolled", storage.FactorTOTP, mt.Connection, mt.Claims.Subject)
	codes, err := s.regenerateRecoveryCodes(ctx, mt.Connection, mt.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	mt.Secret = ""
	s.secondFactorDone(w, r, f, mt, amrOTP, codes)
}

// regenerateRecoveryCodes replaces the user's recovery codes and returns the new ones.
func (s *Server) regenerateRecoveryCodes(ctx context.Context, connection, subject string) ([]string, error) {
	codes, hashes, err := newRecoveryCodes()
	if err != nil {
		return nil, err
	}
	if err := s.store.SetRecoveryCodes(ctx, connection, subject, hashes, s.now()); err != nil {
		return nil, fmt.Errorf("store recovery codes: %w", err)
	}
	s.auditFactor(ctx, "recovery_codes_generated", factorRecovery, connection, subject)
	return codes, nil
}

// secondFactorDone starts the session (or raises the stepped-up one) with the second
// factor in it and answers the application, or first shows new recovery codes.
func (s *Server) secondFactorDone(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction, method string, recoveryCodes []string) {
	now := s.now()
	sess, ok := s.sessionAfterSecondStep(w, r, f, mt, method)
	if !ok {
		return
	}
	if recoveryCodes != nil {
		next := mfaTransaction{TX: mt.TX, Stage: stageContinue, Connection: mt.Connection, Claims: mt.Claims,
			SessionIDHash: sess.IDHash, Expires: now.Add(mfaLifetime).Unix()}
		s.showMFAPage(w, r, f, http.StatusOK, next, "", recoveryCodes)
		return
	}
	s.completeAuthorization(w, r, f.st, &f.tx.Request, sess)
}

// sessionAfterSecondStep raises the session a step-up started from with a second factor of
// method, or starts the sign-in's session with it; with no method (an enrolment put off in
// the grace) the session gets no second factor. It answers the request itself and returns
// false when the stepped-up session ended or storage failed.
func (s *Server) sessionAfterSecondStep(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction, method string) (storage.Session, bool) {
	ctx := r.Context()
	now := s.now()
	amr, mfaAt := mt.AMR, time.Time{}
	if method != "" {
		amr, mfaAt = withMFA(mt.AMR, method), now
	}
	if mt.SessionIDHash == "" {
		sess, err := s.startLoginSession(ctx, w, r, f, newSession{connection: mt.Connection, claims: mt.Claims,
			amr: amr, mfaAt: mfaAt, upstream: mt.Upstream})
		if err != nil {
			s.serverError(w, r, err)
		}
		return sess, err == nil
	}
	sess, err := s.store.UpdateSession(ctx, mt.SessionIDHash, func(sess storage.Session) (storage.Session, error) {
		if !sessionValid(sess, f.st.cfg.Session, now) || sess.Claims.Subject != mt.Claims.Subject {
			return sess, errSessionEnded
		}
		if method != "" {
			sess.AMR, sess.MFAAt = withMFA(sess.AMR, method), now
		}
		return sess, nil
	})
	if errors.Is(err, errSessionEnded) || errors.Is(err, storage.ErrNotFound) {
		s.renderError(w, http.StatusBadRequest, msgExpiredLogin)
		return sess, false
	}
	if err == nil {
		sess, err = s.useSession(ctx, f.st, sess, f.client.ID)
	}
	if err != nil {
		s.serverError(w, r, err)
	}
	return sess, err == nil
}

// continueAfterMFA answers the application once the user has seen the recovery codes.
func (s *Server) continueAfterMFA(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	sess, err := s.store.GetSession(r.Context(), mt.SessionIDHash)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (!sessionValid(sess, f.st.cfg.Session, s.now()) ||
		!hasMFA(sess.AMR) || sess.Claims.Subject != mt.Claims.Subject) {
		s.renderError(w, http.StatusBadRequest, msgExpiredLogin)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.completeAuthorization(w, r, f.st, &f.tx.Request, sess)
}

// auditFactor records a second-factor event: a structured log line and a metric.
func (s *Server) auditFactor(ctx context.Context, event, kind, connection, subject string) {
	s.metrics.factors.WithLabelValues(event, kind).Inc()
	s.logger.InfoContext(ctx, "second factor "+strings.ReplaceAll(event, "_", " "),
		"audit", event, "factor", kind, "connection", connection, "subject", subject)
}
