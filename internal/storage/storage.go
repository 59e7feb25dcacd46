// Package storage is the SSO server's durable state: central sessions, authorization codes,
// device codes, access tokens, refresh token families, signed-up users and login throttling.
//
// Every backend (sqlite, postgres) implements Storage and runs the same conformance suite
// (internal/storage/conformance). Secrets that a browser or client presents (session cookie,
// code, tokens) are stored only as SHA-256 digests: the caller hashes with Hash before every
// call, so a read of the database gives nothing that can be replayed.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; backends wrap them, callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrSessionEnded refuses the redemption of a code whose session no longer exists.
	ErrSessionEnded = errors.New("the session ended")
)

// Claims are the identity claims of a user as the connection reported them.
type Claims struct {
	Subject       string   `json:"sub"`
	Username      string   `json:"preferred_username,omitempty"`
	Name          string   `json:"name,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified,omitempty"`
	Groups        []string `json:"groups,omitempty"`
}

// Session is a central SSO session. It is valid while now < CreatedAt+absolute lifetime and
// now < LastActivity+idle timeout; both limits are policy of the server, and ExpiresAt
// (the earlier of the two at the last write) lets the server's sweeper find it and end it.
type Session struct {
	// IDHash is digest.Of(cookie value).
	IDHash string
	// SID is the public session identifier put in ID tokens and logout tokens.
	SID        string
	Connection string
	Claims     Claims
	AuthTime   time.Time
	// AMR are the authentication methods references (RFC 8176: "pwd", "otp", "hwk", "mfa"…)
	// of every factor the user presented in this session, the first one's and a step-up's.
	AMR []string
	// MFAAt is when the user last presented a second factor in this session (at sign-in or
	// at a later step-up); zero when the session has none.
	MFAAt time.Time
	// Reusable is false when a client with singleSignOn off created the session: other
	// clients never reuse it silently.
	Reusable     bool
	CreatedAt    time.Time
	LastActivity time.Time
	ExpiresAt    time.Time
	// UserAgent and ClientAddress are the browser's User-Agent (truncated) and address when
	// the session started, shown to the user in the list of their sessions.
	UserAgent     string
	ClientAddress string
	// Clients lists the client IDs that received tokens in this session, sorted, unique.
	Clients []string
	// Upstream is connector-specific state needed to end the upstream session (federated
	// logout), such as an ID token hint and end-session URL. Opaque to storage.
	Upstream []byte
}

// CodeRedemption is the record of an authorization code's redemption. Codes themselves are
// sealed by the server and never stored (ADR 0012); their redemption is, so that a code is
// single use across replicas and a second redemption can revoke what the first one issued.
type CodeRedemption struct {
	// CodeHash is digest.Of(code).
	CodeHash string
	// SessionIDHash is the central session the code was issued in.
	SessionIDHash string
	// ExpiresAt is when the code expires. The server refuses the code itself afterwards; the
	// record is kept CodeRedemptionRetention longer, for replicas whose clocks differ.
	ExpiresAt time.Time
}

// AccessToken is an opaque access token.
type AccessToken struct {
	// TokenHash is digest.Of(token).
	TokenHash string
	ClientID  string
	// Audience is the identifier of the API the token is for; empty for none.
	Audience string
	Scopes   []string
	Claims   Claims
	// SessionIDHash and RefreshFamilyID tie the token to what revokes it (empty for client
	// credentials).
	SessionIDHash   string
	RefreshFamilyID string
	IssuedAt        time.Time
	ExpiresAt       time.Time
}

// Issued is what the redemption of a code issues: an access token, and a refresh token
// family when the code grants offline_access.
type Issued struct {
	AccessToken   AccessToken
	RefreshFamily *RefreshFamily
}

// RefreshFamily is a chain of rotated refresh tokens descending from one authorization.
// Only CurrentHash is valid, except PreviousHash within the reuse interval after
// RotatedAt. Presenting any other member of the family revokes it.
type RefreshFamily struct {
	ID       string
	ClientID string
	// Audience is the identifier of the API the family's access tokens are for; empty for none.
	Audience      string
	Scopes        []string
	Claims        Claims
	SessionIDHash string
	SID           string
	Connection    string
	AuthTime      time.Time
	AMR           []string
	CurrentHash   string
	PreviousHash  string
	RotatedAt     time.Time
	CreatedAt     time.Time
	ExpiresAt     time.Time
	Revoked       bool
}

