package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// Refresh tokens rotate on every use (RFC 9700 §4.14.2). Storage keeps only the digests of
// a family's current and previous token, so the token that replaces t is derived, not
// random: HMAC(key, familyID, Hash(t)). That lets a client that refreshes twice at once
// (two tabs) get the same new token on its second request within the reuse interval,
// instead of forking the family. Presenting the previous token after that interval is a
// replay, and revokes the whole family.

var (
	errRefreshReplayed = errors.New("refresh token replayed")
	errRefreshGrace    = errors.New("refresh token reused within the grace interval")
)

func (s *Server) grantRefreshToken(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	if client.Type == config.ClientMachineToMachine {
		return nil, newError(ErrUnauthorizedClient, "machine-to-machine applications use client_credentials")
	}
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return nil, newError(ErrInvalidRequest, "refresh_token is missing")
	}
	hash := storage.Hash(presented)
	fam, err := s.store.GetRefreshFamilyByToken(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, newError(ErrInvalidGrant, "the refresh token is invalid, expired or revoked")
	}
	if err != nil {
		return nil, internalError("load refresh token", err)
	}
	if fam.ClientID != client.ID {
		return nil, newError(ErrInvalidGrant, "the refresh token was issued to another client")
	}
	scopes := fam.Scopes
	if requested := r.PostForm.Get("scope"); requested != "" {
		scopes = nil
		for _, sc := range strings.Fields(requested) {
			if !slices.Contains(fam.Scopes, sc) {
				return nil, newError(ErrInvalidScope, "the requested scope exceeds the original grant")
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}

	now := s.now()
	grace := st.cfg.Tokens.RefreshReuseInterval.Duration
	var next string
	var refused *oauthError
	var seen storage.RefreshFamily
	_, err = s.store.UpdateRefreshFamily(ctx, fam.ID, func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		refused, seen = nil, f
		switch {
		case f.Revoked || !now.Before(f.ExpiresAt):
			refused = newError(ErrInvalidGrant, "the refresh token is invalid, expired or revoked")
			return f, refused
		case hash == f.CurrentHash:
			t, err := deriveRefreshToken(st.keys.secrets[0].refresh, f.ID, hash)
			if err != nil {
				return f, err
			}
			next = t
			f.PreviousHash, f.CurrentHash, f.RotatedAt = f.CurrentHash, storage.Hash(t), now
			return f, nil
		case hash == f.PreviousHash && now.Before(f.RotatedAt.Add(grace)):
			return f, errRefreshGrace
		default:
			return f, errRefreshReplayed
		}
	})
	switch {
	case refused != nil:
		return nil, refused
	case errors.Is(err, errRefreshGrace):
		if next = regenerateCurrent(st, seen, hash); next == "" {
			return nil, newError(ErrInvalidGrant, "the refresh token was rotated; use the newest one")
		}
	case errors.Is(err, errRefreshReplayed):
		s.logger.WarnContext(ctx, "refresh token replayed; revoking its family", "client", client.ID, "family", fam.ID)
		if err := s.store.RevokeRefreshFamily(ctx, fam.ID); err != nil {
			return nil, internalError("revoke replayed refresh family", err)
		}
		return nil, newError(ErrInvalidGrant, "the refresh token was already used")
	case errors.Is(err, storage.ErrNotFound):
		return nil, newError(ErrInvalidGrant, "the refresh token is invalid, expired or revoked")
	case err != nil:
		return nil, internalError("rotate refresh token", err)
	}

	g := grant{
		clientID:      fam.ClientID,
		scopes:        scopes,
		claims:        fam.Claims,
		sessionIDHash: fam.SessionIDHash,
		sid:           fam.SID,
		authTime:      fam.AuthTime,
		amr:           fam.AMR,
	}
	resp, oerr := s.issueTokens(ctx, st, g, storage.AccessToken{RefreshFamilyID: fam.ID})
	if oerr != nil {
		return nil, oerr
	}
	resp.RefreshToken = next
	return resp, nil
}

// regenerateCurrent re-derives the family's current token from its previous one, trying
// the previous signing key's secret too in case a key rotation happened in between.
func regenerateCurrent(st *state, f storage.RefreshFamily, previousHash string) string {
	for _, sec := range st.keys.secrets {
		t, err := deriveRefreshToken(sec.refresh, f.ID, previousHash)
		if err == nil && storage.Hash(t) == f.CurrentHash {
			return t
		}
	}
	return ""
}

func deriveRefreshToken(key []byte, familyID, previousHash string) (string, error) {
	if len(key) == 0 {
		return "", errors.New("derive refresh token: no key")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(familyID))
	m.Write([]byte{0})
	m.Write([]byte(previousHash))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// startRefreshFamily creates the family of a redeemed code with a random first token.
func (s *Server) startRefreshFamily(ctx context.Context, st *state, id string, ac storage.AuthCode) (string, *oauthError) {
	token, err := config.RandomToken(32)
	if err != nil {
		return "", internalError("generate refresh token", err)
	}
	now := s.now()
	err = s.store.CreateRefreshFamily(ctx, storage.RefreshFamily{
		ID:            id,
		ClientID:      ac.ClientID,
		Scopes:        ac.Scopes,
		Claims:        ac.Claims,
		SessionIDHash: ac.SessionIDHash,
		SID:           ac.SID,
		Connection:    ac.Connection,
		AuthTime:      ac.AuthTime,
		AMR:           ac.AMR,
		CurrentHash:   storage.Hash(token),
		RotatedAt:     now,
		CreatedAt:     now,
		ExpiresAt:     now.Add(st.cfg.Tokens.RefreshToken.Duration),
	})
	if err != nil {
		return "", internalError("store refresh family", err)
	}
	return token, nil
}
