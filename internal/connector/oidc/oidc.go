// Package oidc is the connector of an upstream OpenID provider, and of Google as a preset
// of it: discovery from the issuer, the authorization code flow with PKCE, state and nonce,
// and the ID token verified for signature, issuer, audience, expiry and nonce.
package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
)

// clockSkew is how far past its exp an ID token is still accepted, for clocks that
// disagree a little between the upstream and this server.
const clockSkew = time.Minute

// Connector is one upstream OpenID provider.
type Connector struct {
	cfg        config.OIDCConnection
	google     bool
	client     *http.Client
	provider   *gooidc.Provider
	verifier   *gooidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	userinfo   bool
	now        func() time.Time
	authOrigin string
}

var (
	_ connector.CallbackConnector = (*Connector)(nil)
	_ connector.Origins           = (*Connector)(nil)
)

// Open reads the provider's discovery document and returns its connector. google turns on
// the Google preset: the hd claim must name HostedDomain when one is set.
func Open(ctx context.Context, cfg config.OIDCConnection, google bool, opts connector.Options) (*Connector, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("client ID and client secret are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	client, err := connector.HTTPClient(opts, cfg.RootCA)
	if err != nil {
		return nil, fmt.Errorf("build HTTP client: %w", err)
	}
	// The key set fetched later by the verifier keeps using this client, but must not be
	// bound to the cancellation of the request that happened to open the connector.
	keyCtx := gooidc.ClientContext(context.WithoutCancel(ctx), client)
	provider, err := gooidc.NewProvider(keyCtx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover provider %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
		Userinfo   string `json:"userinfo_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("read discovery document: %w", err)
	}
	scopes := slices.Clone(cfg.Scopes)
	if !slices.Contains(scopes, gooidc.ScopeOpenID) {
		scopes = append([]string{gooidc.ScopeOpenID}, scopes...)
	}
	c := &Connector{
		cfg:    cfg,
		google: google,
		client: client,
		// Audience and expiry are checked by verify, so that each failure gets its own
		// message; signature and issuer stay with go-oidc.
		provider: provider,
		verifier: provider.Verifier(&gooidc.Config{ClientID: cfg.ClientID, SkipClientIDCheck: true, SkipExpiryCheck: true}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: opts.CallbackURL, Scopes: scopes,
		},
		endSession: meta.EndSession,
		userinfo:   meta.Userinfo != "",
		now:        opts.Now,
	}
	if u, err := url.Parse(provider.Endpoint().AuthURL); err == nil {
		c.authOrigin = u.Scheme + "://" + u.Host
	}
	return c, nil
}

// LoginOrigins is the origin of the authorization endpoint.
func (c *Connector) LoginOrigins() []string { return []string{c.authOrigin} }

// private is what the callback needs: it never leaves the server unencrypted.
type private struct {
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
}

// LoginURL starts an authorization code flow with PKCE (S256) and a fresh nonce.
func (c *Connector) LoginURL(_ context.Context, state string) (string, []byte, error) {
	p := private{Verifier: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.Verifier), gooidc.Nonce(p.Nonce)}
	if c.google && c.cfg.HostedDomain != "" {
		// A hint for Google's account chooser only; the hd claim is what is enforced.
		opts = append(opts, oauth2.SetAuthURLParam("hd", c.cfg.HostedDomain))
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("encode login state: %w", err)
	}
	return c.oauth.AuthCodeURL(state, opts...), b, nil
}

// HandleCallback redeems the code and verifies the ID token.
func (c *Connector) HandleCallback(ctx context.Context, r *http.Request, priv []byte) (connector.Identity, []byte, error) {
	var p private
	if err := json.Unmarshal(priv, &p); err != nil || p.Verifier == "" || p.Nonce == "" {
		return connector.Identity{}, nil, errors.New("read login state: malformed")
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "The identity provider did not sign you in (%s).", connector.ShortCode(e))
	}
	code := q.Get("code")
	if code == "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "The identity provider sent no authorization code.")
	}
	ctx = gooidc.ClientContext(ctx, c.client)
	tok, err := c.oauth.Exchange(ctx, code, oauth2.VerifierOption(p.Verifier))
	if err != nil {
		return connector.Identity{}, nil, connector.Errorf(err, "The identity provider did not accept the authorization code.")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "The identity provider sent no ID token.")
	}
	claims, err := c.verify(ctx, raw, p.Nonce)
	if err != nil {
		return connector.Identity{}, nil, err
	}
	// The amr is taken from the signed ID token only, never from userinfo.
	amr := upstreamAMR(claims["amr"])
	if c.userinfo {
		if err := c.mergeUserinfo(ctx, tok, claims); err != nil {
			return connector.Identity{}, nil, err
		}
	}
	id, err := c.identity(claims)
	if err != nil {
		return connector.Identity{}, nil, err
	}
	id.AMR = amr
	up := connector.Upstream{EndSessionURL: c.endSession, IDTokenHint: raw, ClientID: c.cfg.ClientID}
	return id, up.Marshal(), nil
}

// upstreamAMR reads an amr claim: a JSON array of strings, at most 16 of them.
func upstreamAMR(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list[:min(len(list), 16)] {
		if s, ok := x.(string); ok && len(s) <= 64 {
			out = append(out, s)
		}
	}
	return out
}

// verify checks the ID token (OIDC Core §3.1.3.7) and returns its claims.
func (c *Connector) verify(ctx context.Context, raw, nonce string) (map[string]any, error) {
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		msg := "The identity provider's ID token is not valid."
		switch {
		case strings.Contains(err.Error(), "signature"):
			msg = "The identity provider's ID token has an invalid signature."
		case strings.Contains(err.Error(), "issued by a different provider"):
			msg = "The ID token was issued by another identity provider."
		}
		return nil, connector.Errorf(err, "%s", msg)
	}
	switch {
	case !slices.Contains(idt.Audience, c.cfg.ClientID):
		return nil, connector.Errorf(nil, "The ID token was issued for another application (wrong audience).")
	case c.now().After(idt.Expiry.Add(clockSkew)):
		return nil, connector.Errorf(nil, "The identity provider's ID token has expired.")
	case subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1:
		return nil, connector.Errorf(nil, "The ID token does not belong to this sign-in (wrong nonce).")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("decode ID token claims: %w", err)
	}
	if len(idt.Audience) > 1 {
		if azp, _ := claims["azp"].(string); azp != c.cfg.ClientID {
			return nil, connector.Errorf(nil, "The ID token was issued for another application (wrong authorized party).")
		}
	}
	if c.google && c.cfg.HostedDomain != "" {
		if hd, _ := claims["hd"].(string); hd != c.cfg.HostedDomain {
			return nil, connector.Errorf(nil, "Sign in with an account of %s.", c.cfg.HostedDomain)
		}
	}
	return claims, nil
}

// mergeUserinfo adds the userinfo claims the ID token lacks: many providers put only sub
// in the ID token when an access token is issued too. Its sub must be the ID token's.
func (c *Connector) mergeUserinfo(ctx context.Context, tok *oauth2.Token, claims map[string]any) error {
	info, err := c.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return connector.Errorf(err, "The identity provider's userinfo endpoint failed.")
	}
	extra := map[string]any{}
	if err := info.Claims(&extra); err != nil {
		return fmt.Errorf("decode userinfo: %w", err)
	}
	if extra["sub"] != claims["sub"] {
		return connector.Errorf(nil, "The identity provider's userinfo is about another user.")
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// identity applies the claim mapping: each Hallpass claim reads the upstream claim the
// mapping names, or the standard claim of the same name.
func (c *Connector) identity(claims map[string]any) (connector.Identity, error) {
	name := func(claim string) string {
		if m, ok := c.cfg.ClaimMapping[claim]; ok && m != "" {
			return m
		}
		return claim
	}
	id := connector.Identity{
		UserID:        stringClaim(claims[name("sub")]),
		Username:      stringClaim(claims[name("preferred_username")]),
		Name:          stringClaim(claims[name("name")]),
		Email:         stringClaim(claims[name("email")]),
		EmailVerified: boolClaim(claims[name("email_verified")]),
		Groups:        listClaim(claims[name("groups")]),
	}
	if id.UserID == "" {
		return connector.Identity{}, connector.Errorf(nil, "The identity provider did not say who you are (no %s claim).", name("sub"))
	}
	return id, nil
}

func stringClaim(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		// Numeric IDs (some providers' sub) must not turn into 1.2e+07.
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// boolClaim accepts true and "true": some providers send email_verified as a string.
func boolClaim(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

func listClaim(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if s := stringClaim(x); s != "" {
				out = append(out, s)
			}
		}
	case string:
		if v != "" {
			out = []string{v}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
