package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"

	"github.com/hallpass/hallpass/internal/config"
)

// authenticateClient identifies the client of a token, revocation or introspection request
// by client_secret_basic or client_secret_post; a public client names itself with
// client_id alone. Secrets are compared as SHA-256 digests in constant time against every
// accepted digest (several during a rotation overlap).
func authenticateClient(r *http.Request, st *state) (config.Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return config.Client{}, newError(ErrInvalidClient, "malformed client credentials")
		}
		if r.PostForm.Has("client_secret") {
			return config.Client{}, newError(ErrInvalidRequest, "use one client authentication method")
		}
		if formID := r.PostForm.Get("client_id"); formID != "" && formID != id {
			return config.Client{}, newError(ErrInvalidClient, "client_id does not match the authenticated client")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	client, ok := st.cfg.Client(id)
	if id == "" || !ok {
		return config.Client{}, newError(ErrInvalidClient, "client authentication failed")
	}
	if client.Public() {
		if secret != "" {
			return config.Client{}, newError(ErrInvalidClient, "client authentication failed")
		}
		return client, nil
	}
	if secret == "" || !secretMatches(client.SecretSHA256, secret) {
		return config.Client{}, newError(ErrInvalidClient, "client authentication failed")
	}
	return client, nil
}

func secretMatches(digests []string, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	match := 0
	for _, d := range digests {
		want, err := hex.DecodeString(d)
		if err != nil || len(want) != len(sum) {
			continue
		}
		match |= subtle.ConstantTimeCompare(sum[:], want)
	}
	return match == 1
}

// writeClientError sends a client authentication error, with the Basic challenge RFC 6749
// §5.2 asks for when the client tried Basic.
func writeClientError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if e.Code == ErrInvalidClient {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="hallpass"`)
		}
	}
	writeError(w, e)
}

// handlePreflight answers a CORS preflight. It carries no client identity, so any
// registered web origin passes; the real response is then allowed only for the origins of
// the client it concerns (allowCORS).
func handlePreflight(w http.ResponseWriter, r *http.Request, st *state, methods string) bool {
	if r.Method != http.MethodOptions {
		return false
	}
	w.Header().Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); st.corsOrigins[o] {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Access-Control-Allow-Methods", methods)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

func allowCORS(w http.ResponseWriter, r *http.Request, client config.Client) {
	w.Header().Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); o != "" && slices.Contains(client.WebOrigins, o) {
		w.Header().Set("Access-Control-Allow-Origin", o)
	}
}

// tokenEndpointClient reads the form of a POST to an endpoint of the token family (token,
// device authorization, revocation, introspection) and authenticates its client; when either
// fails it has answered with the protocol's error and returns false.
func (s *Server) tokenEndpointClient(w http.ResponseWriter, r *http.Request, st *state) (config.Client, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, &oauthError{Code: ErrInvalidRequest, Description: "this endpoint accepts POST only", status: http.StatusMethodNotAllowed})
		return config.Client{}, false
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, newError(ErrInvalidRequest, "the request body is not a form"))
		return config.Client{}, false
	}
	client, oerr := authenticateClient(r, st)
	if oerr != nil {
		writeClientError(w, r, oerr)
		return config.Client{}, false
	}
	return client, true
}

// browserTokenEndpointClient is tokenEndpointClient for the endpoints a single-page app calls
// from its own origin (token, revocation): it answers the CORS preflight itself and allows
// the client's web origins to read the answer.
func (s *Server) browserTokenEndpointClient(w http.ResponseWriter, r *http.Request, st *state) (config.Client, bool) {
	if handlePreflight(w, r, st, "POST") {
		return config.Client{}, false
	}
	client, ok := s.tokenEndpointClient(w, r, st)
	if ok {
		allowCORS(w, r, client)
	}
	return client, ok
}
