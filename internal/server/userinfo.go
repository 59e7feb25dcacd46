package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// handleUserinfo returns the claims of an access token's user (OIDC Core §5.3), over GET
// or POST, with the token in the Authorization header or (POST) the access_token form field.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	if handlePreflight(w, r, st, "GET, POST") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeError(w, &oauthError{Code: ErrInvalidRequest, Description: "userinfo accepts GET and POST only", status: http.StatusMethodNotAllowed})
		return
	}
	token, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallpass"`)
		writeError(w, &oauthError{Code: ErrInvalidRequest, Description: "an access token is required", status: http.StatusUnauthorized})
		return
	}
	at, err := s.activeAccessToken(r.Context(), token)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.logger.ErrorContext(r.Context(), "userinfo lookup failed", "err", err)
			writeError(w, newError(ErrServerError, ""))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallpass", error="invalid_token"`)
		writeError(w, newError(ErrInvalidToken, "the access token is invalid or expired"))
		return
	}
	if client, ok := st.cfg.Client(at.ClientID); ok {
		allowCORS(w, r, client)
	}
	if !slices.Contains(at.Scopes, scopeOpenID) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallpass", error="insufficient_scope", scope="openid"`)
		writeError(w, newError(ErrInsufficientScope, "the access token was not issued with the openid scope"))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Subject string `json:"sub"`
		scopeClaims
	}{at.Claims.Subject, claimsForScopes(at.Claims, at.Scopes)})
}

func bearerToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		return token, ok && strings.EqualFold(scheme, "Bearer") && token != ""
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err == nil {
			if t := r.PostForm.Get("access_token"); t != "" {
				return t, true
			}
		}
	}
	return "", false
}

// activeAccessToken returns the stored token if it exists and has not expired; otherwise
// storage.ErrNotFound.
func (s *Server) activeAccessToken(ctx context.Context, token string) (storage.AccessToken, error) {
	at, err := s.store.GetAccessToken(ctx, digest.Of(token))
	if err != nil {
		return storage.AccessToken{}, err
	}
	if !s.now().Before(at.ExpiresAt) {
		return storage.AccessToken{}, storage.ErrNotFound
	}
	return at, nil
}
