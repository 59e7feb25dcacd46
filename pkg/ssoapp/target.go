package ssoapp

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
)

// maxTargetLength bounds target_url; a longer one is not a page of this app.
const maxTargetLength = 2048

// errNotLocal is why a target is refused, as shown on the failure page.
var errNotLocal = errors.New("target_url must be a local path of this application, such as /dashboard")

// localTarget returns target if it is a path on this application's own origin, and an error
// otherwise. Browsers are lenient about what counts as a URL: "//evil.example" and
// "/\evil.example" are absolute URLs to them, and they drop tabs and newlines inside a URL,
// so anything but a plain path that starts with exactly one slash is refused rather than
// repaired.
func localTarget(target string) (string, error) {
	switch {
	case target == "" || len(target) > maxTargetLength:
		return "", errNotLocal
	case target[0] != '/':
		return "", errNotLocal // absolute URLs, scheme-relative forms without a slash, relative paths
	case len(target) > 1 && (target[1] == '/' || target[1] == '\\'):
		return "", errNotLocal // //host and /\host are another host
	case strings.ContainsRune(target, '\\'):
		return "", errNotLocal
	}
	for _, r := range target {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return "", errNotLocal
		}
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", errNotLocal
	}
	// A path whose decoded form starts with // or /\ could be turned back into a
	// scheme-relative URL by a proxy or framework that decodes it; refuse it too.
	if p := u.Path; len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return "", errNotLocal
	}
	return target, nil
}
