package server

// Enrolment of a first second factor during a sign-in (ADR 0016): an authenticator app or
// a passkey, whichever the policy allows; and, under mfa.policy Required, the enrolment
// grace (ADR 0024), during which a user without a factor may put enrolment off.

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

const (
	msgGraceOver = "Two-step verification is required now: set it up to continue."
	// graceDateLayout shows when a grace ends, in UTC and saying so: the server cannot know
	// the user's time zone without a script, and a page in the server's zone named by an
	// abbreviation ("CST") leaves the reader guessing which.
	graceDateLayout = "2 January 2006, 15:04 UTC"
)

// prepareEnrolment turns mt into the enrolment of a first factor, with a new TOTP secret
// when TOTP is allowed and the user's grace when one applies. It shows an error page and
// returns false when the user can enrol nothing.
func (s *Server) prepareEnrolment(w http.ResponseWriter, r *http.Request, f *loginFlow, mt *mfaTransaction) bool {
	totp := f.st.cfg.MFA.Allows(config.FactorTOTP)
	if !totp && !passkeysOffered(f.st) {
		s.renderError(w, http.StatusForbidden, "This application requires a second factor, but this server offers none you can enrol.")
		return false
	}
	var err error
	if totp {
		if mt.Secret, err = newTOTPSecret(); err != nil {
			s.serverError(w, r, err)
			return false
		}
	}
	ends, err := s.enrolmentGraceEnds(r.Context(), f.st, f.client, &f.tx.Request, mt.Connection, mt.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return false
	}
	if !ends.IsZero() {
		mt.GraceEnds = ends.Unix()
	}
	mt.Stage = stageEnrol
	return true
}

// enrolmentGraceEnds is when the user's enrolment grace ends, or the zero time when there
// is none for this authorization or it is over. Only the server's policy Required has a
// grace: a client's requireMFA, or acr_values, demand the factor at once. The grace starts
// the first time it is looked up for the user, which is the first time the user is asked.
func (s *Server) enrolmentGraceEnds(ctx context.Context, st *state, client config.Client, req *authorizeRequest, connection, subject string) (time.Time, error) {
	grace := st.cfg.MFA.EnrolmentGrace.Duration
	if grace <= 0 || st.cfg.MFA.Policy != config.MFARequired || client.RequireMFA || slices.Contains(req.ACRValues, acrMFA) {
		return time.Time{}, nil
	}
	now := s.now()
	started, err := s.store.StartEnrolmentGrace(ctx, connection, subject, now)
	if err != nil {
		return time.Time{}, err
	}
	if ends := started.Add(grace); now.Before(ends) {
		return ends, nil
	}
	return time.Time{}, nil
}

// lacksSecondFactor reports whether a session has to show a second factor before it
// answers this authorization: one is demanded, the session has none, and the user is not
// a user without factors within the enrolment grace.
func (s *Server) lacksSecondFactor(ctx context.Context, st *state, client config.Client, req *authorizeRequest, sess storage.Session) (bool, error) {
	if hasMFA(sess.AMR) || !mfaDemanded(st.cfg, client, req) {
		return false, nil
	}
	if st.cfg.MFA.EnrolmentGrace.Duration <= 0 {
		return true, nil
	}
	factors, err := s.usableFactors(ctx, st, sess.Connection, sess.Claims.Subject)
	if err != nil || len(factors) > 0 {
		return true, err
	}
	ends, err := s.enrolmentGraceEnds(ctx, st, client, req, sess.Connection, sess.Claims.Subject)
	return ends.IsZero(), err
}

// mustStepUp is lacksSecondFactor for a page that asks for the factor when in doubt: the
// step-up page reports a storage failure itself.
func (s *Server) mustStepUp(r *http.Request, st *state, client config.Client, req *authorizeRequest, sess storage.Session) bool {
	lacking, err := s.lacksSecondFactor(r.Context(), st, client, req, sess)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "load the user's second factors", "err", err)
		return true
	}
	return lacking
}

// enrolmentPage fills the enrolment stage of the second-factor page: the authenticator
// app's QR code and key, the passkey button, and "Not now" within the grace.
func (s *Server) enrolmentPage(st *state, mt mfaTransaction, data *pageData) error {
	data.Heading = "Set up two-step verification"
	if mt.Secret != "" {
		e, err := newTOTPEnrolment(totpIssuer(st), accountName(mt.Claims), mt.Secret)
		if err != nil {
			return err
		}
		data.QRImage, data.ManualKey = template.URL(e.QR), e.ManualKey //nolint:gosec // a PNG data URI this server drew
	}
	if mt.GraceEnds != 0 {
		data.GraceEnds = shownTime(time.Unix(mt.GraceEnds, 0), s.now())
	}
	if !passkeysOffered(st) {
		return nil
	}
	user, err := passkeyUser(nil, accountName(mt.Claims))
	if err != nil {
		return err
	}
	data.Passkey, err = s.passkeyRegistration(st, user, "Create a passkey", mt.TX)
	return err
}

// enrol handles the enrolment stage's forms: an authenticator app's first code, a new
// passkey, or "Not now".
func (s *Server) enrol(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	switch {
	case r.PostForm.Get("code") == "" && r.PostForm.Get("credential") != "":
		s.enrolPasskeyAtSignIn(w, r, f, mt)
	case r.PostForm.Get("code") == "" && r.PostForm.Get("later") != "":
		s.deferEnrolment(w, r, f, mt)
	default:
		s.enrolTOTP(w, r, f, mt)
	}
}

