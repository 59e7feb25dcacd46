package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Refresh tokens rotate on every use (RFC 9700 §4.14.2). A token names its family and its
// generation and is authenticated by the server: "<familyID>.<generation>.<tag>" with
// tag = HMAC(key, familyID, generation). Storage keeps only the digests of a family's
// current and previous token, yet any token of the family can be recognized: presenting
// one that is neither the current one nor the previous one within the reuse interval is a
// replay and revokes the whole family, however many rotations old it is. Tokens are
// derived, not random, so a client that refreshes twice at once (two tabs) gets the same
// new token on its second request within the reuse interval instead of forking the family.
// A token that names a family but whose tag is wrong is only refused: it proves no one held
// a token of that family.

var errRefreshReplayed = errors.New("refresh token replayed")

// presentedFamily finds the family of a presented refresh token, its generation, and
// whether the token may belong to it.
func (s *Server) presentedFamily(ctx context.Context, st *state, presented, hash string) (storage.RefreshFamily, uint64, *oauthError) {
	familyID, gen, structured := parseRefreshToken(presented)
	var fam storage.RefreshFamily
	var err error
	if structured {
		fam, err = s.store.GetRefreshFamily(ctx, familyID)
		if err == nil && hash != fam.CurrentHash && hash != fam.PreviousHash && !validRefreshTag(st, presented, familyID, gen) {
			err = storage.ErrNotFound
		}
	} else {
		// Issued before tokens named their family: found by digest, current or previous.
		fam, err = s.store.GetRefreshFamilyByToken(ctx, hash)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fam, 0, newError(ErrInvalidGrant, "the refresh token is invalid, expired or revoked")
	}
	if err != nil {
		return fam, 0, internalError("load refresh token", err)
	}
	return fam, gen, nil
}

