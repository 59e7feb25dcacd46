package server

import (
	"cmp"
	"errors"
	"net/http"
	"strings"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// introspection is the RFC 7662 response; an inactive token gets {"active":false} only.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Audience  string `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	SID       string `json:"sid,omitempty"`
}

// handleIntrospect implements RFC 7662 for the resource servers of this issuer. Only
// confidential clients may call it: the endpoint must be protected, and a public client's
// identity proves nothing.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	client, ok := s.tokenEndpointClient(w, r, st)
	if !ok {
		return
	}
	if client.Public() {
		writeError(w, newError(ErrUnauthorizedClient, "public applications cannot introspect tokens"))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, newError(ErrInvalidRequest, "token is missing"))
		return
	}
	ctx := r.Context()
	now := s.now()
	hash := digest.Of(token)
	at, err := s.activeAccessToken(ctx, token)
	if err == nil {
		writeJSON(w, http.StatusOK, introspection{
			Active: true, Scope: strings.Join(at.Scopes, " "), ClientID: at.ClientID, Username: at.Claims.Username,
			TokenType: "Bearer", Expiry: at.ExpiresAt.Unix(), IssuedAt: at.IssuedAt.Unix(), Subject: at.Claims.Subject,
			Audience: cmp.Or(at.Audience, at.ClientID), Issuer: st.cfg.Issuer,
		})
		return
	}
	if !errors.Is(err, storage.ErrNotFound) {
		s.logger.ErrorContext(ctx, "introspection failed", "err", err)
		writeError(w, newError(ErrServerError, ""))
		return
	}
	f, err := s.store.GetRefreshFamilyByToken(ctx, hash)
	if err == nil && f.CurrentHash == hash && !f.Revoked && now.Before(f.ExpiresAt) {
		writeJSON(w, http.StatusOK, introspection{
			Active: true, Scope: strings.Join(f.Scopes, " "), ClientID: f.ClientID, Username: f.Claims.Username,
			TokenType: "refresh_token", Expiry: f.ExpiresAt.Unix(), IssuedAt: f.RotatedAt.Unix(), Subject: f.Claims.Subject,
			Audience: cmp.Or(f.Audience, f.ClientID), Issuer: st.cfg.Issuer, SID: f.SID,
		})
		return
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.logger.ErrorContext(ctx, "introspection failed", "err", err)
		writeError(w, newError(ErrServerError, ""))
		return
	}
	writeJSON(w, http.StatusOK, introspection{Active: false})
}
