package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Token exchange (RFC 8693, ADR 0023): a client trades a token this server issued to it in a
// user's session, its ID token or one of its access tokens, for an access token of an API.
// The API must grant the client user flows; the new token carries the user and session of
// the presented one, so it is what an authorization request naming the API would have given
// in that session, and the session's end revokes it.

// Token type identifiers (RFC 8693 §3).
const (
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// userClaimScopes are the OpenID scopes that only release user claims into the exchanged
// token; any client may ask for them at /authorize, so an exchange may too.
var userClaimScopes = []string{scopeProfile, scopeEmail, scopeGroups}

// grantTokenExchange answers a token exchange request (RFC 8693 §2.1). Refusals follow §2.2.2:
// invalid_request for a missing or unacceptable subject token, invalid_target for an API the
// client may not get, unauthorized_client for a client that does not declare the grant.
func (s *Server) grantTokenExchange(ctx context.Context, st *state, client config.Client, r *http.Request) (*tokenResponse, *oauthError) {
	form := r.PostForm
	if refused := checkExchangeParameters(form); refused != nil {
		return nil, refused
	}
	api, scopes, refused := exchangeTarget(st.cfg, client, form)
	if refused != nil {
		return nil, refused
	}
	sess, refused := s.exchangeSubject(ctx, st, client, form.Get("subject_token"), form.Get("subject_token_type"))
	if refused != nil {
		return nil, refused
	}
	resp, refused := s.issueTokens(ctx, st, sessionGrant(client, api, scopes, "", sess), storage.AccessToken{})
	if refused != nil {
		return nil, refused
	}
	// A logout between the check above and the token's storage would have missed it: look
	// again, now that the token is where a logout deletes it.
	if _, err := s.store.GetSession(ctx, sess.IDHash); err != nil {
		if derr := s.store.DeleteAccessToken(ctx, digest.Of(resp.AccessToken)); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
			return nil, internalError("delete the exchanged token of an ended session", derr)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, newError(ErrInvalidRequest, "the subject_token's session has ended")
		}
		return nil, internalError("load the subject_token's session", err)
	}
	resp.IssuedTokenType = tokenTypeAccessToken
	return resp, nil
}

// checkExchangeParameters refuses what this server does not do: tokens of other types than
// access tokens, and delegation (an actor token).
func checkExchangeParameters(form url.Values) *oauthError {
	switch {
	case form.Get("subject_token") == "":
		return newError(ErrInvalidRequest, "subject_token is missing")
	case form.Get("subject_token_type") == "":
		return newError(ErrInvalidRequest, "subject_token_type is missing")
	case form.Has("actor_token") || form.Has("actor_token_type"):
		return newError(ErrInvalidRequest, "actor tokens (delegation) are not supported")
	case form.Has("requested_token_type") && form.Get("requested_token_type") != tokenTypeAccessToken:
		return newError(ErrInvalidRequest, "requested_token_type must be "+tokenTypeAccessToken)
	}
	return nil
}

// exchangeTarget returns the API the request names, which must grant the client user flows,
// and the scopes the new token gets: those asked for, or without scope every granted one.
func exchangeTarget(cfg *config.Config, client config.Client, form url.Values) (*config.API, []string, *oauthError) {
	target, refused := parseTarget(form)
	switch {
	case refused != nil:
		return nil, nil, refused
	case target.identifier == "":
		return nil, nil, newError(ErrInvalidRequest, "name the API with audience or resource; an exchange issues tokens for an API")
	}
	api, granted, ok := grantedScopes(cfg, client, target.identifier, userFlow)
	if !ok {
		// RFC 8693 §2.2.2: invalid_target for audience and resource alike.
		return nil, nil, newError(ErrInvalidTarget, target.param+" names no API this application is granted")
	}
	requested := strings.Fields(form.Get("scope"))
	if len(requested) == 0 {
		return api, slices.Clone(granted), nil
	}
	var scopes []string
	for _, sc := range requested {
		if !slices.Contains(userClaimScopes, sc) && !slices.Contains(granted, sc) {
			return nil, nil, newError(ErrInvalidScope, "scope "+sc+" is not granted to this application for the API")
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return api, scopes, nil
}

// exchangeSubject checks the subject token and returns the central session it was issued in,
// which must still be valid. Every refusal is invalid_request (RFC 8693 §2.2.2) and says
// nothing of the session to a client that presents another's token.
func (s *Server) exchangeSubject(ctx context.Context, st *state, client config.Client, token, tokenType string) (storage.Session, *oauthError) {
	var sess storage.Session
	var found bool
	var refused *oauthError
	switch tokenType {
	case tokenTypeIDToken:
		sess, found, refused = s.idTokenSession(ctx, st, client, token)
	case tokenTypeAccessToken:
		sess, found, refused = s.accessTokenSession(ctx, client, token)
	default:
		return sess, newError(ErrInvalidRequest, "subject_token_type must be "+tokenTypeIDToken+" or "+tokenTypeAccessToken)
	}
	switch {
	case refused != nil:
		return sess, refused
	case !found || !sessionValid(sess, st.cfg.Session, s.now()):
		return sess, newError(ErrInvalidRequest, "the subject_token's session has ended")
	}
	return sess, nil
}

// idTokenSession verifies an ID token of this server issued to client and not expired, and
// finds the session its sid names.
func (s *Server) idTokenSession(ctx context.Context, st *state, client config.Client, token string) (storage.Session, bool, *oauthError) {
	var c idTokenClaims
	if err := st.keys.verify(token, st.cfg.Issuer, &c); err != nil {
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token is not an ID token of this server")
	}
	switch {
	case len(c.Audience) != 1 || c.Audience[0] != client.ID:
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token was issued to another application")
	case s.now().Unix() >= c.Expiry:
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token has expired")
	}
	sess, found, err := s.hintedSession(ctx, &c)
	if err != nil {
		return storage.Session{}, false, internalError("find the subject_token's session", err)
	}
	return sess, found, nil
}

// accessTokenSession finds an active access token issued to client in a user's session, and
// that session.
func (s *Server) accessTokenSession(ctx context.Context, client config.Client, token string) (storage.Session, bool, *oauthError) {
	at, err := s.activeAccessToken(ctx, token)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token is not an active access token of this server")
	case err != nil:
		return storage.Session{}, false, internalError("load the subject_token", err)
	case at.ClientID != client.ID:
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token was issued to another application")
	case at.SessionIDHash == "":
		return storage.Session{}, false, newError(ErrInvalidRequest, "subject_token was issued to no user")
	}
	sess, err := s.store.GetSession(ctx, at.SessionIDHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.Session{}, false, nil
	case err != nil:
		return storage.Session{}, false, internalError("load the subject_token's session", err)
	}
	return sess, true, nil
}
