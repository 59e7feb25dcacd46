package server

// Passkeys and security keys (WebAuthn, ADR 0019): enrolled on the account page, used as
// a second factor on the second-factor page, and, on a Database connection's login page,
// to sign in without a username or password. A ceremony's challenge travels sealed in the
// page, bound to what it is for (the session, or the login transaction), and is accepted
// once, within ceremonyLifetime. The browser side is /assets/passkey.js, the only script.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Authentication method references (RFC 8176) of a WebAuthn credential: a key that cannot
// leave its hardware, or one that may be synced between devices (a "backup eligible"
// passkey), which is a software-secured key.
const (
	amrHardwareKey = "hwk"
	amrSoftwareKey = "swk"
)

const (
	pathPasskeyScript = "/assets/passkey.js"
	// ceremonyLifetime bounds the time between showing a WebAuthn challenge and its answer.
	ceremonyLifetime = 5 * time.Minute
	// maxCredentialJSON bounds the browser's answer (an attestation is a few KB).
	maxCredentialJSON = 16 << 10
	msgBadPasskey     = "That passkey could not be used here. Try again, or use another way."
)

//go:embed assets/passkey.js
var passkeyScript []byte

// ceremony is a WebAuthn challenge between the page that showed it and the answer.
type ceremony struct {
	Session webauthn.SessionData `json:"s"`
	// BoundTo is what the answer must come with: the session's ID hash (enrolment), or
	// the sealed login transaction (sign-in, second factor).
	BoundTo string `json:"b"`
}

// passkeyButton is what the "passkey" template shows.
type passkeyButton struct {
	Mode     string // "create" or "get"
	Label    string
	Options  string
	Ceremony string
	Script   string
}

// webauthnUser is a user as go-webauthn sees one.
type webauthnUser struct {
	handle      []byte
	name        string
	credentials []webauthn.Credential
}

func (u webauthnUser) WebAuthnID() []byte                         { return u.handle }
func (u webauthnUser) WebAuthnName() string                       { return u.name }
func (u webauthnUser) WebAuthnDisplayName() string                { return u.name }
func (u webauthnUser) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

func (s *Server) handlePasskeyScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(passkeyScript)
}

// passkeysOffered reports whether users may enrol and use passkeys: the policy allows them
// and the issuer has a host name (WebAuthn scopes credentials to a domain, never to an IP
// address).
func passkeysOffered(st *state) bool {
	return st.cfg.MFA.Allows(config.FactorWebAuthn) && net.ParseIP(st.issuer.Hostname()) == nil
}

// relyingParty is the server as a WebAuthn relying party: its ID is the issuer's host name,
// and only pages of the issuer's origin may run a ceremony.
func relyingParty(st *state) (*webauthn.WebAuthn, error) {
	rp, err := webauthn.New(&webauthn.Config{RPID: st.issuer.Hostname(), RPDisplayName: totpIssuer(st),
		RPOrigins: []string{st.issuer.Scheme + "://" + st.issuer.Host}})
	if err != nil {
		return nil, fmt.Errorf("configure WebAuthn relying party: %w", err)
	}
	return rp, nil
}

// passkeyCSP is the policy of a page with a passkey button: the page's usual policy, with
// the one static script allowed.
func passkeyCSP(st *state, button *passkeyButton, formTargets ...string) string {
	if button == nil {
		return pageCSP(st, "", formTargets...)
	}
	return pageCSP(st, st.endpoint(pathPasskeyScript), formTargets...)
}

// newPasskeyButton seals a ceremony bound to boundTo and returns its button.
func newPasskeyButton(st *state, mode, label string, options any, session *webauthn.SessionData, boundTo string) (*passkeyButton, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("encode WebAuthn options: %w", err)
	}
	sealed, err := st.keys.sealer.seal(purposeWebAuthnCeremony, ceremony{Session: *session, BoundTo: boundTo})
	if err != nil {
		return nil, err
	}
	return &passkeyButton{Mode: mode, Label: label, Options: string(opts), Ceremony: sealed, Script: st.endpoint(pathPasskeyScript)}, nil
}

// ceremonyUser names the user a ceremony is for, in audit events: the connection, and the
// subject when it is known before the answer is read.
type ceremonyUser struct{ connection, subject string }