// narrowScopes applies the scope parameter of a refresh (RFC 6749 §6): a subset of the
// original grant, which the new tokens carry instead of all of it.
func narrowScopes(granted []string, requested string) ([]string, *oauthError) {
	if requested == "" {
		return granted, nil
	}
	var scopes []string
	for _, sc := range strings.Fields(requested) {
		if !slices.Contains(granted, sc) {
			return nil, newError(ErrInvalidScope, "the requested scope exceeds the original grant")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return scopes, nil
}

func (s *Server) grantRefreshToken(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	presented := r.PostForm.Get("refresh_token")
	if presented == "" {
		return nil, newError(ErrInvalidRequest, "refresh_token is missing")
	}
	hash := digest.Of(presented)
	fam, gen, oerr := s.presentedFamily(ctx, st, presented, hash)
	if oerr != nil {
		return nil, oerr
	}
	if fam.ClientID != client.ID {
		return nil, newError(ErrInvalidGrant, "the refresh token was issued to another client")
	}
	if refused := checkSameTarget(r.PostForm, fam.Audience); refused != nil {
		return nil, refused
	}
	api, scopes, granted := regrant(st.cfg, client, fam.Audience, fam.Scopes)
	if !granted {
		return nil, newError(ErrInvalidGrant, "the application is no longer granted the API this refresh token was issued for")
	}
	if scopes, oerr = narrowScopes(scopes, r.PostForm.Get("scope")); oerr != nil {
		return nil, oerr
	}

	g := grant{
		clientID:      fam.ClientID,
		api:           api,
		scopes:        scopes,
		claims:        fam.Claims,
		sessionIDHash: fam.SessionIDHash,
		sid:           fam.SID,
		authTime:      fam.AuthTime,
		amr:           fam.AMR,
	}
	now := s.now()
	// The access token is minted before the rotation's transaction (a JWT one is signed:
	// SQLite's single writer must not wait for that) and stored in it, so a revocation of
	// the family that races this refresh takes it too.
	accessToken, record, err := s.newAccessToken(st, g, storage.AccessToken{RefreshFamilyID: fam.ID})
	if err != nil {
		return nil, internalError("mint access token", err)
	}
	var next string
	_, err = s.store.RotateRefreshFamily(ctx, fam.ID, rotation(st, hash, gen, now, record, &next))
	var refused *oauthError
	switch {
	case errors.As(err, &refused):
		return nil, refused
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
	resp, oerr := s.tokenResponse(st, g, accessToken)
	if oerr != nil {
		return nil, oerr
	}
	resp.RefreshToken = next
	return resp, nil
}

// rotation is the transaction of a refresh: the presented token is the family's current
// one (rotate, storing record with the new token in next), or its previous one within the
// reuse interval (the same new token again, no rotation: two tabs refreshing at once), or
// a replay (errRefreshReplayed: the family is revoked).
func rotation(st *state, hash string, gen uint64, now time.Time, record storage.AccessToken, next *string) func(storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
	grace := st.cfg.Tokens.RefreshReuseInterval.Duration
	return func(f storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
		var none storage.AccessToken
		switch {
		case f.Revoked || !now.Before(f.ExpiresAt):
			return f, none, newError(ErrInvalidGrant, "the refresh token is invalid, expired or revoked")
		case hash == f.CurrentHash:
			t, err := mintRefreshToken(st.keys.secrets[0].refresh, f.ID, gen+1)
			if err != nil {
				return f, none, err
			}
			*next = t
			f.PreviousHash, f.CurrentHash, f.RotatedAt = f.CurrentHash, digest.Of(t), now
		case hash == f.PreviousHash && now.Before(f.RotatedAt.Add(grace)):
			// A retry of the last rotation (two tabs): the same new token again, no rotation.
			if *next = regenerateCurrent(st, f, gen+1); *next == "" {
				return f, none, newError(ErrInvalidGrant, "the refresh token was rotated; use the newest one")
			}
		default:
			return f, none, errRefreshReplayed
		}
		return f, record, nil
	}
}

// regenerateCurrent re-derives the family's current token, of generation gen, trying the
// previous signing key's secret too in case a key rotation happened in between.
func regenerateCurrent(st *state, f storage.RefreshFamily, gen uint64) string {
	for _, sec := range st.keys.secrets {
		t, err := mintRefreshToken(sec.refresh, f.ID, gen)
		if err == nil && digest.Of(t) == f.CurrentHash {
			return t
		}
	}
	return ""
}

// mintRefreshToken is the token of generation gen of a family.
func mintRefreshToken(key []byte, familyID string, gen uint64) (string, error) {
	if len(key) == 0 {
		return "", errors.New("mint refresh token: no key")
	}
	g := strconv.FormatUint(gen, 10)
	return familyID + "." + g + "." + base64.RawURLEncoding.EncodeToString(refreshTag(key, familyID, g)), nil
}

func refreshTag(key []byte, familyID, gen string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(familyID))
	m.Write([]byte{0})
	m.Write([]byte(gen))
	return m.Sum(nil)
}

// parseRefreshToken splits a token into its family and generation; ok is false for a
// token of another form (one issued before tokens named their family).
func parseRefreshToken(t string) (familyID string, gen uint64, ok bool) {
	parts := strings.Split(t, ".")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", 0, false
	}
	gen, err := strconv.ParseUint(parts[1], 10, 63)
	if err != nil || strconv.FormatUint(gen, 10) != parts[1] {
		return "", 0, false
	}
	return parts[0], gen, true
}

// validRefreshTag reports whether the server minted t, with any of its keys.
func validRefreshTag(st *state, t, familyID string, gen uint64) bool {
	for _, sec := range st.keys.secrets {
		want, err := mintRefreshToken(sec.refresh, familyID, gen)
		if err == nil && hmac.Equal([]byte(want), []byte(t)) {
			return true
		}
	}
	return false
}

// newRefreshFamily starts the refresh token family of a code being redeemed, with its first
// token. The family ID is random, so the tokens derived from it are unpredictable.
func (s *Server) newRefreshFamily(st *state, g grant, connection string) (string, *storage.RefreshFamily, error) {
	id, err := config.RandomToken(16)
	if err != nil {
		return "", nil, err
	}
	token, err := mintRefreshToken(st.keys.secrets[0].refresh, id, 0)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	return token, &storage.RefreshFamily{
		ID:            id,
		ClientID:      g.clientID,
		Audience:      g.audience(),
		Scopes:        g.scopes,
		Claims:        g.claims,
		SessionIDHash: g.sessionIDHash,
		SID:           g.sid,
		Connection:    connection,
		AuthTime:      g.authTime,
		AMR:           g.amr,
		CurrentHash:   digest.Of(token),
		RotatedAt:     now,
		CreatedAt:     now,
		ExpiresAt:     now.Add(st.cfg.Tokens.RefreshToken.Duration),
	}, nil
}
