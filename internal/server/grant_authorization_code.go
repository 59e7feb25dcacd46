package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// grantAuthorizationCode redeems a code (RFC 6749 §4.1.3) with PKCE (RFC 7636). A code is
// single use: a second redemption is refused and revokes everything the first one issued,
// since one of the two presenters is an attacker and we cannot tell which.
func (s *Server) grantAuthorizationCode(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	if client.Type == config.ClientMachineToMachine {
		return nil, newError(ErrUnauthorizedClient, "machine-to-machine applications use client_credentials")
	}
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, newError(ErrInvalidRequest, "code is missing")
	}
	redirectURI := r.PostForm.Get("redirect_uri")
	verifier := r.PostForm.Get("code_verifier")
	codeHash := storage.Hash(code)
	now := s.now()

	var familyID, reusedFamily string
	var refused *oauthError
	var reused bool
	ac, err := s.store.UpdateAuthCode(ctx, codeHash, func(c storage.AuthCode) (storage.AuthCode, error) {
		refused, reused = checkCodeRedemption(c, client, redirectURI, verifier, now.After(c.ExpiresAt)), false
		if c.Used {
			// Marked, so a first redemption still storing its tokens sees the reuse.
			reused, reusedFamily = true, strings.TrimPrefix(c.RefreshFamilyID, codeReusedMark)
			c.RefreshFamilyID = codeReusedMark + reusedFamily
			return c, nil
		}
		if refused != nil {
			return c, refused
		}
		if slices.Contains(c.Scopes, scopeOfflineAccess) {
			id, err := config.RandomToken(16)
			if err != nil {
				return c, err
			}
			familyID = id
		}
		c.Used = true
		c.RefreshFamilyID = familyID
		return c, nil
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, newError(ErrInvalidGrant, "the authorization code is invalid or expired")
	case err == nil && reused:
		s.logger.WarnContext(ctx, "authorization code reused; revoking what it issued", "client", client.ID)
		if err := s.revokeCodeIssuance(ctx, codeHash, reusedFamily); err != nil {
			return nil, internalError("revoke tokens of reused code", err)
		}
		return nil, newError(ErrInvalidGrant, "the authorization code was already used")
	case refused != nil:
		return nil, refused
	case err != nil:
		return nil, internalError("redeem authorization code", err)
	}

	g := grant{
		clientID:      ac.ClientID,
		scopes:        ac.Scopes,
		claims:        ac.Claims,
		sessionIDHash: ac.SessionIDHash,
		sid:           ac.SID,
		authTime:      ac.AuthTime,
		amr:           ac.AMR,
		nonce:         ac.Nonce,
	}
	resp, oerr := s.issueTokens(ctx, st, g, storage.AccessToken{CodeHash: codeHash, RefreshFamilyID: familyID})
	if oerr != nil {
		return nil, oerr
	}
	if familyID != "" {
		if resp.RefreshToken, oerr = s.startRefreshFamily(ctx, st, familyID, ac); oerr != nil {
			return nil, oerr
		}
	}
	// A concurrent second redemption may have been handled while the tokens were being
	// stored, and revoked what existed then: look again now that everything exists. If it
	// comes after this look, it finds and revokes everything itself.
	after, err := s.store.UpdateAuthCode(ctx, codeHash, func(c storage.AuthCode) (storage.AuthCode, error) { return c, nil })
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, internalError("recheck authorization code", err)
	}
	if err != nil || after.RefreshFamilyID != familyID {
		if err := s.revokeCodeIssuance(ctx, codeHash, familyID); err != nil {
			return nil, internalError("revoke tokens of reused code", err)
		}
		return nil, newError(ErrInvalidGrant, "the authorization code was already used")
	}
	return resp, nil
}

// codeReusedMark prefixes the refresh family ID of a code once it was presented again.
const codeReusedMark = "reused:"

// revokeCodeIssuance revokes the refresh family and the access tokens a code issued.
func (s *Server) revokeCodeIssuance(ctx context.Context, codeHash, familyID string) error {
	if familyID != "" {
		if err := s.store.RevokeRefreshFamily(ctx, familyID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	if err := s.store.RevokeByCode(ctx, codeHash); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// checkCodeRedemption applies the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6, including
// the PKCE downgrade check: a verifier for a code issued without a challenge is refused.
func checkCodeRedemption(c storage.AuthCode, client config.Client, redirectURI, verifier string, expired bool) *oauthError {
	switch {
	case c.ClientID != client.ID:
		return newError(ErrInvalidGrant, "the authorization code was issued to another client")
	case expired:
		return newError(ErrInvalidGrant, "the authorization code is invalid or expired")
	// RFC 6749 §4.1.3: redirect_uri must be present and identical when the authorization
	// request had one. When it had none (a client with one registered URI), a redirect_uri
	// may still be sent and must be that URI.
	case c.RedirectURI != "" && redirectURI != c.RedirectURI:
		return newError(ErrInvalidGrant, "redirect_uri does not match the authorization request")
	case c.RedirectURI == "" && redirectURI != "" && !(len(client.RedirectURIs) == 1 && redirectURI == client.RedirectURIs[0]):
		return newError(ErrInvalidGrant, "redirect_uri does not match the authorization request")
	case c.CodeChallenge == "" && verifier != "":
		return newError(ErrInvalidGrant, "code_verifier sent for a request without code_challenge")
	case c.CodeChallenge != "" && verifier == "":
		return newError(ErrInvalidGrant, "code_verifier is missing")
	case c.CodeChallenge != "" && !pkceMatches(c.CodeChallenge, verifier):
		return newError(ErrInvalidGrant, "code_verifier does not match code_challenge")
	}
	return nil
}

func pkceMatches(challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}
