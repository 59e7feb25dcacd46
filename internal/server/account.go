package server

// The account page (/account): a signed-in user's profile, second factors, recovery codes
// and central sessions, with sign-out of one session or all of them through
// terminateSession, the path every logout takes (back-channel logout tokens go out).

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

const (
	pathAccount = "/account"
	// accountClientID names the account page as the application of its own sign-ins. ':'
	// is not allowed in the client IDs the operator issues (config.ValidClientID), so no
	// registered client can take it, and /authorize does not know it: only the server
	// starts its sign-ins.
	accountClientID = "hallpass:account"
	// accountFormLifetime bounds how long a rendered account page's forms stay valid.
	accountFormLifetime = time.Hour
	// endAccount is why a session ended from the account page.
	endAccount = "account"
)

// client looks a client up, the account page's own included.
func (st *state) client(id string) (config.Client, bool) {
	if id == accountClientID {
		return accountClient(st), true
	}
	return st.cfg.Client(id)
}

// accountClient is the account page as an application: it signs in through the login pages
// like any other, with every connection of the server, and uses the central session.
func accountClient(st *state) config.Client {
	names := make([]string, 0, len(st.cfg.Connections))
	for _, c := range st.cfg.Connections {
		names = append(names, c.Name)
	}
	return config.Client{ID: accountClientID, Name: "Your account", Type: config.ClientRegularWebApp,
		RedirectURIs: []string{st.endpoint(pathAccount)}, SingleSignOn: true, Connections: names}
}

// accountForm is the CSRF token of the account page's forms: sealed, so it cannot be
// forged, and bound to the session that rendered the page, so a token from another
// session (or a stolen page after sign-out) does not work.
type accountForm struct {
	SessionIDHash string `json:"h"`
	Expires       int64  `json:"e"`
}

// accountView is what the account page shows.
type accountView struct {
	Claims        storage.Claims
	Connection    string
	Factors       []factorView
	RecoveryCodes int
	Sessions      []sessionView
	// NewRecoveryCodes are shown once, right after they were made.
	NewRecoveryCodes []string
	// CanChangePassword is set for users who signed up into a Database connection.
	CanChangePassword bool
	Notice            accountNotice
}

// accountNotice is the outcome of a form, shown beside it.
type accountNotice struct {
	Password, PasswordError string
}

type factorView struct {
	ID, Name, Created, LastUsed string
}

type sessionView struct {
	SID, Device, Address, Started, LastActivity string
	Apps                                        []string
	Current, MFA                                bool
}

// handleAccount shows the account page (GET) and runs its forms (POST).
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	if !s.openPage(w, r, "This page") {
		return
	}
	ctx := r.Context()
	st := s.state.Load()
	req := &authorizeRequest{ClientID: accountClientID, RedirectURI: st.endpoint(pathAccount), ResponseMode: modeQuery,
		Scopes: []string{scopeOpenID}, MaxAge: -1}
	sess, ok, err := s.currentSession(ctx, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !ok {
		if r.Method == http.MethodPost {
			s.renderError(w, http.StatusForbidden, "You are signed out. Open the account page again to sign in.")
			return
		}
		s.startLogin(w, r, st, req)
		return
	}
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		// The answer of the account page's own sign-in: the session cookie is what counts.
		seeOther(w, st.endpoint(pathAccount))
		return
	}
	factors, err := s.usableFactors(ctx, st, sess.Connection, sess.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	// A user with a second factor shows it before changing anything here.
	if len(factors) > 0 && !hasMFA(sess.AMR) {
		client := accountClient(st)
		client.RequireMFA = true
		s.startStepUp(w, r, st, req, client, sess)
		return
	}
	if r.Method == http.MethodGet {
		s.showAccountWith(w, r, st, http.StatusOK, sess, factors, accountNotice{})
		return
	}
	if !s.checkAccountForm(r, st, sess) {
		s.renderError(w, http.StatusForbidden, msgFormExpired)
		return
	}
	s.accountAction(w, r, st, req, sess, factors)
}

