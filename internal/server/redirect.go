package server

import (
	"net"
	"net/url"
	"slices"
	"strings"
)

// matchRedirectURI reports whether requested is one of the registered redirect URIs.
// Matching is exact string comparison (RFC 9700 §2.1), with the one exception RFC 8252 §7.3
// makes for native apps: on an http loopback redirect URI the port may differ, because the
// app listens on whatever port the operating system gives it.
func matchRedirectURI(registered []string, requested string, native bool) bool {
	if requested == "" {
		return false
	}
	if slices.Contains(registered, requested) {
		return true
	}
	if !native {
		return false
	}
	req, ok := parseLoopback(requested)
	if !ok {
		return false
	}
	for _, r := range registered {
		reg, ok := parseLoopback(r)
		if !ok {
			continue
		}
		if reg.Hostname() == req.Hostname() && reg.EscapedPath() == req.EscapedPath() && reg.RawQuery == req.RawQuery {
			return true
		}
	}
	return false
}

// parseLoopback parses an http URL on a loopback host, without user info or fragment.
func parseLoopback(raw string) (*url.URL, bool) {
	if strings.Contains(raw, "#") {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return nil, false
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, true
	}
	ip := net.ParseIP(host)
	return u, ip != nil && ip.IsLoopback()
}
