package server

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/hallpass/hallpass/internal/config"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are parsed once; each is the layout plus one content template.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"message", "login", "formpost", "webmessage", "confirm", "mfa", "account", "device", "email"} {
		out[name] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// pageData is what every page template may use.
type pageData struct {
	SiteTitle string
	LogoURL   string
	StylesURL string
	Heading   string
	Error     string
	Message   string

	// Login and sign-up.
	ClientName string
	TX         string
	CSRF       string
	LoginURL   string
	FormURL    string
	SignupURL  string
	BackURL    string
	Choices    []connectionChoice
	Connection connectionChoice
	Username   string
	Email      string
	Signup     bool
	// ForgotURL is the login page's "Forgot password?" link; Token the reset link's token.
	ForgotURL string
	Token     string

	// Second factors.
	MFA           string
	Stage         string
	QRImage       template.URL
	ManualKey     string
	RecoveryCodes []string
	// HasTOTP tells the verification page that the user has an authenticator app, so that
	// a user with a passkey only is not asked for an app's code.
	HasTOTP bool
	// GraceEnds is when the user's enrolment grace ends, on an enrolment page within it.
	GraceEnds *timeShown
	// Passkey is the button of a WebAuthn ceremony, on pages that offer one.
	Passkey *passkeyButton

	// The account page.
	Account     *accountView
	TOTPAllowed bool

	// The device page: the user code typed or confirmed, and on the confirmation the user
	// the device will be signed in as, when the browser's session can answer, and the API
	// the device asks a token for, if any.
	UserCode   string
	SignedInAs string
	Confirm    bool
	APIName    string

	// Auto-submitted responses.
	Fields       []formField
	Nonce        string
	TargetOrigin string
	Response     map[string]string
}

type connectionChoice struct{ Name, DisplayName string }

