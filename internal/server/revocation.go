package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// handleRevoke implements RFC 7009. Revoking a refresh token revokes its whole family and
// the access tokens issued from it. The answer is 200 for unknown tokens too, so the
// endpoint does not tell which tokens exist; a token of another client is left alone.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	client, ok := s.browserTokenEndpointClient(w, r, st)
	if !ok {
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, newError(ErrInvalidRequest, "token is missing"))
		return
	}
	if err := s.revoke(r.Context(), client, token, r.PostForm.Get("token_type_hint")); err != nil {
		s.logger.ErrorContext(r.Context(), "revocation failed", "client", client.ID, "err", err)
		writeError(w, newError(ErrServerError, ""))
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(ctx context.Context, client config.Client, token, hint string) error {
	hash := digest.Of(token)
	tryRefresh := func() (bool, error) {
		f, err := s.store.GetRefreshFamilyByToken(ctx, hash)
		if errors.Is(err, storage.ErrNotFound) || err == nil && f.ClientID != client.ID {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, s.store.RevokeRefreshFamily(ctx, f.ID)
	}
	tryAccess := func() (bool, error) {
		at, err := s.store.GetAccessToken(ctx, hash)
		if errors.Is(err, storage.ErrNotFound) || err == nil && at.ClientID != client.ID {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, s.store.DeleteAccessToken(ctx, hash)
	}
	order := []func() (bool, error){tryRefresh, tryAccess}
	if hint == "access_token" {
		order[0], order[1] = order[1], order[0]
	}
	for _, try := range order {
		if done, err := try(); done || err != nil {
			return err
		}
	}
	return nil
}
