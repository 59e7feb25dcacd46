package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
)

// ErrorCode is an OAuth 2.0 / OpenID Connect error code (RFC 6749 §4.1.2.1, §5.2; OIDC Core
// §3.1.2.6; RFC 6750) that the server returns.
type ErrorCode string

// Error codes the server returns.
const (
	ErrInvalidRequest          ErrorCode = "invalid_request"
	ErrInvalidClient           ErrorCode = "invalid_client"
	ErrInvalidGrant            ErrorCode = "invalid_grant"
	ErrUnauthorizedClient      ErrorCode = "unauthorized_client"
	ErrUnsupportedGrantType    ErrorCode = "unsupported_grant_type"
	ErrUnsupportedResponseType ErrorCode = "unsupported_response_type"
	ErrInvalidScope            ErrorCode = "invalid_scope"
	ErrServerError             ErrorCode = "server_error"
	ErrLoginRequired           ErrorCode = "login_required"
	ErrInteractionRequired     ErrorCode = "interaction_required"
	ErrInvalidToken            ErrorCode = "invalid_token"
	ErrInsufficientScope       ErrorCode = "insufficient_scope"
	// ErrInvalidTarget answers a resource parameter (RFC 8707 §2) that names no API the
	// client may get; ErrAccessDenied answers Auth0's audience parameter the same way.
	ErrInvalidTarget ErrorCode = "invalid_target"
	ErrAccessDenied  ErrorCode = "access_denied"
)

// oauthError is a protocol error with its description and the HTTP status it is sent with
// on direct (non-redirect) endpoints. Every endpoint answers failures with one: expected
// refusals carry a description for the client; unexpected failures (internalError) carry
// their cause, which is logged and never sent.
type oauthError struct {
	Code        ErrorCode `json:"error"`
	Description string    `json:"error_description,omitempty"`
	status      int
	cause       error
}

func (e *oauthError) Error() string {
	msg := string(e.Code)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Unwrap returns the failure behind a server_error.
func (e *oauthError) Unwrap() error { return e.cause }

// LogValue logs the error with its cause as structured fields.
func (e *oauthError) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("code", string(e.Code))}
	if e.Description != "" {
		attrs = append(attrs, slog.String("description", e.Description))
	}
	if e.cause != nil {
		attrs = append(attrs, slog.String("cause", e.cause.Error()))
	}
	return slog.GroupValue(attrs...)
}

// internalError is an unexpected failure of action: a server_error whose cause is logged and
// whose answer says nothing more.
func internalError(action string, err error) *oauthError {
	e := newError(ErrServerError, "")
	e.cause = fmt.Errorf("%s: %w", action, err)
	return e
}

func newError(code ErrorCode, description string) *oauthError {
	status := http.StatusBadRequest
	switch code {
	case ErrInvalidClient, ErrInvalidToken:
		status = http.StatusUnauthorized
	case ErrInsufficientScope:
		status = http.StatusForbidden
	case ErrServerError:
		status = http.StatusInternalServerError
	}
	return &oauthError{Code: code, Description: description, status: status}
}

// writeJSON sends v with the no-store headers that every token-bearing response needs
// (RFC 6749 §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *oauthError) {
	writeJSON(w, e.status, e)
}
