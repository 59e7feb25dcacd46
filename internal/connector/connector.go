// Package connector holds Hallpass's upstream identity sources behind small capability
// interfaces, in the style of Dex: a connector that sends the browser to an upstream and
// takes it back (OIDC, Google, GitHub, SAML) is a CallbackConnector; one that checks a
// username and password itself (LDAP) is a PasswordConnector. The server depends only on
// these interfaces; each type lives in its own subpackage, and package connectors lists
// them and opens the connector of a connection.
package connector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Identity is a user as the upstream asserted it, already mapped to Hallpass's claims.
type Identity struct {
	// UserID is the upstream's stable identifier of the user (OIDC sub, GitHub numeric ID,
	// SAML NameID, LDAP username attribute). It is never shown; Subject builds the
	// Hallpass subject from it.
	UserID        string
	Username      string
	Name          string
	Email         string
	EmailVerified bool
	Groups        []string
	// AMR are the authentication methods the upstream reports (the amr of an OIDC ID
	// token), if it reports any.
	AMR []string
}

// Subject is the Hallpass `sub` of an upstream user: "<connection>|<upstream user ID>".
//
// Why this form: it is what Database users already get (so every subject of a server has
// one shape), it is stable for as long as the connection keeps its name and the upstream
// keeps its ID, it cannot collide across connections (connection names contain no "|"),
// and an administrator can read it when tracing a user. The same person signing in
// through two connections gets two subjects (docs/architecture.md, "Subjects") until
// account linking exists.
func Subject(connection, userID string) string { return connection + "|" + userID }

// CallbackConnector sends the browser to the upstream and handles its return.
//
// The caller keeps what LoginURL returns in private bound to the browser (the server seals
// it into a short-lived cookie) and checks that the state that comes back is the one it
// generated, before it calls HandleCallback with private.
type CallbackConnector interface {
	// LoginURL returns where to send the browser. state is an opaque random value the
	// upstream sends back (OAuth2 state, SAML RelayState). private holds what the
	// callback needs to check the answer (PKCE verifier, nonce, SAML request ID).
	LoginURL(ctx context.Context, state string) (loginURL string, private []byte, err error)
	// HandleCallback validates the upstream's answer. upstream is what the server keeps
	// in the session for federated logout (see LogoutURL); it may be nil.
	HandleCallback(ctx context.Context, r *http.Request, private []byte) (id Identity, upstream []byte, err error)
}

// PasswordConnector checks a username and password itself. ok is false, with a nil error,
// for wrong credentials (whatever the reason: unknown user, wrong password, refused
// input), so callers show one message and reveal nothing.
type PasswordConnector interface {
	Login(ctx context.Context, username, password string) (id Identity, ok bool, err error)
}

// UsernameResolver is a PasswordConnector that can tell, before any password is checked,
// which account a typed username names. Login throttling counts attempts per account, so
// the spellings an upstream matches as one user ("ALICE", "ａlice") share one budget.
type UsernameResolver interface {
	// ResolveUsername returns the upstream's canonical username; found is false when the
	// typed name matches no single account.
	ResolveUsername(ctx context.Context, username string) (canonical string, found bool, err error)
}

// MetadataConnector publishes metadata the upstream needs (SAML SP metadata).
type MetadataConnector interface {
	Metadata() (contentType string, body []byte, err error)
}

// Origins lists the origins the browser is sent to at login, so the login page's
// Content-Security-Policy can allow its chooser form to redirect there.
type Origins interface {
	LoginOrigins() []string
}

// Error is a failure the user may be told about: the message names what the upstream got
// wrong ("the ID token was issued for another application") without any secret or token.
type Error struct {
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a user-facing message and the underlying cause.
func Errorf(cause error, format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...), Err: cause}
}

// ShortCode keeps an error code an upstream sent (OAuth2 error=...) printable and short,
// since it is shown to the user.
func ShortCode(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	return s[:min(len(s), 64)]
}

// UserMessage returns the user-facing message of err, or "" if it has none.
func UserMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// Options are what every connector may need from the server.
type Options struct {
	// CallbackURL is the absolute URL of the connection's callback on this server (the
	// OAuth2 redirect_uri, the SAML assertion consumer service).
	CallbackURL string
	// MetadataURL is the absolute URL of the connection's SAML SP metadata (its entity ID).
	MetadataURL string
	// HTTPClient reaches the upstream; nil means a client with Timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock (tests cross token lifetimes with it); nil means time.Now.
	Now func() time.Time
}

// Timeout bounds every upstream call.
const Timeout = 15 * time.Second

// HTTPClient returns opts.HTTPClient, or a client with Timeout that trusts the PEM roots
// of rootCA (in addition to the system's) when given.
func HTTPClient(opts Options, rootCA string) (*http.Client, error) {
	if opts.HTTPClient != nil {
		return opts.HTTPClient, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if rootCA != "" {
		cfg, err := TLSConfig(rootCA)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Timeout: Timeout, Transport: tr}, nil
}

// TLSConfig trusts the system roots plus the PEM certificates of rootCA.
func TLSConfig(rootCA string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if rootCA != "" && !pool.AppendCertsFromPEM([]byte(rootCA)) {
		return nil, errors.New("rootCA holds no PEM certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