// render writes a page with the given CSP. A template error is logged and becomes a bare
// 500, because a half-written page is worse than none.
func (s *Server) render(w http.ResponseWriter, st *state, status int, name string, data *pageData, csp string) {
	data.SiteTitle = st.cfg.Branding.Title
	if data.SiteTitle == "" {
		data.SiteTitle = "Sign in"
	}
	data.LogoURL = st.cfg.Branding.LogoURL
	data.StylesURL = st.endpoint(pathLoginStylesCSS)
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.logger.Error("render page", "page", name, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows an error page; it never redirects anywhere.
func (s *Server) renderError(w http.ResponseWriter, status int, message string) {
	noStore(w)
	st := s.state.Load()
	s.render(w, st, status, "message", &pageData{Heading: "Something is not right", Error: message}, pageCSP(st, ""))
}

func (s *Server) renderFormPost(w http.ResponseWriter, st *state, target string, values url.Values) {
	nonce, err := config.RandomToken(16)
	if err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	s.render(w, st, http.StatusOK, "formpost", &pageData{Heading: "Returning to the application", FormURL: target, Fields: sortedFields(values), Nonce: nonce},
		pageCSP(st, nonceSource(nonce), target))
}

// renderWebMessage answers a response_mode=web_message request: a page meant to load in a
// hidden iframe (or popup) of the web origin, posting the response to that origin only.
// Framing is allowed for that origin alone, which was checked against the client's
// registered web origins.
func (s *Server) renderWebMessage(w http.ResponseWriter, st *state, targetOrigin string, values url.Values) {
	nonce, err := config.RandomToken(16)
	if err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	resp := map[string]string{}
	for k := range values {
		resp[k] = values.Get(k)
	}
	w.Header().Del("X-Frame-Options")
	csp := fmt.Sprintf("default-src 'none'; style-src 'self'; script-src 'nonce-%s'; frame-ancestors %s; base-uri 'none'; form-action 'none'", nonce, targetOrigin)
	s.render(w, st, http.StatusOK, "webmessage", &pageData{Heading: "Signing in", Nonce: nonce, TargetOrigin: targetOrigin, Response: resp}, csp)
}

// safeColor accepts hex colours and plain colour names only, so branding from the config
// cannot inject CSS.
var safeColor = regexp.MustCompile(`^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30})$`)

func (s *Server) handleStyles(w http.ResponseWriter, r *http.Request) {
	b := s.state.Load().cfg.Branding
	primary, background := "#2f5bd3", "#f4f5f7"
	if safeColor.MatchString(b.PrimaryColor) {
		primary = b.PrimaryColor
	}
	if safeColor.MatchString(b.BackgroundColor) {
		background = b.BackgroundColor
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	fmt.Fprintf(w, ":root{--primary:%s;--on-primary:%s;--background:%s}\n%s", primary, textOn(primary), background, baseCSS)
}

// Text colours of the pages: white, and the near-black of body text.
const (
	whiteText = "#fff"
	darkText  = "#1d1f23"
)

// textOn is the text colour that reads best on a button of colour c (#rgb or #rrggbb):
// white, or near-black when a light brand colour would leave white text below WCAG's
// contrast of 4.5:1. A colour name keeps white.
func textOn(c string) string {
	bg, ok := luminance(c)
	if !ok {
		return whiteText
	}
	white, _ := luminance(whiteText)
	dark, _ := luminance(darkText)
	if contrast(white, bg) >= contrast(bg, dark) {
		return whiteText
	}
	return darkText
}

// contrast is WCAG 2's contrast ratio of a lighter and a darker relative luminance.
func contrast(lighter, darker float64) float64 { return (lighter + 0.05) / (darker + 0.05) }

// luminance is WCAG 2's relative luminance of a #rgb or #rrggbb colour.
func luminance(c string) (float64, bool) {
	hex := strings.TrimPrefix(c, "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	if len(hex) != 6 || len(c) == len(hex) {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return 0, false
	}
	channel := func(shift uint) float64 {
		x := float64((v>>shift)&0xff) / 255
		if x <= 0.04045 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	return 0.2126*channel(16) + 0.7152*channel(8) + 0.0722*channel(0), true
}

const baseCSS = `body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:var(--background);font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1f23}
.card{background:#fff;max-width:24rem;width:100%;padding:2rem;border-radius:.75rem;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.4rem;margin:.25rem 0 1rem}
.site{font-weight:600;margin:0}
.logo{max-height:3rem;max-width:12rem}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #8a8f98;border-radius:.4rem;font-size:1rem}
input:focus,button:focus{outline:3px solid var(--primary);outline-offset:2px}
[hidden],.notice:empty{display:none!important}
button{display:block;width:100%;margin-top:1rem;padding:.7rem;border:0;border-radius:.4rem;background:var(--primary);color:var(--on-primary);font-size:1rem;cursor:pointer}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:600;margin-bottom:.5rem}
.error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:.4rem}
.alt{text-align:center;margin-top:1rem}
.connection{color:#555;margin:0}
.qr{display:block;margin:0 auto}
.key,.codes code{font-family:ui-monospace,monospace;font-size:1.05rem;letter-spacing:.05em}
.codes{columns:2;padding-left:1.2rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
dt{font-weight:600}dd{margin:0 0 .5rem}
.items{list-style:none;padding:0}.items li{border-top:1px solid #d0d3d9;padding:.75rem 0}
button.secondary{background:#fff;color:#1d1f23;border:1px solid #5c6370;margin-top:.5rem}
.notice{background:#e8f0fe;padding:.6rem;border-radius:.4rem}
`

// openPage starts a browser page that takes GET and POST: the answer is never cached and the
// form is read. When the request cannot go on it has answered it and returns false; what
// names the page in that answer ("This page accepts GET and POST only.").
func (s *Server) openPage(w http.ResponseWriter, r *http.Request, what string) bool {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, http.StatusMethodNotAllowed, what+" accepts GET and POST only.")
		return false
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "The request could not be read.")
		return false
	}
	return true
}