func (s *Server) checkAccountForm(r *http.Request, st *state, sess storage.Session) bool {
	var f accountForm
	if err := st.keys.sealer.open(purposeAccountForm, r.PostForm.Get("csrf"), &f); err != nil {
		return false
	}
	return s.now().Unix() <= f.Expires && subtle.ConstantTimeCompare([]byte(f.SessionIDHash), []byte(sess.IDHash)) == 1
}

// accountAction runs one form of the account page.
func (s *Server) accountAction(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, sess storage.Session, factors []storage.Factor) {
	ctx := r.Context()
	conn, subject := sess.Connection, sess.Claims.Subject
	switch r.PostForm.Get("action") {
	case "add-authenticator":
		if !st.cfg.MFA.Allows(config.FactorTOTP) {
			s.renderError(w, http.StatusForbidden, "This server does not offer authenticator apps.")
			return
		}
		s.startEnrolment(w, r, st, req, sess)
	case "add-passkey":
		s.enrolPasskey(w, r, st, sess, factors)
	case "remove-factor":
		id := r.PostForm.Get("factor")
		kind := storage.FactorTOTP
		if i := slices.IndexFunc(factors, func(f storage.Factor) bool { return f.ID == id }); i >= 0 {
			kind = factors[i].Type
		}
		err := s.store.DeleteFactor(ctx, conn, subject, id)
		if errors.Is(err, storage.ErrNotFound) {
			s.renderError(w, http.StatusNotFound, "This factor is not one of yours, or was removed already.")
			return
		}
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		s.auditFactor(ctx, "removed", kind, conn, subject)
		seeOther(w, st.endpoint(pathAccount))
	case "new-recovery-codes":
		if len(factors) == 0 {
			s.renderError(w, http.StatusBadRequest, "Recovery codes come with a second factor: add one first.")
			return
		}
		codes, err := s.regenerateRecoveryCodes(ctx, conn, subject)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		s.showAccountWith(w, r, st, http.StatusOK, sess, factors, accountNotice{}, codes...)
	case "change-password":
		s.changePassword(w, r, st, sess, factors)
	case "end-session", "end-all-sessions":
		s.endSessionsFromAccount(w, r, st, sess)
	default:
		s.renderError(w, http.StatusBadRequest, "This action is not known.")
	}
}

// startEnrolment shows the enrolment page of a new authenticator for a signed-in user; it
// ends like a step-up, with the session raised and the account page shown again.
func (s *Server) startEnrolment(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest, sess storage.Session) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	tx := loginTransaction{Request: *req, CSRF: csrf, Expires: s.now().Add(loginTransactionLifetime).Unix()}
	sealed, err := sealTransaction(st, tx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	secret, err := newTOTPSecret()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	f := &loginFlow{st: st, tx: tx, sealed: sealed, client: accountClient(st)}
	s.showMFAPage(w, r, f, http.StatusOK, mfaTransaction{TX: sealed, Stage: stageEnrol, Connection: sess.Connection,
		Claims: sess.Claims, AMR: sess.AMR, SessionIDHash: sess.IDHash, Secret: secret,
		Expires: s.now().Add(mfaLifetime).Unix()}, "", nil)
}

