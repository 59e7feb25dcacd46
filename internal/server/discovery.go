package server

import (
	"encoding/json"
	"net/http"
)

// Scopes and claims the server implements, advertised in discovery.
var (
	supportedScopes = []string{scopeOpenID, scopeProfile, scopeEmail, scopeGroups, scopeOfflineAccess}
	supportedClaims = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "at_hash",
		"name", "preferred_username", "email", "email_verified", "groups"}
)

// discovery is the OpenID Provider Metadata (OIDC Discovery 1.0) and, served at the RFC 8414
// path too, the OAuth authorization server metadata. It lists only what is implemented.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	ACRValuesSupported                []string `json:"acr_values_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	logoutMetadata
}

// logoutMetadata is what Back-Channel and Front-Channel Logout 1.0 add to discovery. Every
// logout token and front-channel frame carries sid, so the session variants hold too.
type logoutMetadata struct {
	BackchannelLogoutSupported         bool `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported  bool `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported        bool `json:"frontchannel_logout_supported"`
	FrontchannelLogoutSessionSupported bool `json:"frontchannel_logout_session_supported"`
}

func (s *Server) discoveryDocument(st *state) discovery {
	auth := []string{"client_secret_basic", "client_secret_post", "none"}
	return discovery{
		Issuer:                            st.cfg.Issuer,
		AuthorizationEndpoint:             st.endpoint(pathAuthorize),
		TokenEndpoint:                     st.endpoint(pathToken),
		UserinfoEndpoint:                  st.endpoint(pathUserinfo),
		JWKSURI:                           st.endpoint(pathJWKS),
		RevocationEndpoint:                st.endpoint(pathRevoke),
		IntrospectionEndpoint:             st.endpoint(pathIntrospect),
		EndSessionEndpoint:                st.endpoint(pathEndSession),
		DeviceAuthorizationEndpoint:       st.endpoint(pathDeviceAuthorization),
		ScopesSupported:                   supportedScopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{modeQuery, modeFragment, modeFormPost, modeWebMessage},
		GrantTypesSupported:               []string{grantAuthorizationCode, grantRefreshToken, grantClientCredentials, grantDeviceCode, grantTokenExchange},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  st.keys.algs,
		TokenEndpointAuthMethodsSupported: auth,
		RevocationEndpointAuthMethods:     auth,
		IntrospectionEndpointAuthMethods:  auth[:2],
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported:                   supportedClaims,
		// prompt=consent is accepted but there is no consent screen, so it is not advertised.
		PromptValuesSupported:             []string{promptNone, promptLogin, promptSelectAccount},
		ACRValuesSupported:                []string{acrPassword, acrFederated, acrMFA},
		AuthorizationResponseISSSupported: true,
		logoutMetadata:                    logoutMetadata{true, true, true, true},
	}
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	// Metadata may be read cross-origin by single-page apps (RFC 9700 §4.x allows CORS here).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeRawJSON(w, s.discoveryDocument(s.state.Load()))
}

// writeRawJSON writes a public, cacheable JSON document; callers set the headers.
func writeRawJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