// openCeremony returns the ceremony of a form if it is bound to boundTo, unexpired, and
// used for the first time. A refused one is audited as challenge_refused.
func (s *Server) openCeremony(ctx context.Context, st *state, r *http.Request, boundTo string, u ceremonyUser) (webauthn.SessionData, bool, error) {
	var c ceremony
	// A ceremony that does not open is a forged or foreign form: refused, not an error.
	opened := st.keys.sealer.open(purposeWebAuthnCeremony, r.PostForm.Get("ceremony"), &c) == nil
	first := opened && subtle.ConstantTimeCompare([]byte(c.BoundTo), []byte(boundTo)) == 1 && s.now().Before(c.Session.Expires)
	if first {
		var err error
		if first, err = s.store.UseOnce(ctx, "webauthn:"+digest.Of(c.Session.Challenge), s.now(), c.Session.Expires); err != nil {
			return webauthn.SessionData{}, false, fmt.Errorf("record WebAuthn challenge use: %w", err)
		}
	}
	if !first {
		// Expired, spent already, shown to another browser or session, or not ours.
		s.auditFactor(ctx, "challenge_refused", storage.FactorWebAuthn, u.connection, u.subject)
		return webauthn.SessionData{}, false, nil
	}
	return c.Session, true, nil
}

// credentialOf is a stored factor as go-webauthn's credential.
func credentialOf(f storage.Factor) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, 0, len(f.Transports))
	for _, t := range f.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{ID: f.CredentialID, PublicKey: f.Secret, Transport: transports,
		Flags:         webauthn.CredentialFlagsFromMsgpByte(f.CredentialFlags),
		Authenticator: webauthn.Authenticator{SignCount: uint32(f.LastStep)}} //nolint:gosec // stored from a uint32
}

// passkeyUser is the WebAuthn view of a user's passkey factors; a user without one gets
// a new random user handle.
func passkeyUser(factors []storage.Factor, name string) (webauthnUser, error) {
	u := webauthnUser{name: name}
	for _, f := range factors {
		if f.Type == storage.FactorWebAuthn {
			u.handle = f.UserHandle
			u.credentials = append(u.credentials, credentialOf(f))
		}
	}
	if u.handle == nil {
		u.handle = make([]byte, 32)
		if _, err := rand.Read(u.handle); err != nil {
			return u, fmt.Errorf("draw WebAuthn user handle: %w", err)
		}
	}
	return u, nil
}

// passkeyMethod is the amr of an accepted assertion or registration.
func passkeyMethod(flags webauthn.CredentialFlags) string {
	if flags.BackupEligible {
		return amrSoftwareKey
	}
	return amrHardwareKey
}

// acceptCounter records an assertion's signature counter; a counter that did not go up
// shows a cloned authenticator and is refused. Authenticators without a counter always
// send 0 (most synced passkeys), which is accepted while the stored counter is 0 too.
func (s *Server) acceptCounter(ctx context.Context, f storage.Factor, counter uint32) (bool, error) {
	if counter == 0 && f.LastStep == 0 {
		return true, nil
	}
	ok, err := s.store.UseFactorStep(ctx, f.ID, int64(counter), s.now())
	if err != nil {
		return false, fmt.Errorf("record WebAuthn signature counter: %w", err)
	}
	if !ok {
		s.auditFactor(ctx, "counter_regression_refused", storage.FactorWebAuthn, f.Connection, f.Subject)
	}
	return ok, nil
}

// factorOfCredential finds the stored factor of a credential ID.
func factorOfCredential(factors []storage.Factor, id []byte) (storage.Factor, bool) {
	i := slices.IndexFunc(factors, func(f storage.Factor) bool {
		return f.Type == storage.FactorWebAuthn && subtle.ConstantTimeCompare(f.CredentialID, id) == 1
	})
	if i < 0 {
		return storage.Factor{}, false
	}
	return factors[i], true
}

// ---- Enrolment, from the account page.

// passkeyEnrolment is the "Add a passkey" button of the account page.
func (s *Server) passkeyEnrolment(st *state, sess storage.Session, factors []storage.Factor) (*passkeyButton, error) {
	if !passkeysOffered(st) {
		return nil, nil
	}
	user, err := passkeyUser(factors, accountName(sess.Claims))
	if err != nil {
		return nil, err
	}
	return s.passkeyRegistration(st, user, "Add a passkey", sess.IDHash)
}

