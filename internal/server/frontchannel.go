package server

import (
	"bytes"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// OpenID Connect Front-Channel Logout 1.0: the signed-out page embeds, in hidden iframes,
// the frontchannelLogoutURI of every client of the ended session, with iss and sid, so that
// each application clears its own session in the user's browser. Browsers that block
// third-party cookies keep the frames from reading the applications' cookies; sid lets an
// application find its session without them, and back-channel logout does not depend on
// the browser at all.

// signedOutPage is the layout plus the signed-out content. It is kept apart from the
// shared page set because it needs data of its own (frames and where to continue).
var signedOutPage = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/signedout.html"))

// signedOutData is what the signed-out page shows.
type signedOutData struct {
	pageData
	// Frames are the front-channel logout URLs, with iss and sid.
	Frames []template.URL
	// ContinueURL is where the page goes next: the validated post-logout redirect or the
	// upstream IdP's logout. Empty: the user stays on the page.
	ContinueURL template.URL
}

// finishLogout sends the user on once their sessions have ended (ended, the browser's SSO
// session first): through the upstream IdP's logout when federated logout applies, then
// to next (already validated against the client's registered URIs), or to the signed-out
// page. With front-channel frames to load, the page is shown first and continues by
// itself.
func (s *Server) finishLogout(w http.ResponseWriter, r *http.Request, st *state, ended []storage.Session, clientID, next string, federated bool) {
	viaUpstream := false
	for _, sess := range ended {
		if !federated || viaUpstream {
			break
		}
		if u, ok := s.upstreamLogoutURL(r.Context(), st, sess, clientID, next); ok {
			next, viaUpstream = u, true
		}
	}
	var frames []string
	for i := range ended {
		frames = append(frames, frontchannelFrames(st, &ended[i])...)
	}
	// A redirect that answers a form post is subject to the form's CSP form-action, which
	// does not list the upstream IdP: the page continues there by script and link instead.
	if len(frames) == 0 && next != "" && (!viaUpstream || r.Method != http.MethodPost) {
		redirectAfterLogout(w, next)
		return
	}
	s.renderSignedOut(w, st, frames, next)
}

// frontchannelFrames returns the front-channel logout URL of every client of sess that
// registered one, with iss and sid added to its query (Front-Channel Logout §2).
func frontchannelFrames(st *state, sess *storage.Session) []string {
	if sess == nil {
		return nil
	}
	var out []string
	for _, id := range sess.Clients {
		c, ok := st.cfg.Client(id)
		if !ok || c.FrontchannelLogoutURI == "" {
			continue
		}
		u, err := url.Parse(c.FrontchannelLogoutURI)
		if err != nil || !frameable(st.cfg, u) {
			continue
		}
		q := u.Query()
		q.Set("iss", st.cfg.Issuer)
		q.Set("sid", sess.SID)
		u.RawQuery = q.Encode()
		out = append(out, u.String())
	}
	return out
}

// frameable accepts https URLs, and http ones in dev mode, where the issuer is http too.
func frameable(cfg *config.Config, u *url.URL) bool {
	return u.Host != "" && u.User == nil && (u.Scheme == "https" || u.Scheme == "http" && cfg.DevMode)
}

// renderSignedOut shows the signed-out page. Its CSP lets it frame only the front-channel
// origins, and run only its own script.
func (s *Server) renderSignedOut(w http.ResponseWriter, st *state, frames []string, next string) {
	nonce, err := config.RandomToken(16)
	if err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	data := signedOutData{pageData: pageData{Heading: "You are signed out", Nonce: nonce}}
	var origins []string
	for _, f := range frames {
		// Built from a parsed http(s) URL above: safe in an iframe src as it is.
		data.Frames = append(data.Frames, template.URL(f)) //nolint:gosec // validated URL
		if o := origin(f); o != "" && !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	if safeNavigationTarget(next) {
		// A registered post-logout URI or the upstream's end-session URL: it may be a native
		// app's private-use scheme, which html/template would otherwise blank out.
		data.ContinueURL = template.URL(next) //nolint:gosec // validated target
	}
	csp := pageCSP(st, nonceSource(nonce))
	if len(origins) > 0 {
		csp += "; frame-src " + strings.Join(origins, " ")
	}
	s.fillBranding(st, &data.pageData)
	var buf bytes.Buffer
	if err := signedOutPage.ExecuteTemplate(&buf, "layout", &data); err != nil {
		s.logger.Error("render page", "page", "signedout", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// fillBranding sets the layout's fields as render does for the shared pages.
func (s *Server) fillBranding(st *state, d *pageData) {
	d.SiteTitle = st.cfg.Branding.Title
	if d.SiteTitle == "" {
		d.SiteTitle = "Sign in"
	}
	d.LogoURL = st.cfg.Branding.LogoURL
	d.StylesURL = st.endpoint(pathLoginStylesCSS)
}

// safeNavigationTarget refuses what a link must never run: script and data URLs.
func safeNavigationTarget(raw string) bool {
	if raw == "" {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "blob", "file":
		return false
	}
	return true
}
