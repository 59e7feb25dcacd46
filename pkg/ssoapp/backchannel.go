package ssoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// OpenID Connect Back-Channel Logout 1.0 (errata set 1), the receiving side: the provider
// POSTs a logout token when a central session ends, and the application ends its own
// sessions of that session (sid) or of that user (sub alone), without the browser.

const (
	backchannelLogoutKind = "http://schemas.openid.net/event/backchannel-logout"
	// logoutTokenMaxAge is how old a logout token's iat may be. Tokens are meant to be
	// used at once (the spec recommends a two-minute exp), so an older one is a replay.
	logoutTokenMaxAge = 10 * time.Minute
	// logoutClockSkew tolerates clocks that differ between the provider and this host.
	logoutClockSkew = 2 * time.Minute
	// maxLogoutJTIs bounds the replay cache.
	maxLogoutJTIs = 10_000
	maxLogoutBody = 64 << 10
)

// handleBackchannelLogout receives a logout token and ends the application sessions it
// names. It answers 200 when the token is valid (even if no session matched), 400 with an
// OAuth-style error when it is not, and 503 when the provider's keys cannot be fetched, so
// that the provider retries later.
func (a *App) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	raw := r.PostFormValue("logout_token")
	if raw == "" {
		a.refuseLogout(w, "no logout_token")
		return
	}
	p, err := a.discover(r.Context())
	if err != nil {
		a.cfg.Logger.Error("Cannot verify back-channel logout", "error", err)
		http.Error(w, msgUnavailable, http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), providerTimeout)
	defer cancel()
	lt, err := a.verifyLogoutToken(ctx, p, raw)
	if err != nil {
		a.refuseLogout(w, err.Error())
		return
	}
	n := a.sessions.deleteWhere(func(u *User) bool {
		if lt.sid != "" {
			return u.SessionID == lt.sid && (lt.sub == "" || u.Subject == lt.sub)
		}
		return u.Subject == lt.sub
	})
	a.cfg.Logger.Info("Back-channel logout", "sid", lt.sid, "sessionsEnded", n)
	w.WriteHeader(http.StatusOK)
}

func (a *App) refuseLogout(w http.ResponseWriter, reason string) {
	// The reason names the rule that failed, never the token.
	a.cfg.Logger.Warn("Refused back-channel logout", "reason", reason)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": "invalid logout token"})
}

// verifiedLogout is what a valid logout token says.
type verifiedLogout struct{ sid, sub string }

// verifyLogoutToken applies Back-Channel Logout §2.6: signature by the provider's keys
// (JWKS), iss, aud, a recent iat, exp, the typ header, exactly the logout event, no nonce,
// sid or sub, and a jti not seen before.
func (a *App) verifyLogoutToken(ctx context.Context, p *oidc.Provider, raw string) (verifiedLogout, error) {
	// go-oidc checks the signature against the provider's JWKS with the algorithms it
	// advertises, iss and aud. Expiry is checked below, with the same skew as iat.
	v := p.VerifierContext(oidc.ClientContext(ctx, a.cfg.HTTPClient), &oidc.Config{ClientID: a.cfg.ClientID, SkipExpiryCheck: true, Now: a.cfg.Now})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return verifiedLogout{}, fmt.Errorf("verify logout token: %w", err)
	}
	if err := checkLogoutType(raw); err != nil {
		return verifiedLogout{}, err
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return verifiedLogout{}, fmt.Errorf("decode logout token claims: %w", err)
	}
	var c struct {
		IssuedAt *int64                     `json:"iat"`
		Expiry   *int64                     `json:"exp"`
		JTI      string                     `json:"jti"`
		SID      string                     `json:"sid"`
		Events   map[string]json.RawMessage `json:"events"`
	}
	if err := tok.Claims(&c); err != nil {
		return verifiedLogout{}, fmt.Errorf("decode logout token claims: %w", err)
	}
	now := a.cfg.Now()
	switch {
	case c.IssuedAt == nil:
		return verifiedLogout{}, errors.New("logout token has no iat")
	case time.Unix(*c.IssuedAt, 0).After(now.Add(logoutClockSkew)):
		return verifiedLogout{}, errors.New("logout token iat is in the future")
	case time.Unix(*c.IssuedAt, 0).Before(now.Add(-logoutTokenMaxAge - logoutClockSkew)):
		return verifiedLogout{}, errors.New("logout token iat is too old")
	case c.Expiry == nil:
		return verifiedLogout{}, errors.New("logout token has no exp")
	case !now.Before(time.Unix(*c.Expiry, 0).Add(logoutClockSkew)):
		return verifiedLogout{}, errors.New("logout token has expired")
	case c.JTI == "":
		return verifiedLogout{}, errors.New("logout token has no jti")
	case len(c.Events) != 1 || !isJSONObject(c.Events[backchannelLogoutKind]):
		return verifiedLogout{}, errors.New("logout token events is not exactly the back-channel logout event")
	case claims["nonce"] != nil:
		return verifiedLogout{}, errors.New("logout token has a nonce")
	case c.SID == "" && tok.Subject == "":
		return verifiedLogout{}, errors.New("logout token has neither sid nor sub")
	}
	// Remember the jti for as long as the token could pass the checks above.
	until := time.Unix(max(*c.Expiry, *c.IssuedAt+int64(logoutTokenMaxAge/time.Second)), 0).Add(logoutClockSkew)
	if !a.logoutJTIs.Add(c.JTI, until, now) {
		return verifiedLogout{}, errors.New("logout token jti was already used")
	}
	return verifiedLogout{sid: c.SID, sub: tok.Subject}, nil
}

// checkLogoutType accepts typ logout+jwt (the spec's recommended explicit type), and no typ
// or the generic JWT from providers that do not type their logout tokens; any other
// explicit type belongs to another kind of token.
func checkLogoutType(raw string) error {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA})
	if err != nil || len(jws.Signatures) != 1 {
		return errors.New("logout token is not a compact JWS")
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
	case "logout+jwt", "jwt", "":
		return nil
	}
	return fmt.Errorf("logout token typ %q is not logout+jwt", typ)
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil
}