// deferEnrolment lets a user within the enrolment grace go on without a second factor: the
// session records the first factor only, and the user is asked again at the next sign-in.
func (s *Server) deferEnrolment(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	ctx := r.Context()
	if mt.GraceEnds == 0 || !s.now().Before(time.Unix(mt.GraceEnds, 0)) {
		mt.GraceEnds = 0
		s.showMFAPage(w, r, f, http.StatusForbidden, mt, msgGraceOver, nil)
		return
	}
	s.auditFactor(ctx, "enrolment_deferred", "none", mt.Connection, mt.Claims.Subject)
	if sess, ok := s.sessionAfterSecondStep(w, r, f, mt, ""); ok {
		s.completeAuthorization(w, r, f.st, &f.tx.Request, sess)
	}
}

// passkeyRegistration is a button that creates a discoverable passkey for user, bound to
// boundTo. A user without passkeys gets a new user handle, sealed in the ceremony.
func (s *Server) passkeyRegistration(st *state, user webauthnUser, label, boundTo string) (*passkeyButton, error) {
	rp, err := relyingParty(st)
	if err != nil {
		return nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(user.credentials))
	for _, c := range user.credentials {
		exclude = append(exclude, c.Descriptor())
	}
	// Discoverable (resident) credentials, so the passkey can sign in without a username;
	// platform and roaming authenticators alike.
	options, session, err := rp.BeginRegistration(user,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationPreferred}),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, fmt.Errorf("begin WebAuthn registration: %w", err)
	}
	session.Expires = s.now().Add(ceremonyLifetime)
	return newPasskeyButton(st, "create", label, options, session, boundTo)
}

// enrolPasskeyAtSignIn stores the passkey created on the enrolment page as the user's first
// factor, with a first set of recovery codes, and completes the sign-in with it.
func (s *Server) enrolPasskeyAtSignIn(w http.ResponseWriter, r *http.Request, f *loginFlow, mt mfaTransaction) {
	ctx := r.Context()
	method, err := s.registerFirstPasskey(ctx, f.st, r, mt)
	switch {
	case err != nil:
		s.serverError(w, r, err)
		return
	case method == "":
		s.showMFAPage(w, r, f, http.StatusBadRequest, mt, "The passkey could not be created. Try again, or use an authenticator app.", nil)
		return
	}
	codes, err := s.regenerateRecoveryCodes(ctx, mt.Connection, mt.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	mt.Secret = ""
	s.secondFactorDone(w, r, f, mt, method, codes)
}

// registerFirstPasskey verifies and stores the new credential of the enrolment page and
// returns its amr method, or "" when it was refused (and audited).
func (s *Server) registerFirstPasskey(ctx context.Context, st *state, r *http.Request, mt mfaTransaction) (string, error) {
	if !passkeysOffered(st) {
		return "", nil
	}
	session, ok, err := s.openCeremony(ctx, st, r, mt.TX, ceremonyUser{mt.Connection, mt.Claims.Subject})
	if err != nil || !ok {
		return "", err
	}
	cred, perr := parseCreation(r)
	var c *webauthn.Credential
	if perr == nil {
		var rp *webauthn.WebAuthn
		if rp, err = relyingParty(st); err != nil {
			return "", err
		}
		user := webauthnUser{handle: session.UserID, name: accountName(mt.Claims)}
		if c, perr = rp.CreateCredential(user, session, cred); perr == nil {
			if perr, err = credentialTaken(s.storePasskey(ctx, mt.Connection, mt.Claims.Subject, session.UserID, c)); err != nil {
				return "", err
			}
		}
	}
	if perr != nil {
		s.auditFactor(ctx, "failed", storage.FactorWebAuthn, mt.Connection, mt.Claims.Subject)
		s.logger.InfoContext(ctx, "passkey registration refused", "connection", mt.Connection, "err", perr)
		return "", nil
	}
	s.auditFactor(ctx, "enrolled", storage.FactorWebAuthn, mt.Connection, mt.Claims.Subject)
	return passkeyMethod(c.Flags), nil
}

// timeShown is a moment as a page shows it: a <time> element's machine-readable datetime
// (RFC 3339, UTC), its text in UTC, and how far it is from now, which reads the same in
// every time zone.
type timeShown struct {
	Datetime, UTC, Relative string
}

func shownTime(t, now time.Time) *timeShown {
	return &timeShown{Datetime: t.UTC().Format(time.RFC3339), UTC: t.UTC().Format(graceDateLayout), Relative: relativeTime(t.Sub(now))}
}

// relativeTime says how far ahead d is: "in 2 days", "in 5 hours", "in 1 minute", rounded
// to the nearest day or hour, and up to the next minute below an hour.
func relativeTime(d time.Duration) string {
	n, unit := 0, ""
	switch {
	case d >= 24*time.Hour:
		n, unit = int(math.Round(d.Hours()/24)), "day"
	case d >= time.Hour:
		n, unit = int(math.Round(d.Hours())), "hour"
	default:
		n, unit = max(1, int(math.Ceil(d.Minutes()))), "minute"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("in %d %s", n, unit)
}