// DeviceCodeStatus is where a device authorization (RFC 8628) stands.
type DeviceCodeStatus string

// Device code statuses. A code starts pending; the user approves or denies it once.
const (
	DeviceCodePending  DeviceCodeStatus = "pending"
	DeviceCodeApproved DeviceCodeStatus = "approved"
	DeviceCodeDenied   DeviceCodeStatus = "denied"
)

// DeviceCode is one device authorization request (RFC 8628 §3.1): the device polls with the
// device code while the user enters the user code at the issuer and approves it from a
// central session. The approved code is redeemed like an authorization code (RedeemCode with
// DeviceCodeHash as the code hash), which keeps it single use.
type DeviceCode struct {
	// DeviceCodeHash is digest.Of(device code), the key.
	DeviceCodeHash string
	// UserCodeHash is digest.Of(normalized user code); unique among stored codes, so creating a
	// code whose user code is taken fails with ErrAlreadyExists.
	UserCodeHash string
	ClientID     string
	// Audience is the identifier of the API the device asked for; empty for none.
	Audience string
	Scopes   []string
	Status   DeviceCodeStatus
	// SessionIDHash is the central session that approved the code (empty until then).
	SessionIDHash string
	// Interval is the minimum time between two polls; it grows with every slow_down.
	Interval time.Duration
	// LastPolledAt is the time of the last poll (zero before the first).
	LastPolledAt time.Time
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// User is a user who signed up into a Database connection.
type User struct {
	Connection   string
	Username     string
	PasswordHash string
	Claims       Claims
	CreatedAt    time.Time
}

// Purposes of the links sent by mail.
const (
	EmailTokenReset  = "reset"
	EmailTokenVerify = "verify"
)

// EmailToken is a link sent by mail to a signed-up user (password reset, address
// verification), stored under the digest of its random token.
type EmailToken struct {
	// Hash is digest.Of(token).
	Hash       string
	Purpose    string
	Connection string
	Username   string
	// Email is the address the link was sent to.
	Email     string
	ExpiresAt time.Time
}

// Factor types.
const (
	FactorTOTP = "totp"
	// FactorWebAuthn is a WebAuthn credential: a passkey or a security key.
	FactorWebAuthn = "webauthn"
)

// Factor is a second factor a user enrolled. Users are identified as in sessions: by
// connection and subject.
type Factor struct {
	// ID is random, unique across users.
	ID         string
	Connection string
	Subject    string
	Type       string
	// Name is the label the user sees in the list of factors.
	Name string
	// Secret is the factor's key material: for TOTP the shared secret (the server has to
	// read it back to check a code, so it cannot be stored as a digest); for WebAuthn the
	// credential's public key (COSE).
	Secret []byte
	// LastStep is the TOTP time step of the last code accepted, or the WebAuthn signature
	// counter of the last assertion accepted (see UseFactorStep).
	LastStep int64
	// CredentialID, UserHandle, Transports and CredentialFlags are a WebAuthn credential's
	// (empty for TOTP). The user handle is random per user, the same for all of a user's
	// credentials: it finds the user of a passkey sign-in without a username. Credential
	// IDs are unique across users. CredentialFlags are the authenticator data flags at
	// registration (backup eligibility must not change afterwards).
	CredentialID    []byte
	UserHandle      []byte
	Transports      []string
	CredentialFlags uint8
	CreatedAt       time.Time
	LastUsedAt      time.Time
}

// Throttle counts recent failed logins for a key (a username or a client IP).
type Throttle struct {
	Key         string
	Failures    int
	LastFailure time.Time
}

// Storage is implemented by every backend. All methods are safe for concurrent use by many
// server replicas sharing the backend. UpdateSession, UpdateDeviceCode, RedeemCode and
// RotateRefreshFamily run the function inside a transaction that locks the row, so
// read-modify-write cycles (session activity, device approval and polling, code redemption,
// refresh token rotation) are atomic across replicas; if the function returns an error,
// nothing is written and the error is returned unchanged.
type Storage interface {
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, idHash string) (Session, error)
	UpdateSession(ctx context.Context, idHash string, update func(Session) (Session, error)) (Session, error)
	DeleteSession(ctx context.Context, idHash string) error
	// ListSessionsBySubject returns the sessions of one user of one connection (for an
	// administrator's "revoke all sessions of this user").
	ListSessionsBySubject(ctx context.Context, connection, subject string) ([]Session, error)
	// ListExpiredSessions returns up to limit sessions with ExpiresAt <= now, earliest expiry
	// first, so that they can be ended (RevokeSessions) and their end announced (back-channel
	// logout): GarbageCollect never deletes a session.
	ListExpiredSessions(ctx context.Context, now time.Time, limit int) ([]Session, error)

	// RedeemCode records the redemption of a code and stores the tokens issue returns, in one
	// transaction. issue gets the code's session, whose row is held until commit: when the
	// session no longer exists, the redemption is refused with ErrSessionEnded before issue
	// runs, so a logout between a code's issue and its redemption ends the code too. A code
	// whose redemption is recorded already is refused with ErrAlreadyExists; a concurrent
	// redemption of the same code waits for the first and is refused then. When refused, or
	// when issue fails (its error comes back unchanged), nothing is written.
	RedeemCode(ctx context.Context, code CodeRedemption, issue func(Session) (Issued, error)) error

	CreateAccessToken(ctx context.Context, t AccessToken) error
	GetAccessToken(ctx context.Context, tokenHash string) (AccessToken, error)
	DeleteAccessToken(ctx context.Context, tokenHash string) error

	CreateRefreshFamily(ctx context.Context, f RefreshFamily) error
	GetRefreshFamily(ctx context.Context, id string) (RefreshFamily, error)
	// GetRefreshFamilyByToken finds the family whose current or previous token has this hash.
	GetRefreshFamilyByToken(ctx context.Context, tokenHash string) (RefreshFamily, error)
	// RotateRefreshFamily runs rotate on the family with its row locked. When rotate returns
	// a nil error, the family it returns and the access token it issued are written in that
	// one transaction, so a revocation of the family, which waits for the lock, also takes
	// that token; otherwise nothing is written and the error comes back unchanged.
	RotateRefreshFamily(ctx context.Context, id string, rotate func(RefreshFamily) (RefreshFamily, AccessToken, error)) (RefreshFamily, error)

	// RevokeSession deletes the session, revokes its refresh families and deletes the access
	// tokens issued in it, in one transaction.
	RevokeSession(ctx context.Context, idHash string) error
	// RevokeSessions is RevokeSession for each of idHashes, all in one transaction. It
	// returns the hashes of the sessions it deleted (the others were gone already), so that
	// of two replicas ending the same sessions only one announces each.
	RevokeSessions(ctx context.Context, idHashes []string) ([]string, error)
	// RevokeRefreshFamily revokes the family and deletes the access tokens issued from it.
	RevokeRefreshFamily(ctx context.Context, id string) error
	// RevokeByCode revokes what the recorded redemption of a code issued: its access token and
	// its refresh family with the access tokens of that family. ErrNotFound when no
	// redemption of the code is recorded.
	RevokeByCode(ctx context.Context, codeHash string) error

	// CreateDeviceCode stores a new device code; ErrAlreadyExists when its device code or
	// its user code is taken.
	CreateDeviceCode(ctx context.Context, d DeviceCode) error
	// GetDeviceCodeByUserCode finds the device code of a user code.
	GetDeviceCodeByUserCode(ctx context.Context, userCodeHash string) (DeviceCode, error)
	// UpdateDeviceCode runs update on the device code with its row locked (see UpdateSession):
	// approval and polling are read-modify-write cycles that must not interleave.
	UpdateDeviceCode(ctx context.Context, deviceCodeHash string, update func(DeviceCode) (DeviceCode, error)) (DeviceCode, error)

	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, connection, username string) (User, error)
	// SetUserPassword replaces the password hash of a signed-up user (ErrNotFound when there
	// is no such user).
	SetUserPassword(ctx context.Context, connection, username, passwordHash string) error
	// UsersByEmail returns up to limit signed-up users of a connection whose email claim is
	// email (exactly), by username.
	UsersByEmail(ctx context.Context, connection, email string, limit int) ([]User, error)
	// VerifyUserEmail marks the user's email claim verified if it still is email, and
	// reports whether it did.
	VerifyUserEmail(ctx context.Context, connection, username, email string) (bool, error)

	// CreateEmailToken stores a link sent by mail; ErrAlreadyExists when its hash is taken.
	CreateEmailToken(ctx context.Context, t EmailToken) error
	// GetEmailToken returns the unspent token with this hash and purpose, ErrNotFound when
	// there is none or it expired (now >= ExpiresAt).
	GetEmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error)
	// UseEmailToken spends the token as GetEmailToken finds it, together with every other
	// token of the same user and purpose: of concurrent uses, one succeeds and the others
	// get ErrNotFound.
	UseEmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error)

	// CreateFactor stores an enrolled factor; ErrAlreadyExists when its ID, or its WebAuthn
	// credential ID, is taken.
	CreateFactor(ctx context.Context, f Factor) error
	// ListFactors returns the factors of one user, oldest first.
	ListFactors(ctx context.Context, connection, subject string) ([]Factor, error)
	// ListFactorsByUserHandle returns the WebAuthn factors with this user handle (one
	// user's), oldest first.
	ListFactorsByUserHandle(ctx context.Context, userHandle []byte) ([]Factor, error)
	// DeleteFactor removes one factor of one user (ErrNotFound when that user has no factor
	// with this ID, so a user can never remove another user's factor).
	DeleteFactor(ctx context.Context, connection, subject, id string) error
	// UseFactorStep records that the factor accepted a code of this time step at now, and
	// reports whether the step is later than every step accepted before: a code is accepted
	// once, and never after a later one, even by two replicas at the same moment.
	UseFactorStep(ctx context.Context, id string, step int64, now time.Time) (bool, error)

	// SetRecoveryCodes replaces every recovery code of one user by codes with these digests
	// (Hash of each code), in one transaction.
	SetRecoveryCodes(ctx context.Context, connection, subject string, hashes []string, now time.Time) error
	// UseRecoveryCode deletes the user's recovery code with this digest and reports whether
	// it was there: each code works once.
	UseRecoveryCode(ctx context.Context, connection, subject, hash string) (bool, error)
	// CountRecoveryCodes is how many unused recovery codes the user has.
	CountRecoveryCodes(ctx context.Context, connection, subject string) (int, error)

	// StartEnrolmentGrace records now as the start of the user's grace to enrol a second
	// factor, unless a start is recorded already, and returns the recorded start: the first
	// time the user was asked to enrol, whichever replica asked (ADR 0024).
	StartEnrolmentGrace(ctx context.Context, connection, subject string, now time.Time) (time.Time, error)

	// RecordLoginFailure increments the failure count of key (resetting it first if the last
	// failure is older than window) and returns the new state.
	RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (Throttle, error)
	GetThrottle(ctx context.Context, key string) (Throttle, error)
	ResetThrottle(ctx context.Context, key string) error

	// UseOnce records that key was used, until expires, and reports whether this was its
	// first use: across replicas, a second use before expires gives false. A key whose
	// record expired (now >= its expires) may be used again.
	UseOnce(ctx context.Context, key string, now, expires time.Time) (bool, error)

	// GarbageCollect deletes expired access tokens, refresh families and single-use records,
	// code redemptions CodeRedemptionRetention after their code expired, device codes
	// DeviceCodeRetention after they expired, and stale throttle rows, returning how many
	// rows went. It deletes no session: an expired session ends
	// through RevokeSessions, so that its clients are told (ADR 0027).
	GarbageCollect(ctx context.Context, now time.Time) (int64, error)

	// Ping makes one round trip to the database that reads a table of the schema: it fails
	// when the database cannot be reached or no longer holds the schema (see Health).
	Ping(ctx context.Context) error

	Close() error
}
