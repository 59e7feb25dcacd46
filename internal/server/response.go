package server

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// sendAuthResponse delivers an authorization response (code or error) to the client's
// registered redirect URI in the requested response mode, always with state and iss
// (RFC 9207).
func (s *Server) sendAuthResponse(w http.ResponseWriter, st *state, req *authorizeRequest, params map[string]string) {
	noStore(w)
	values := url.Values{}
	for k, v := range params {
		values.Set(k, v)
	}
	if req.State != "" {
		values.Set("state", req.State)
	}
	values.Set("iss", st.cfg.Issuer)

	switch req.ResponseMode {
	case modeFormPost:
		s.renderFormPost(w, st, req.RedirectURI, values)
	case modeWebMessage:
		s.renderWebMessage(w, st, origin(req.RedirectURI), values)
	case modeFragment:
		u, _ := url.Parse(req.RedirectURI)
		u.Fragment, u.RawFragment = "", ""
		w.Header().Set("Location", u.String()+"#"+values.Encode())
		w.WriteHeader(http.StatusSeeOther)
	default:
		u, _ := url.Parse(req.RedirectURI)
		q := u.Query()
		for k, v := range values {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		w.Header().Set("Location", u.String())
		w.WriteHeader(http.StatusSeeOther)
	}
}

func (s *Server) sendAuthError(w http.ResponseWriter, st *state, req *authorizeRequest, e *oauthError) {
	params := map[string]string{"error": string(e.Code)}
	if e.Description != "" {
		params["error_description"] = e.Description
	}
	s.sendAuthResponse(w, st, req, params)
}

// formField is one hidden input of the form_post page, in a stable order.
type formField struct{ Name, Value string }

func sortedFields(values url.Values) []formField {
	var out []formField
	for k, vs := range values {
		for _, v := range vs {
			out = append(out, formField{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// cspSource is the CSP source expression that allows navigating to raw: its origin for
// http(s), its scheme for a native app's private-use URI scheme.
func cspSource(raw string) string {
	if o := origin(raw); o != "" {
		return o
	}
	scheme, _, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" || strings.ContainsAny(scheme, " ;,'\"") {
		return ""
	}
	return scheme + ":"
}