// enrolPasskey stores the credential the account page's passkey button created.
func (s *Server) enrolPasskey(w http.ResponseWriter, r *http.Request, st *state, sess storage.Session, factors []storage.Factor) {
	ctx := r.Context()
	conn, subject := sess.Connection, sess.Claims.Subject
	if !passkeysOffered(st) {
		s.renderError(w, http.StatusForbidden, "This server does not offer passkeys.")
		return
	}
	session, ok, err := s.openCeremony(ctx, st, r, sess.IDHash, ceremonyUser{conn, subject})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	cred, perr := parseCreation(r)
	if ok && perr == nil {
		var user webauthnUser
		if user, err = passkeyUser(factors, accountName(sess.Claims)); err != nil {
			s.serverError(w, r, err)
			return
		}
		if len(user.credentials) == 0 {
			// A first passkey: its user handle was drawn for the page, and sealed with it.
			user.handle = session.UserID
		}
		var rp *webauthn.WebAuthn
		if rp, err = relyingParty(st); err != nil {
			s.serverError(w, r, err)
			return
		}
		var c *webauthn.Credential
		if c, perr = rp.CreateCredential(user, session, cred); perr == nil {
			perr, err = credentialTaken(s.storePasskey(ctx, conn, subject, user.handle, c))
		}
		if err == nil && perr == nil {
			// The new passkey was just presented: the session has a second factor now, as
			// after an authenticator app's enrolment.
			now := s.now()
			_, err = s.store.UpdateSession(ctx, sess.IDHash, func(cur storage.Session) (storage.Session, error) {
				cur.AMR, cur.MFAAt = withMFA(cur.AMR, passkeyMethod(c.Flags)), now
				return cur, nil
			})
		}
	}
	switch {
	case err != nil:
		s.serverError(w, r, err)
	case !ok:
		s.renderError(w, http.StatusBadRequest, "This page has expired, or the passkey was added already. Open the account page again.")
	case perr != nil:
		s.auditFactor(ctx, "failed", storage.FactorWebAuthn, conn, subject)
		s.logger.InfoContext(ctx, "passkey registration refused", "connection", conn, "err", perr)
		s.renderError(w, http.StatusBadRequest, "The passkey could not be added. Open the account page and try again.")
	default:
		s.auditFactor(ctx, "enrolled", storage.FactorWebAuthn, conn, subject)
		seeOther(w, st.endpoint(pathAccount))
	}
}

// credentialTaken sorts the error of storePasskey: a credential ID registered already (to
// this user or another: WebAuthn §7.1 step 22) refuses the registration, as an answer that
// does not verify does; any other error is the server's.
func credentialTaken(err error) (refused, failed error) {
	if errors.Is(err, storage.ErrAlreadyExists) {
		return err, nil
	}
	return nil, err
}

// storePasskey stores a new passkey factor; storage.ErrAlreadyExists when its credential ID
// is registered already.
func (s *Server) storePasskey(ctx context.Context, connection, subject string, handle []byte, c *webauthn.Credential) error {
	id, err := config.RandomToken(16)
	if err != nil {
		return err
	}
	transports := make([]string, 0, len(c.Transport))
	for _, t := range c.Transport {
		transports = append(transports, string(t))
	}
	now := s.now()
	err = s.store.CreateFactor(ctx, storage.Factor{ID: id, Connection: connection, Subject: subject,
		Type: storage.FactorWebAuthn, Name: "Passkey", Secret: c.PublicKey, LastStep: int64(c.Authenticator.SignCount),
		CredentialID: c.ID, UserHandle: handle, Transports: transports, CredentialFlags: c.Flags.MsgpByte(),
		CreatedAt: now, LastUsedAt: now})
	if err != nil {
		return fmt.Errorf("enrol WebAuthn factor: %w", err)
	}
	return nil
}

func parseCreation(r *http.Request) (*protocol.ParsedCredentialCreationData, error) {
	raw := r.PostForm.Get("credential")
	if raw == "" || len(raw) > maxCredentialJSON {
		return nil, errors.New("no credential")
	}
	return protocol.ParseCredentialCreationResponseBytes([]byte(raw))
}

func parseAssertion(r *http.Request) (*protocol.ParsedCredentialAssertionData, error) {
	raw := r.PostForm.Get("credential")
	if raw == "" || len(raw) > maxCredentialJSON {
		return nil, errors.New("no assertion")
	}
	return protocol.ParseCredentialRequestResponseBytes([]byte(raw))
}

// ---- A passkey as the second factor.

// passkeySecondFactor is the "Use your passkey" button of the second-factor page, for a
// user with passkeys.
func (s *Server) passkeySecondFactor(st *state, mt mfaTransaction, factors []storage.Factor) (*passkeyButton, error) {
	user, err := passkeyUser(factors, accountName(mt.Claims))
	if err != nil || len(user.credentials) == 0 {
		return nil, err
	}
	rp, err := relyingParty(st)
	if err != nil {
		return nil, err
	}
	options, session, err := rp.BeginLogin(user, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("begin WebAuthn login: %w", err)
	}
	session.Expires = s.now().Add(ceremonyLifetime)
	return newPasskeyButton(st, "get", "Use your passkey", options, session, mt.TX)
}

