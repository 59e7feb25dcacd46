package server

import (
	"net/http"
	"net/url"
	"strings"
)

// defaultCSP forbids everything; pages that need styles, scripts, forms or framing
// replace it with the narrowest policy that works.
const defaultCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

func setSecurityHeaders(w http.ResponseWriter, st *state) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", defaultCSP)
	if st.issuer.Scheme == "https" {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// pageCSP is the policy of an HTML page: its own stylesheet, the branding logo, scripts
// only from the one source expression script (this response's nonce, or the URL of one
// static script), and forms that may post (or redirect after posting) to
// the server itself and to formTargets.
func pageCSP(st *state, script string, formTargets ...string) string {
	var b strings.Builder
	b.WriteString("default-src 'none'; style-src 'self'; img-src 'self' data:")
	if o := origin(st.cfg.Branding.LogoURL); o != "" {
		b.WriteString(" " + o)
	}
	if script != "" {
		b.WriteString("; script-src " + script)
	}
	b.WriteString("; form-action 'self'")
	for _, t := range formTargets {
		if o := cspSource(t); o != "" {
			b.WriteString(" " + o)
		}
	}
	b.WriteString("; frame-ancestors 'none'; base-uri 'none'")
	return b.String()
}

// origin returns scheme://host[:port] of an absolute http(s) URL, or "".
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// noStore marks a response that carries a code, token or session-bound page.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// nonceSource is the CSP source expression of a script nonce.
func nonceSource(nonce string) string { return "'nonce-" + nonce + "'" }