// endSessionsFromAccount signs the user out of one of their sessions, or of all of them,
// as a logout would: each ends through terminateSession.
func (s *Server) endSessionsFromAccount(w http.ResponseWriter, r *http.Request, st *state, current storage.Session) {
	ctx := r.Context()
	sessions, err := s.store.ListSessionsBySubject(ctx, current.Connection, current.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	all := r.PostForm.Get("action") == "end-all-sessions"
	sid := r.PostForm.Get("sid")
	endedCurrent, found := false, false
	for _, sess := range sessions {
		if !all && sess.SID != sid {
			continue
		}
		found = true
		if _, err := s.terminateSession(ctx, st, sess, endAccount); err != nil {
			s.serverError(w, r, err)
			return
		}
		endedCurrent = endedCurrent || sess.IDHash == current.IDHash
	}
	if !found && !all {
		s.renderError(w, http.StatusNotFound, "This session has ended already.")
		return
	}
	s.logger.InfoContext(ctx, "sessions ended from the account page", "connection", current.Connection, "all", all)
	if endedCurrent {
		st.cookies.clear(w, sessionCookie)
		s.render(w, st, http.StatusOK, "message", &pageData{Heading: "Signed out",
			Message: "You are signed out. Applications that were using the ended sessions have been told."}, pageCSP(st, ""))
		return
	}
	seeOther(w, st.endpoint(pathAccount))
}

// showAccountWith renders the account page with a form's outcome and, right after they
// were made, new recovery codes.
func (s *Server) showAccountWith(w http.ResponseWriter, r *http.Request, st *state, status int, sess storage.Session, factors []storage.Factor, notice accountNotice, newCodes ...string) {
	ctx := r.Context()
	csrf, err := st.keys.sealer.seal(purposeAccountForm, accountForm{SessionIDHash: sess.IDHash, Expires: s.now().Add(accountFormLifetime).Unix()})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	codes, err := s.store.CountRecoveryCodes(ctx, sess.Connection, sess.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	sessions, err := s.store.ListSessionsBySubject(ctx, sess.Connection, sess.Claims.Subject)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	conn, _ := st.cfg.Connection(sess.Connection)
	v := &accountView{Claims: sess.Claims, Connection: displayName(conn), RecoveryCodes: codes, NewRecoveryCodes: newCodes,
		CanChangePassword: passwordChangeable(st, sess), Notice: notice}
	for _, f := range factors {
		fv := factorView{ID: f.ID, Name: f.Name, Created: formatTime(f.CreatedAt), LastUsed: formatTime(f.LastUsedAt)}
		v.Factors = append(v.Factors, fv)
	}
	now := s.now()
	for _, other := range sessions {
		if !sessionValid(other, st.cfg.Session, now) {
			continue
		}
		sv := sessionView{SID: other.SID, Device: describeUserAgent(other.UserAgent), Address: other.ClientAddress,
			Started: formatTime(other.CreatedAt), LastActivity: formatTime(other.LastActivity),
			Current: other.IDHash == sess.IDHash, MFA: hasMFA(other.AMR)}
		for _, id := range other.Clients {
			if c, ok := st.client(id); ok {
				sv.Apps = append(sv.Apps, c.Name)
			}
		}
		v.Sessions = append(v.Sessions, sv)
	}
	// The current session first, then the most recently used.
	slices.SortStableFunc(v.Sessions, func(a, b sessionView) int {
		if a.Current != b.Current {
			if a.Current {
				return -1
			}
			return 1
		}
		return strings.Compare(b.LastActivity, a.LastActivity)
	})
	passkey, err := s.passkeyEnrolment(st, sess, factors)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, st, status, "account", &pageData{Heading: "Your account", CSRF: csrf, FormURL: st.endpoint(pathAccount),
		Account: v, TOTPAllowed: st.cfg.MFA.Allows(config.FactorTOTP), Passkey: passkey}, passkeyCSP(st, passkey))
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// describeUserAgent names the browser and system of a User-Agent, as a person would
// recognise their device ("Chrome on Linux"), or the raw value when it is not recognised.
func describeUserAgent(ua string) string {
	pick := func(pairs ...string) string {
		for i := 0; i < len(pairs); i += 2 {
			if strings.Contains(ua, pairs[i]) {
				return pairs[i+1]
			}
		}
		return ""
	}
	browser := pick("Edg/", "Edge", "Firefox/", "Firefox", "Chrome/", "Chrome", "Chromium/", "Chromium", "Safari/", "Safari", "curl/", "curl")
	system := pick("Android", "Android", "iPhone", "iPhone", "iPad", "iPad", "Windows", "Windows", "Mac OS X", "macOS", "CrOS", "ChromeOS", "Linux", "Linux")
	switch {
	case browser != "" && system != "":
		return fmt.Sprintf("%s on %s", browser, system)
	case browser != "":
		return browser
	case ua == "":
		return "Unknown device"
	}
	return ua
}

func seeOther(w http.ResponseWriter, target string) {
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
}
