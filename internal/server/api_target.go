package server

import (
	"net/url"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
)

// A client asks for a token for an API (config.API, an SSOAPI) by its identifier, with
// Auth0's audience parameter or RFC 8707's resource parameter, and gets only what the API
// grants it. The parameter decides the error code of a refusal: invalid_target for
// resource (RFC 8707 §2), access_denied for audience (as Auth0 answers).

// Parameters naming an API.
const (
	paramAudience = "audience"
	paramResource = "resource"
)

// apiTarget is the API a request names, and the parameter that named it.
type apiTarget struct {
	identifier string
	param      string
}

// parseTarget reads the API a request names; the zero target when it names none.
func parseTarget(form url.Values) (apiTarget, *oauthError) {
	audience, resource := form[paramAudience], form[paramResource]
	switch {
	case len(resource) > 1:
		return apiTarget{}, newError(ErrInvalidTarget, "one resource per request")
	case len(audience) > 1:
		return apiTarget{}, newError(ErrInvalidRequest, "audience is repeated")
	}
	var t apiTarget
	if len(resource) == 1 {
		t = apiTarget{identifier: resource[0], param: paramResource}
		if len(t.identifier) > maxParamLen {
			return apiTarget{}, newError(ErrInvalidTarget, "resource is too long")
		}
		// RFC 8707 §2: an absolute URI without fragment.
		if u, err := url.Parse(t.identifier); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(t.identifier, "#") {
			return apiTarget{}, newError(ErrInvalidTarget, "resource must be an absolute URI without fragment")
		}
	}
	if len(audience) == 1 && audience[0] != "" {
		if t.param != "" && audience[0] != t.identifier {
			return apiTarget{}, newError(ErrInvalidRequest, "audience and resource name different APIs")
		}
		if len(audience[0]) > maxParamLen {
			return apiTarget{}, newError(ErrInvalidRequest, "audience is too long")
		}
		if t.param == "" {
			t = apiTarget{identifier: audience[0], param: paramAudience}
		}
	}
	return t, nil
}

// refuse is the error for a target the client may not get.
func (t apiTarget) refuse(description string) *oauthError {
	if t.param == paramResource {
		return newError(ErrInvalidTarget, description)
	}
	return newError(ErrAccessDenied, description)
}

// Kinds of flow a grant covers.
type grantFlow int

const (
	userFlow grantFlow = iota
	clientCredentialsFlow
)

// grantedScopes returns the API a target names and the scopes it grants client in flow.
// A refusal names neither the API's scopes nor its other clients.
func grantedScopes(cfg *config.Config, client config.Client, identifier string, flow grantFlow) (*config.API, []string, bool) {
	api, ok := cfg.API(identifier)
	if !ok {
		return nil, nil, false
	}
	g, ok := api.Grant(client.ID)
	scopes := g.UserFlows
	if flow == clientCredentialsFlow {
		scopes = g.ClientCredentials
	}
	if !ok || scopes == nil {
		return nil, nil, false
	}
	return &api, scopes.Scopes, true
}

// resolveTarget checks that client may get a token for the target in flow and returns the
// API with the scopes the API grants it.
func resolveTarget(cfg *config.Config, client config.Client, t apiTarget, flow grantFlow) (*config.API, []string, *oauthError) {
	api, granted, ok := grantedScopes(cfg, client, t.identifier, flow)
	if !ok {
		return nil, nil, t.refuse(t.param + " names no API this application is granted")
	}
	return api, granted, nil
}

// regrant narrows the scopes of an earlier grant (a code, a refresh family) to what the
// config grants now: a grant the platform team withdrew ends the tokens it gave, at the
// next redemption or refresh. ok is false when the API or the client's grant is gone.
func regrant(cfg *config.Config, client config.Client, audience string, scopes []string) (*config.API, []string, bool) {
	if audience == "" {
		return nil, scopes, true
	}
	api, granted, ok := grantedScopes(cfg, client, audience, userFlow)
	if !ok {
		return nil, nil, false
	}
	kept := slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool {
		return !slices.Contains(supportedScopes, sc) && !slices.Contains(granted, sc)
	})
	return api, kept, true
}

// checkSameTarget refuses a token request that names an API other than the one its code
// or refresh token was issued for (RFC 8707 §2.2 lets it name that one again).
func checkSameTarget(form url.Values, audience string) *oauthError {
	t, oerr := parseTarget(form)
	switch {
	case oerr != nil:
		return oerr
	case t.identifier != "" && t.identifier != audience:
		return t.refuse(t.param + " is not the API this grant was issued for")
	}
	return nil
}
