package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// grantAuthorizationCode redeems a code (RFC 6749 §4.1.3) with PKCE (RFC 7636). A code is
// single use: a second redemption is refused and revokes everything the first one issued,
// since one of the two presenters is an attacker and we cannot tell which. The redemption is
// recorded and its tokens are stored in one transaction, so a second redemption, however
// close behind, finds them all. A presentation that fails the checks below revokes nothing:
// it does not redeem the code, and whoever saw a code in a log could otherwise sign its user
// out of the application.
// presentedCode opens the code of a token request and checks that client may redeem it
// there: its redirect URI, PKCE verifier, expiry and API. It returns the code and its hash.
func (s *Server) presentedCode(st *state, client config.Client, form url.Values) (authorizationCode, string, *oauthError) {
	sealed := form.Get("code")
	if sealed == "" {
		return authorizationCode{}, "", newError(ErrInvalidRequest, "code is missing")
	}
	c, codeHash, err := openCode(st, sealed)
	if err != nil {
		return authorizationCode{}, "", newError(ErrInvalidGrant, "the authorization code is invalid or expired")
	}
	if refused := checkCodeRedemption(c, client, form.Get("redirect_uri"), form.Get("code_verifier"), s.now().UnixNano() >= c.Expires); refused != nil {
		return authorizationCode{}, "", refused
	}
	if refused := checkSameTarget(form, c.Audience); refused != nil {
		return authorizationCode{}, "", refused
	}
	return c, codeHash, nil
}

func (s *Server) grantAuthorizationCode(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	if client.Type == config.ClientMachineToMachine {
		return nil, newError(ErrUnauthorizedClient, "machine-to-machine applications use client_credentials")
	}
	c, codeHash, refused := s.presentedCode(st, client, r.PostForm)
	if refused != nil {
		return nil, refused
	}
	api, scopes, granted := regrant(st.cfg, client, c.Audience, c.Scopes)
	if !granted {
		return nil, newError(ErrInvalidGrant, "the application is no longer granted the API this code was issued for")
	}

	var g grant
	var accessToken, refreshToken string
	var jwtAccessToken *storage.AccessToken
	if jwtAccessTokens(api) {
		// A JWT access token is signed before the transaction, with the session as read
		// here: on SQLite the transaction runs on the single writer, which must not wait for
		// an RSA signature. The transaction still refuses the code if the session has ended.
		sess, err := s.store.GetSession(ctx, c.SessionIDHash)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, newError(ErrInvalidGrant, "the authorization code is invalid or expired")
		}
		if err != nil {
			return nil, internalError("load the code's session", err)
		}
		g = codeGrant(c, sess, api, scopes)
		var record storage.AccessToken
		if accessToken, record, err = s.newAccessToken(st, g, storage.AccessToken{}); err != nil {
			return nil, internalError("mint access token", err)
		}
		jwtAccessToken = &record
	}
	redemption := storage.CodeRedemption{CodeHash: codeHash, SessionIDHash: c.SessionIDHash, ExpiresAt: time.Unix(0, c.Expires)}
	err := s.store.RedeemCode(ctx, redemption, func(sess storage.Session) (storage.Issued, error) {
		var issued storage.Issued
		var err error
		if jwtAccessToken == nil {
			g = codeGrant(c, sess, api, scopes)
			if accessToken, issued.AccessToken, err = s.newAccessToken(st, g, storage.AccessToken{}); err != nil {
				return issued, err
			}
		} else {
			issued.AccessToken = *jwtAccessToken
		}
		if slices.Contains(c.Scopes, scopeOfflineAccess) {
			if refreshToken, issued.RefreshFamily, err = s.newRefreshFamily(st, g, sess.Connection); err != nil {
				return issued, err
			}
			issued.AccessToken.RefreshFamilyID = issued.RefreshFamily.ID
		}
		return issued, nil
	})
	switch {
	// A code whose session ended answers like an unknown one: it must not tell another
	// client that the user signed out.
	case errors.Is(err, storage.ErrSessionEnded):
		return nil, newError(ErrInvalidGrant, "the authorization code is invalid or expired")
	case errors.Is(err, storage.ErrAlreadyExists):
		s.logger.WarnContext(ctx, "authorization code reused; revoking what it issued", "client", client.ID)
		if err := s.store.RevokeByCode(ctx, codeHash); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, internalError("revoke tokens of reused code", err)
		}
		return nil, newError(ErrInvalidGrant, "the authorization code was already used")
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

// openCode unseals a code and returns it with its hash, the key of its redemption. The hash
// is taken over the canonical spelling of the decoded bytes: a base64 decoder skips line
// breaks, and another spelling of the same code must not pass for a new code.
func openCode(st *state, sealed string) (authorizationCode, string, error) {
	var c authorizationCode
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return c, "", errBadSealed
	}
	if err := st.keys.sealer.openRaw(purposeAuthorizationCode, raw, &c); err != nil {
		return c, "", err
	}
	return c, storage.Hash(base64.RawURLEncoding.EncodeToString(raw)), nil
}

// codeGrant is the authorization a redeemed code carries, with the user of its session and
// the API and scopes that the config grants now (regrant).
func codeGrant(c authorizationCode, sess storage.Session, api *config.API, scopes []string) grant {
	return grant{
		clientID:      c.ClientID,
		api:           api,
		scopes:        scopes,
		claims:        sess.Claims,
		sessionIDHash: sess.IDHash,
		sid:           sess.SID,
		authTime:      sess.AuthTime,
		amr:           sess.AMR,
		nonce:         c.Nonce,
	}
}

// checkCodeRedemption applies the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6, including
// the PKCE downgrade check: a verifier for a code issued without a challenge is refused.
func checkCodeRedemption(c authorizationCode, client config.Client, redirectURI, verifier string, expired bool) *oauthError {
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
