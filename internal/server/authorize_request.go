package server

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
)

// Scope values the server gives meaning to; other scopes mean something only for an API
// the request names (api_target.go).
const (
	scopeOpenID        = "openid"
	scopeProfile       = "profile"
	scopeEmail         = "email"
	scopeGroups        = "groups"
	scopeOfflineAccess = "offline_access"
)

// Response modes (OAuth 2.0 Multiple Response Types, Form Post, and Auth0's web_message).
const (
	modeQuery      = "query"
	modeFragment   = "fragment"
	modeFormPost   = "form_post"
	modeWebMessage = "web_message"
)

// Prompt values (OIDC Core §3.1.2.1).
const (
	promptNone          = "none"
	promptLogin         = "login"
	promptConsent       = "consent"
	promptSelectAccount = "select_account"
)

// Parameter length limits: generous for real clients, small enough that a request cannot
// make us carry megabytes through the login transaction.
const (
	maxParamLen     = 2048
	maxTokenHintLen = 16384
)

// authorizeRequest is a parsed and validated authorization request.
type authorizeRequest struct {
	ClientID    string `json:"client_id"`
	RedirectURI string `json:"redirect_uri"`
	// RedirectURIOmitted is set when the request named no redirect_uri and the client's
	// only registered one was taken (RFC 6749 §3.1.2.3).
	RedirectURIOmitted bool     `json:"redirect_uri_omitted,omitempty"`
	ResponseMode       string   `json:"response_mode"`
	State              string   `json:"state,omitempty"`
	Nonce              string   `json:"nonce,omitempty"`
	Scopes             []string `json:"scope,omitempty"`
	// Audience is the identifier of the API the access token is for; empty for none.
	Audience    string `json:"audience,omitempty"`
	PromptNone  bool   `json:"prompt_none,omitempty"`
	PromptLogin bool   `json:"prompt_login,omitempty"`
	MaxAge      int    `json:"max_age"` // -1 when absent
	IDTokenHint string `json:"-"`
	LoginHint   string `json:"login_hint,omitempty"`
	Connection  string `json:"connection,omitempty"`
	// ACRValues are the requested authentication context classes, in order of preference.
	ACRValues           []string `json:"acr_values,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	// Device is the hash of the device code a sign-in on the device page approves
	// (device.go); such a request has no redirect URI and ends on the issuer's own page.
	// An authorization request never sets it.
	Device string `json:"device,omitempty"`
}

// acceptedBy reports whether the client, as the config being served declares it, still
// accepts the request: its redirect URI, or for a device sign-in the device grant. A reload
// may have changed the client since the request was made.
func (req *authorizeRequest) acceptedBy(client config.Client) bool {
	if req.Device != "" {
		return client.AllowsGrant(config.GrantDeviceCode)
	}
	return matchRedirectURI(client.RedirectURIs, req.RedirectURI, client.Type == config.ClientNative)
}

// pageError is an authorization request error that must not be sent to the redirect URI,
// because the client or its redirect URI cannot be trusted: the user sees an error page.
type pageError struct{ message string }

func (e *pageError) Error() string { return e.message }

// redirectError is an error that goes back to the (registered) redirect URI of req.
type redirectError struct {
	req *authorizeRequest
	err *oauthError
}

func (e *redirectError) Error() string { return e.err.Error() }

// parseAuthorizeRequest validates an authorization request against the config. It returns
// a *pageError when the client or redirect URI is not trustworthy, and a *redirectError
// (carrying the request as far as it was parsed) for every other problem.
// Unknown parameters are ignored and order does not matter (RFC 6749 §3.1).
func parseAuthorizeRequest(cfg *config.Config, form url.Values) (*authorizeRequest, config.Client, error) {
	client, redirectURI, omitted, err := trustedRedirect(cfg, form)
	if err != nil {
		return nil, client, err
	}
	req := &authorizeRequest{ClientID: client.ID, RedirectURI: redirectURI, RedirectURIOmitted: omitted, ResponseMode: modeQuery, MaxAge: -1}
	req.State = strings.Join(form["state"], "")
	if len(req.State) > maxParamLen {
		req.State = ""
		return req, client, &redirectError{req: req, err: newError(ErrInvalidRequest, "state is too long")}
	}
	// The checks run in this order, so a request with several faults gets the first one's
	// error.
	for _, check := range []func(*config.Config, config.Client, url.Values, *authorizeRequest) *oauthError{
		parseResponseMode,
		checkParametersOnce,
		checkResponseType,
		parseScopesAndAPI,
		parsePromptAndMaxAge,
		parseConnection,
		parsePKCE,
	} {
		if oerr := check(cfg, client, form, req); oerr != nil {
			return req, client, &redirectError{req: req, err: oerr}
		}
	}
	return req, client, nil
}

// trustedRedirect finds the client and the redirect URI an error may be sent to; until both
// are known to be registered, errors are shown as a page (*pageError).
func trustedRedirect(cfg *config.Config, form url.Values) (client config.Client, redirectURI string, omitted bool, err error) {
	single := func(name string) (string, bool) {
		v := form[name]
		return strings.Join(v, ""), len(v) <= 1
	}
	clientID, ok := single("client_id")
	if !ok || clientID == "" {
		return client, "", false, &pageError{"The request names no application (client_id is missing or repeated)."}
	}
	client, found := cfg.Client(clientID)
	if !found {
		return client, "", false, &pageError{"The application of this request is not registered."}
	}
	redirectURI, ok = single("redirect_uri")
	if !ok {
		return client, "", false, &pageError{"The request repeats redirect_uri."}
	}
	omitted = redirectURI == ""
	if omitted && len(client.RedirectURIs) == 1 {
		// RFC 6749 §3.1.2.3: a client with one registered URI may omit it.
		redirectURI = client.RedirectURIs[0]
	}
	if !matchRedirectURI(client.RedirectURIs, redirectURI, client.Type == config.ClientNative) {
		return client, "", false, &pageError{"The redirect URI of this request is not registered for the application."}
	}
	return client, redirectURI, omitted, nil
}

func parseResponseMode(_ *config.Config, client config.Client, form url.Values, req *authorizeRequest) *oauthError {
	v := form["response_mode"]
	mode := strings.Join(v, "")
	switch {
	case len(v) > 1:
		return newError(ErrInvalidRequest, "response_mode is repeated")
	case mode == "" || mode == modeQuery || mode == modeFragment || mode == modeFormPost:
		if mode != "" {
			req.ResponseMode = mode
		}
	case mode == modeWebMessage:
		if !slices.Contains(client.WebOrigins, origin(req.RedirectURI)) {
			return newError(ErrInvalidRequest, "response_mode web_message needs the redirect URI's origin among the application's web origins")
		}
		req.ResponseMode = mode
	default:
		return newError(ErrInvalidRequest, "response_mode is not supported")
	}
	return nil
}

// checkParametersOnce refuses a repeated or oversized parameter of those the server reads.
func checkParametersOnce(_ *config.Config, _ config.Client, form url.Values, _ *authorizeRequest) *oauthError {
	for _, name := range []string{"response_type", "scope", "nonce", "prompt", "max_age", "id_token_hint", "login_hint", "connection", "acr_values", "code_challenge", "code_challenge_method"} {
		v := form[name]
		if len(v) > 1 {
			return newError(ErrInvalidRequest, name+" is repeated")
		}
		limit := maxParamLen
		if name == "id_token_hint" {
			limit = maxTokenHintLen
		}
		if len(v) == 1 && len(v[0]) > limit {
			return newError(ErrInvalidRequest, name+" is too long")
		}
	}
	return nil
}

func checkResponseType(_ *config.Config, client config.Client, form url.Values, _ *authorizeRequest) *oauthError {
	if client.Type == config.ClientMachineToMachine {
		return newError(ErrUnauthorizedClient, "a machine-to-machine application cannot use the authorization endpoint")
	}
	if !client.AllowsGrant(config.GrantAuthorizationCode) {
		return newError(ErrUnauthorizedClient, "the application may not use the authorization code grant")
	}
	switch rt := form.Get("response_type"); rt {
	case "code":
		return nil
	case "":
		return newError(ErrInvalidRequest, "response_type is missing")
	default:
		return newError(ErrUnsupportedResponseType, "only response_type=code is supported")
	}
}

// parseScopesAndAPI reads the API the request asks for (audience or resource) and its scopes.
// Without an API, scopes the server does not know are dropped, not refused (RFC 6749 §3.3
// lets the server grant fewer scopes than requested; the token response's scope then says
// which were granted). With one, a scope it does not grant is refused: the client asked for
// a permission it does not have.
func parseScopesAndAPI(cfg *config.Config, client config.Client, form url.Values, req *authorizeRequest) *oauthError {
	target, oerr := parseTarget(form)
	if oerr != nil {
		return oerr
	}
	var granted []string
	if target.identifier != "" {
		var api *config.API
		if api, granted, oerr = resolveTarget(cfg, client, target, userFlow); oerr != nil {
			return oerr
		}
		req.Audience = api.Identifier
	}
	for _, sc := range strings.Fields(form.Get("scope")) {
		if sc == scopeOfflineAccess && !client.AllowsGrant(config.GrantRefreshToken) {
			continue // dropped like an unknown scope: the client gets no refresh tokens
		}
		known := slices.Contains(supportedScopes, sc) || slices.Contains(granted, sc)
		if !known && req.Audience != "" {
			return newError(ErrInvalidScope, "scope "+sc+" is not granted to this application for the API")
		}
		if known && !slices.Contains(req.Scopes, sc) {
			req.Scopes = append(req.Scopes, sc)
		}
	}
	req.Nonce = form.Get("nonce")
	req.LoginHint = form.Get("login_hint")
	req.IDTokenHint = form.Get("id_token_hint")
	return nil
}

func parsePromptAndMaxAge(_ *config.Config, _ config.Client, form url.Values, req *authorizeRequest) *oauthError {
	prompts := strings.Fields(form.Get("prompt"))
	req.PromptNone = slices.Contains(prompts, promptNone)
	req.PromptLogin = slices.Contains(prompts, promptLogin) || slices.Contains(prompts, promptSelectAccount)
	if req.PromptNone && len(prompts) > 1 {
		return newError(ErrInvalidRequest, "prompt=none cannot be combined with other prompt values")
	}
	if v := form.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return newError(ErrInvalidRequest, "max_age must be a non-negative integer")
		}
		req.MaxAge = n
	}
	req.ACRValues = strings.Fields(form.Get("acr_values"))
	return nil
}

func parseConnection(_ *config.Config, client config.Client, form url.Values, req *authorizeRequest) *oauthError {
	req.Connection = form.Get("connection")
	if req.Connection != "" && !slices.Contains(client.Connections, req.Connection) {
		return newError(ErrInvalidRequest, "connection is not enabled for this application")
	}
	return nil
}

func parsePKCE(_ *config.Config, client config.Client, form url.Values, req *authorizeRequest) *oauthError {
	req.CodeChallenge = form.Get("code_challenge")
	req.CodeChallengeMethod = form.Get("code_challenge_method")
	switch {
	case req.CodeChallenge == "" && req.CodeChallengeMethod != "":
		return newError(ErrInvalidRequest, "code_challenge_method without code_challenge")
	case req.CodeChallenge == "" && (client.Public() || client.RequirePKCE):
		return newError(ErrInvalidRequest, "code_challenge is required for this application (PKCE with S256)")
	case req.CodeChallenge != "" && req.CodeChallengeMethod != "S256":
		return newError(ErrInvalidRequest, "code_challenge_method must be S256")
	case req.CodeChallenge != "" && !validChallenge(req.CodeChallenge):
		return newError(ErrInvalidRequest, "code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
	}
	return nil
}

// validChallenge reports whether c looks like BASE64URL(SHA256(verifier)) without padding.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for _, r := range c {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
