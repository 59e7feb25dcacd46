package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

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

// grantAuthorizationCode redeems a code (RFC 6749 §4.1.3) with PKCE (RFC 7636), single use
// (redeemInSession). A presentation that fails the checks below revokes nothing: it does not
// redeem the code, and whoever saw a code in a log could otherwise sign its user out of the
// application.
func (s *Server) grantAuthorizationCode(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	c, codeHash, refused := s.presentedCode(st, client, r.PostForm)
	if refused != nil {
		return nil, refused
	}
	api, scopes, granted := regrant(st.cfg, client, c.Audience, c.Scopes)
	if !granted {
		return nil, newError(ErrInvalidGrant, "the application is no longer granted the API this code was issued for")
	}

	redemption := storage.CodeRedemption{CodeHash: codeHash, SessionIDHash: c.SessionIDHash, ExpiresAt: time.Unix(0, c.Expires)}
	return s.redeemInSession(ctx, st, client, redemption, api, scopes, c.Nonce, "authorization code")
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
	return c, digest.Of(base64.RawURLEncoding.EncodeToString(raw)), nil
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
