package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// grantDeviceCode answers a device's poll (RFC 8628 §3.4, §3.5): authorization_pending until
// the user answers on the device page, slow_down when the device polls faster than its
// interval (which then grows), access_denied after a denial, expired_token once the code has
// expired, and the tokens once approved, redeemed like an authorization code in the session
// that approved it (single use, refused when that session has ended).
func (s *Server) grantDeviceCode(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	deviceCode := r.PostForm.Get("device_code")
	if deviceCode == "" {
		return nil, newError(ErrInvalidRequest, "device_code is missing")
	}
	hash := digest.Of(deviceCode)
	now := s.now()
	var answer *oauthError
	d, err := s.store.UpdateDeviceCode(ctx, hash, func(d storage.DeviceCode) (storage.DeviceCode, error) {
		switch {
		case d.ClientID != client.ID:
			return d, newError(ErrInvalidGrant, "the device code was issued to another client")
		case !now.Before(d.ExpiresAt):
			return d, newError(ErrExpiredToken, "the device code has expired; start again")
		}
		tooSoon := !d.LastPolledAt.IsZero() && now.Sub(d.LastPolledAt) < d.Interval-pollTolerance
		d.LastPolledAt = now
		switch {
		case tooSoon:
			d.Interval = min(d.Interval+slowDownStep, maxPollInterval)
			answer = newError(ErrSlowDown, "polling too fast; wait longer between requests")
		case d.Status == storage.DeviceCodePending:
			answer = newError(ErrAuthorizationPending, "the user has not answered yet")
		case d.Status == storage.DeviceCodeDenied:
			answer = newError(ErrAccessDenied, "the user denied the sign-in")
		}
		return d, nil
	})
	var refused *oauthError
	switch {
	case errors.As(err, &refused):
		return nil, refused
	case errors.Is(err, storage.ErrNotFound):
		return nil, newError(ErrInvalidGrant, "the device code is invalid or expired")
	case err != nil:
		return nil, internalError("poll device code", err)
	case answer != nil:
		return nil, answer
	}
	// The tokens are for the API the device asked for, if any, as the config grants it now.
	if refused := checkSameTarget(r.PostForm, d.Audience); refused != nil {
		return nil, refused
	}
	api, scopes, granted := regrant(st.cfg, client, d.Audience, d.Scopes)
	if !granted {
		return nil, newError(ErrInvalidGrant, "the application is no longer granted the API this device code was issued for")
	}
	redemption := storage.CodeRedemption{CodeHash: hash, SessionIDHash: d.SessionIDHash, ExpiresAt: d.ExpiresAt}
	return s.redeemInSession(ctx, st, client, redemption, api, scopes, "", "device code")
}