// verifyPasskeySecondFactor checks an assertion of one of the user's passkeys and returns
// its amr method, or why it was refused (audited once: a challenge that is not the page's
// own as challenge_refused, any other refusal as failed).
func (s *Server) verifyPasskeySecondFactor(ctx context.Context, st *state, r *http.Request, mt mfaTransaction) (method, refused string, err error) {
	session, ok, err := s.openCeremony(ctx, st, r, mt.TX, ceremonyUser{mt.Connection, mt.Claims.Subject})
	if err != nil || !ok {
		return "", msgFormExpired, err
	}
	factors, err := s.usableFactors(ctx, st, mt.Connection, mt.Claims.Subject)
	if err != nil {
		return "", "", err
	}
	assertion, verr := parseAssertion(r)
	var c *webauthn.Credential
	if verr == nil {
		var user webauthnUser
		if user, err = passkeyUser(factors, accountName(mt.Claims)); err != nil {
			return "", "", err
		}
		var rp *webauthn.WebAuthn
		if rp, err = relyingParty(st); err != nil {
			return "", "", err
		}
		c, verr = rp.ValidateLogin(user, session, assertion)
	}
	if verr != nil {
		s.auditFactor(ctx, "failed", storage.FactorWebAuthn, mt.Connection, mt.Claims.Subject)
		s.logger.InfoContext(ctx, "passkey assertion refused", "connection", mt.Connection, "err", verr)
		return "", msgBadPasskeyFactor, nil
	}
	if method, err = s.acceptAssertion(ctx, factors, c); err != nil || method == "" {
		return "", msgBadPasskeyFactor, err
	}
	return method, "", nil
}

// acceptAssertion records a verified assertion of one of factors, and returns its amr
// method, or "" when its counter went back.
func (s *Server) acceptAssertion(ctx context.Context, factors []storage.Factor, c *webauthn.Credential) (string, error) {
	f, ok := factorOfCredential(factors, c.ID)
	if !ok {
		return "", nil
	}
	if ok, err := s.acceptCounter(ctx, f, c.Authenticator.SignCount); err != nil || !ok {
		return "", err
	}
	s.auditFactor(ctx, "verified", storage.FactorWebAuthn, f.Connection, f.Subject)
	return passkeyMethod(c.Flags), nil
}

// ---- Sign-in without a username.

// passkeySignIn is the "Sign in with a passkey" button of a Database connection's login
// page, when the server allows passkeys.
func (s *Server) passkeySignIn(f *loginFlow, conn config.Connection) (*passkeyButton, error) {
	if conn.Type != config.ConnectionDatabase || !passkeysOffered(f.st) {
		return nil, nil
	}
	rp, err := relyingParty(f.st)
	if err != nil {
		return nil, err
	}
	// The passkey is the only factor presented, so the authenticator must verify the user
	// (PIN or biometrics): possession and verification make it multi-factor.
	options, session, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin WebAuthn discoverable login: %w", err)
	}
	session.Expires = s.now().Add(ceremonyLifetime)
	return newPasskeyButton(f.st, "get", "Sign in with a passkey", options, session, f.sealed)
}

