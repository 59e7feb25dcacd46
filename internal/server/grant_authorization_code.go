package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// grantAuthorizationCode redeems a code (RFC 6749 §4.1.3) with PKCE (RFC 7636). A code is
// single use: a second redemption is refused and revokes everything the first one issued,
// since one of the two presenters is an attacker and we cannot tell which. The code is
// marked used and its tokens are stored in one transaction, so a second redemption, however
// close behind, finds them all.
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

	var g grant
	var accessToken, refreshToken string
	_, err := s.store.RedeemAuthCode(ctx, codeHash, func(c storage.AuthCode) (storage.AuthCode, storage.Issued, error) {
		var issued storage.Issued
		if c.Used {
			return c, issued, errCodeReused
		}
		if refused := checkCodeRedemption(c, client, redirectURI, verifier, now.After(c.ExpiresAt)); refused != nil {
			return c, issued, refused
		}
		var err error
		if slices.Contains(c.Scopes, scopeOfflineAccess) {
			if refreshToken, issued.RefreshFamily, err = s.newRefreshFamily(st, c); err != nil {
				return c, issued, err
			}
			c.RefreshFamilyID = issued.RefreshFamily.ID
		}
		g = codeGrant(c)
		g.apiAudience = client.AccessTokenAudience
		link := storage.AccessToken{CodeHash: codeHash, RefreshFamilyID: c.RefreshFamilyID}
		if accessToken, issued.AccessToken, err = s.newAccessToken(st, g, link); err != nil {
			return c, issued, err
		}
		c.Used = true
		return c, issued, nil
	})
	var refused *oauthError
	switch {
	// A code whose session ended answers like an unknown one: it is checked before the
	// client is, and must not tell another client that the user signed out.
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrSessionEnded):
		return nil, newError(ErrInvalidGrant, "the authorization code is invalid or expired")
	case errors.Is(err, errCodeReused):
		s.logger.WarnContext(ctx, "authorization code reused; revoking what it issued", "client", client.ID)
		if err := s.store.RevokeByCode(ctx, codeHash); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, internalError("revoke tokens of reused code", err)
		}
		return nil, newError(ErrInvalidGrant, "the authorization code was already used")
	case errors.As(err, &refused):
		return nil, refused
	case err != nil:
		return nil, internalError("redeem authorization code", err)
	}
	resp, oerr := s.tokenResponse(st, g, accessToken)
	if oerr != nil {
		return nil, oerr
	}
	resp.RefreshToken = refreshToken
	return resp, nil
}

var errCodeReused = errors.New("authorization code reused")

// codeGrant is the authorization a redeemed code carries.
func codeGrant(c storage.AuthCode) grant {
	return grant{
		clientID:      c.ClientID,
		scopes:        c.Scopes,
		claims:        c.Claims,
		sessionIDHash: c.SessionIDHash,
		sid:           c.SID,
		authTime:      c.AuthTime,
		amr:           c.AMR,
		nonce:         c.Nonce,
	}
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
