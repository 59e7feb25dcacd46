package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Names of the server's browser-wide cookies, before the issuer's prefix (cookieJar).
const (
	// sessionCookie holds the opaque ID of the central SSO session. Its value is 256 random
	// bits; storage only ever sees its SHA-256.
	sessionCookie = "hallpass_session"
	// csrfCookie is the double-submit CSRF token. The same value is sealed into the login
	// transaction, so a form post must come from the browser that started that transaction.
	csrfCookie = "hallpass_csrf"
	// tiedSessionsCookie holds the IDs of the sessions of clients with single sign-on off
	// that signed in in this browser, dot-separated: they are never reused, but signing out
	// in this browser ends them with its SSO session.
	tiedSessionsCookie = "hallpass_tied"
)

// cookieJar names and scopes the cookies of one issuer. Several issuers may share a host
// (https://sso.example/tenant-a and /tenant-b): each one's cookies are scoped to its own
// path, so one tenant's pages never receive, overwrite or shadow another's session.
//
// An https issuer at the root of its host uses the __Host- prefix: the browser then takes
// the cookie only with Secure, Path=/ and no Domain, so a sibling subdomain cannot plant a
// session or CSRF cookie for it (session fixation, login CSRF). An https issuer with a
// path uses __Secure-, which still keeps an http page of the host from setting one. An
// http issuer (dev mode on loopback) can use neither prefix.
type cookieJar struct {
	prefix string
	path   string
	secure bool
}

func newCookieJar(issuer *url.URL, secure bool) cookieJar {
	path := strings.TrimSuffix(issuer.Path, "/")
	j := cookieJar{path: path, secure: secure}
	switch {
	case !secure || issuer.Scheme != "https":
	case path == "":
		j.prefix = "__Host-"
	default:
		j.prefix = "__Secure-"
	}
	if j.path == "" {
		j.path = "/"
	}
	return j
}

// value returns the value of the browser's cookie name ("" when it has none).
func (j cookieJar) value(r *http.Request, name string) string {
	c, err := r.Cookie(j.prefix + name)
	if err != nil {
		return ""
	}
	return c.Value
}

// set sets cookie name, HttpOnly and SameSite=Lax, until expires (zero: for the browser
// session).
func (j cookieJar) set(w http.ResponseWriter, name, value string, expires time.Time) {
	http.SetCookie(w, j.cookie(name, value, expires))
}

// clear tells the browser to forget cookie name.
func (j cookieJar) clear(w http.ResponseWriter, name string) {
	c := j.cookie(name, "", time.Time{}) //nolint:gosec // G124: the attributes of every cookie, see cookie
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (j cookieJar) cookie(name, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{ //nolint:gosec // G124: Secure is off only for an http issuer in dev mode, where browsers drop Secure cookies
		Name:     j.prefix + name,
		Value:    value,
		Path:     j.path,
		Expires:  expires,
		HttpOnly: true,
		Secure:   j.secure,
		SameSite: http.SameSiteLaxMode,
	}
}