// loginWithPasskey signs in the user whose passkey answered the login page's challenge:
// the assertion's user handle and credential ID find them, within this connection.
//
// Throttling: before the answer is read no user is known, so only the client address's key
// is asked. An answer that names a known credential is then one attempt of the credential's
// owner, counted on the owner's keys (per user and address, per user) and the address's, as
// a password is; one that names none counts on the address's key only. Bogus answers thus
// use up their sender's budget, never one that every user of the connection shares.
func (s *Server) loginWithPasskey(w http.ResponseWriter, r *http.Request, f *loginFlow, conn config.Connection) {
	ctx := r.Context()
	fail := func(status int, msg string) {
		s.metrics.logins.WithLabelValues("failure").Inc()
		s.showPage(w, f, status, false, conn, pageData{Error: msg})
	}
	throttled := func(wait time.Duration, subject string) {
		s.metrics.logins.WithLabelValues("throttled").Inc()
		s.auditFactor(ctx, "throttled", storage.FactorWebAuthn, conn.Name, subject)
		s.showPage(w, f, http.StatusTooManyRequests, false, conn, pageData{
			Error: fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", waitSeconds(wait))})
	}
	if conn.Type != config.ConnectionDatabase || !passkeysOffered(f.st) {
		fail(http.StatusBadRequest, msgBadPasskey)
		return
	}
	ip := s.clientIP(r)
	address := []throttleKey{addressThrottleKey(ip)}
	wait, _, err := s.throttleWait(ctx, address)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if wait > 0 {
		throttled(wait, "")
		return
	}
	session, ok, err := s.openCeremony(ctx, f.st, r, f.sealed, ceremonyUser{connection: conn.Name})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !ok {
		fail(http.StatusBadRequest, msgFormExpired)
		return
	}
	answer, known, err := s.namedCredential(ctx, r, conn)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !known {
		s.auditFactor(ctx, "failed", storage.FactorWebAuthn, conn.Name, "")
		if err := s.recordLoginFailure(ctx, address); err != nil {
			s.serverError(w, r, err)
			return
		}
		fail(http.StatusUnauthorized, msgBadPasskey)
		return
	}
	var (
		claims storage.Claims
		method string
	)
	subject := answer.credential.Subject
	passed, isThrottled, wait, err := s.throttledCheck(ctx, loginThrottleKeys("passkey:"+conn.Name, subject, ip), func() (bool, error) {
		var err error
		claims, method, err = s.verifyPasskeySignIn(ctx, f.st, conn, session, answer)
		return method != "", err
	})
	switch {
	case err != nil:
		s.serverError(w, r, err)
	case isThrottled:
		throttled(wait, subject)
	case !passed:
		fail(http.StatusUnauthorized, msgBadPasskey)
	default:
		now := s.now()
		s.finishLogin(w, r, f, newSession{connection: conn.Name, claims: claims, amr: withMFA([]string{method}, method), mfaAt: now})
	}
}

// passkeyAnswer is a sign-in's assertion with the stored credential it names, not yet
// verified.
type passkeyAnswer struct {
	assertion  *protocol.ParsedCredentialAssertionData
	credential storage.Factor
	// owners are the passkeys of the credential's owner in the connection.
	owners []storage.Factor
}

// namedCredential reads the assertion of a sign-in and finds the credential it names: a
// passkey of this connection with its credential ID and user handle. known is false when
// the answer is not an assertion or names no such credential.
func (s *Server) namedCredential(ctx context.Context, r *http.Request, conn config.Connection) (answer passkeyAnswer, known bool, err error) {
	assertion, perr := parseAssertion(r)
	if perr != nil || len(assertion.Response.UserHandle) == 0 {
		// Not an assertion of a discoverable credential: refused, the server did not fail.
		return passkeyAnswer{}, false, nil //nolint:nilerr // a refusal, not an error
	}
	all, err := s.store.ListFactorsByUserHandle(ctx, assertion.Response.UserHandle)
	if err != nil {
		return passkeyAnswer{}, false, fmt.Errorf("find passkey user: %w", err)
	}
	all = slices.DeleteFunc(all, func(f storage.Factor) bool { return f.Connection != conn.Name })
	credential, known := factorOfCredential(all, assertion.RawID)
	if !known {
		return passkeyAnswer{}, false, nil
	}
	owners := slices.DeleteFunc(all, func(f storage.Factor) bool { return f.Subject != credential.Subject })
	return passkeyAnswer{assertion: assertion, credential: credential, owners: owners}, true, nil
}

// verifyPasskeySignIn checks a discoverable assertion of a known credential and returns the
// user it signs in and the amr method, or no method when it was refused.
func (s *Server) verifyPasskeySignIn(ctx context.Context, st *state, conn config.Connection, session webauthn.SessionData, answer passkeyAnswer) (storage.Claims, string, error) {
	rp, err := relyingParty(st)
	if err != nil {
		return storage.Claims{}, "", err
	}
	subject := answer.credential.Subject
	_, c, verr := rp.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) {
		return passkeyUser(answer.owners, subject)
	}, session, answer.assertion)
	if verr != nil {
		s.logger.InfoContext(ctx, "passkey sign-in refused", "connection", conn.Name, "err", verr)
		s.auditFactor(ctx, "failed", storage.FactorWebAuthn, conn.Name, subject)
		return storage.Claims{}, "", nil
	}
	_, claims, found, err := s.findUser(ctx, conn, strings.TrimPrefix(subject, conn.Name+"|"))
	if err != nil || !found || claims.Subject != subject {
		// A passkey of a user who was removed from the connection signs no one in.
		return storage.Claims{}, "", err
	}
	method, err := s.acceptAssertion(ctx, answer.owners, c)
	return claims, method, err
}
