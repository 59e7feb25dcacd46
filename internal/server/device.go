package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// The device authorization grant (RFC 8628, ADR 0017). A command-line tool or a device
// without a browser asks the device authorization endpoint for a device code and a user
// code, shows the user code and polls the token endpoint (grant_device_code.go). The user
// opens the device page at the issuer, types the code, sees which application asks, and
// allows it: with the central session when the browser has one the client may reuse (no
// password), otherwise through the same login pages, connections and rules as any login.
const (
	deviceCodeLifetime = 10 * time.Minute
	devicePollInterval = 5 * time.Second
	// slowDownStep is what RFC 8628 §3.5 adds to the interval at every slow_down; the
	// interval stops growing at maxPollInterval.
	slowDownStep    = 5 * time.Second
	maxPollInterval = time.Minute
	// pollTolerance is how much sooner than the interval a poll may arrive without being
	// told to slow down: two polls sent exactly one interval apart can arrive closer than
	// that when the first one was delayed on its way.
	pollTolerance = time.Second

	// User codes are 8 letters of an alphabet without vowels (no words) and without
	// letters that look like digits or each other, shown as BCDF-GHJK (RFC 8628 §6.1):
	// 20^8, about 2^34.6 codes. Guessing one is what the per-address throttle bounds.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
	// freeUserCodeAttempts is how many codes one client address may look up within the
	// throttle window before each further attempt waits twice as long as the one before;
	// freeDeviceAuthorizations bounds the device codes one address may start.
	freeUserCodeAttempts     = 30
	freeDeviceAuthorizations = 60
)

// deviceAuthorizationResponse is RFC 8628 §3.2's answer.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceAuthorization starts a device authorization (RFC 8628 §3.1).
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	client, ok := s.tokenEndpointClient(w, r, st)
	if !ok {
		return
	}
	if !client.AllowsGrant(config.GrantDeviceCode) {
		writeError(w, newError(ErrUnauthorizedClient, "the application may not use the device authorization grant"))
		return
	}
	if len(r.PostForm["scope"]) > 1 || len(r.PostForm.Get("scope")) > maxParamLen {
		writeError(w, newError(ErrInvalidRequest, "scope is repeated or too long"))
		return
	}
	// An API (audience or resource) and its scopes, under the same grants as /authorize.
	var asked authorizeRequest
	if oerr := parseScopesAndAPI(st.cfg, client, r.PostForm, &asked); oerr != nil {
		writeError(w, oerr)
		return
	}
	ctx := r.Context()
	// Every device code is a row in storage, so one address may not start them without end.
	keys := []throttleKey{{key: "device-start-ip:" + s.clientIP(r), free: freeDeviceAuthorizations, reserve: true}}
	wait, before, err := s.throttleWait(ctx, keys)
	if err == nil && wait == 0 {
		var ok bool
		if ok, err = s.reserveAttempt(ctx, keys, before); err == nil && !ok {
			wait = time.Second
		}
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "device authorization failed", "client", client.ID, "err", err)
		writeError(w, newError(ErrServerError, ""))
		return
	}
	if wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(waitSeconds(wait)))
		writeError(w, &oauthError{Code: ErrSlowDown, Description: "too many device authorizations from this address", status: http.StatusTooManyRequests})
		return
	}
	resp, err := s.startDeviceAuthorization(ctx, st, client, asked.Audience, asked.Scopes)
	if err != nil {
		s.logger.ErrorContext(ctx, "device authorization failed", "client", client.ID, "err", err)
		writeError(w, newError(ErrServerError, ""))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// startDeviceAuthorization stores a new device code, drawing another user code in the
// unlikely case that the one drawn is taken.
func (s *Server) startDeviceAuthorization(ctx context.Context, st *state, client config.Client, audience string, scopes []string) (*deviceAuthorizationResponse, error) {
	deviceCode, err := config.RandomToken(32)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for range 5 {
		userCode, err := newUserCode()
		if err != nil {
			return nil, err
		}
		err = s.store.CreateDeviceCode(ctx, storage.DeviceCode{
			DeviceCodeHash: digest.Of(deviceCode),
			UserCodeHash:   digest.Of(userCode),
			ClientID:       client.ID,
			Audience:       audience,
			Scopes:         scopes,
			Status:         storage.DeviceCodePending,
			Interval:       devicePollInterval,
			CreatedAt:      now,
			ExpiresAt:      now.Add(deviceCodeLifetime),
		})
		if errors.Is(err, storage.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store device code: %w", err)
		}
		display := formatUserCode(userCode)
		return &deviceAuthorizationResponse{
			DeviceCode:              deviceCode,
			UserCode:                display,
			VerificationURI:         st.endpoint(pathDevice),
			VerificationURIComplete: st.endpoint(pathDevice) + "?" + url.Values{"user_code": {display}}.Encode(),
			ExpiresIn:               int64(deviceCodeLifetime.Seconds()),
			Interval:                int64(devicePollInterval.Seconds()),
		}, nil
	}
	return nil, errors.New("store device code: every user code drawn was taken")
}

// newUserCode draws a user code without bias: each byte is kept only below the largest
// multiple of the alphabet's size.
func newUserCode() (string, error) {
	const limit = 256 - 256%len(userCodeAlphabet)
	out := make([]byte, 0, userCodeLength)
	buf := make([]byte, 2*userCodeLength)
	for len(out) < userCodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("draw user code: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < userCodeLength {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// formatUserCode shows a normalized user code as BCDF-GHJK.
func formatUserCode(code string) string { return code[:4] + "-" + code[4:] }

// normalizeUserCode is a typed code as stored: upper case, without the dash or spaces a user
// may type. ok is false when what remains cannot be a user code.
func normalizeUserCode(typed string) (string, bool) {
	if len(typed) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case strings.ContainsRune(userCodeAlphabet, r):
			b.WriteRune(r)
		case r == '-' || r == ' ':
		default:
			return "", false
		}
	}
	return b.String(), b.Len() == userCodeLength
}

// Messages of the device page.
const (
	msgUnknownUserCode = "This code is not valid. Check the code your device shows and try again."
	msgUsedUserCode    = "This code has been used already. Start the sign-in on your device again."
	msgExpiredUserCode = "This code has expired. Start the sign-in on your device again."
)

// handleDevice serves the device page: the form to enter a user code, the confirmation that
// names the application, and the user's answer.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if !s.openPage(w, r, "This page") {
		return
	}
	st := s.state.Load()
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	typed := r.Form.Get("user_code")
	page := pageData{Heading: "Sign in on a device", CSRF: csrf, FormURL: st.endpoint(pathDevice), UserCode: typed}
	show := func(status int, data pageData) {
		s.render(w, st, status, "device", &data, pageCSP(st, ""))
	}
	if r.Method == http.MethodGet && typed == "" {
		show(http.StatusOK, page)
		return
	}
	// Looking a code up is a guess at one when it comes from an attacker, so only a form
	// of this browser may (CSRF), and only a bounded number from one address (throttle).
	// A link with the code (verification_uri_complete) shows the confirmation with a GET,
	// which changes nothing.
	if r.Method == http.MethodPost && !formCSRF(r, st) {
		page.Error = msgFormExpired
		show(http.StatusForbidden, page)
		return
	}
	d, client, msg, status, err := s.lookUpUserCode(r, st, typed)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if msg != "" {
		page.Error = msg
		if status == http.StatusTooManyRequests {
			page.UserCode = ""
		}
		show(status, page)
		return
	}
	sess, usable, err := s.deviceSession(r, st, client)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	switch r.PostForm.Get("decision") {
	case "":
		page.Confirm, page.ClientName, page.UserCode = true, client.Name, formatUserCode(d.normalized)
		page.APIName = apiName(st, d.Audience)
		if usable {
			page.SignedInAs = displayUser(sess.Claims)
		}
		show(http.StatusOK, page)
	case "deny":
		if err := s.decideDevice(r.Context(), d.DeviceCodeHash, storage.DeviceCodeDenied, ""); err != nil {
			s.deviceDecisionFailed(w, r, err)
			return
		}
		s.logger.InfoContext(r.Context(), "device sign-in denied", "client", client.ID)
		s.render(w, st, http.StatusOK, "message", &pageData{Heading: "Sign-in denied",
			Message: "The device was not signed in. You can close this window."}, pageCSP(st, ""))
	case "allow":
		// The login and second-factor pages end in completeAuthorization, which approves
		// the code.
		req := &authorizeRequest{ClientID: client.ID, Scopes: d.Scopes, MaxAge: -1, ResponseMode: modeQuery, Device: d.DeviceCodeHash}
		switch {
		case !usable:
			s.startLogin(w, r, st, req)
		case s.mustStepUp(r, st, client, req, sess):
			s.startStepUp(w, r, st, req, client, sess)
		default:
			if sess, err = s.useSession(r.Context(), st, sess, client.ID); err != nil {
				s.serverError(w, r, err)
				return
			}
			s.approveDevice(w, r, st, d.DeviceCodeHash, sess)
		}
	default:
		s.renderError(w, http.StatusBadRequest, "The request could not be read.")
	}
}

// apiName names the API a device code asks a token for, for the confirmation: the SSOAPI's
// display name, or its identifier when the API is no longer served (the code then gives
// nothing: its redemption checks the grant again). Empty when the code names no API.
func apiName(st *state, audience string) string {
	if audience == "" {
		return ""
	}
	if api, ok := st.cfg.API(audience); ok && api.Name != "" {
		return api.Name
	}
	return audience
}

// foundDeviceCode is a device code found by the user code typed for it.
type foundDeviceCode struct {
	storage.DeviceCode
	normalized string
}

// lookUpUserCode finds the pending device code of a typed user code and its client. When the
// code cannot be used, msg says why to the user, with the page's status.
func (s *Server) lookUpUserCode(r *http.Request, st *state, typed string) (d foundDeviceCode, client config.Client, msg string, status int, err error) {
	ctx := r.Context()
	keys := []throttleKey{{key: "user-code-ip:" + s.clientIP(r), free: freeUserCodeAttempts, reserve: true}}
	wait, before, err := s.throttleWait(ctx, keys)
	if err != nil {
		return d, client, "", 0, err
	}
	ok := wait == 0
	if ok {
		if ok, err = s.reserveAttempt(ctx, keys, before); err != nil {
			return d, client, "", 0, err
		}
		wait = time.Second
	}
	if !ok {
		return d, client, fmt.Sprintf("Too many codes were tried from your network. Try again in %d seconds.", waitSeconds(wait)),
			http.StatusTooManyRequests, nil
	}
	normalized, valid := normalizeUserCode(typed)
	if !valid {
		return d, client, msgUnknownUserCode, http.StatusBadRequest, nil
	}
	d.normalized = normalized
	d.DeviceCode, err = s.store.GetDeviceCodeByUserCode(ctx, digest.Of(normalized))
	if errors.Is(err, storage.ErrNotFound) {
		return d, client, msgUnknownUserCode, http.StatusBadRequest, nil
	}
	if err != nil {
		return d, client, "", 0, fmt.Errorf("look up user code: %w", err)
	}
	client, found := st.cfg.Client(d.ClientID)
	switch {
	case !s.now().Before(d.ExpiresAt):
		return d, client, msgExpiredUserCode, http.StatusBadRequest, nil
	case d.Status != storage.DeviceCodePending:
		return d, client, msgUsedUserCode, http.StatusBadRequest, nil
	case !found || !client.AllowsGrant(config.GrantDeviceCode):
		return d, client, "The application of this code is no longer registered.", http.StatusBadRequest, nil
	}
	return d, client, "", 0, nil
}

// deviceSession returns the browser's central session and whether the client may reuse it
// without a login, by the rules of a silent login (singleSignOn, connections); a second
// factor the client needs is asked for afterwards, as for a silent login.
func (s *Server) deviceSession(r *http.Request, st *state, client config.Client) (storage.Session, bool, error) {
	sess, found, err := s.currentSession(r.Context(), r, st)
	if err != nil {
		return storage.Session{}, false, err
	}
	usable := found && silentLoginRefusal(client, &sess, &authorizeRequest{MaxAge: -1}, nil, s.now()) == nil
	return sess, usable, nil
}

var (
	errDeviceCodeDecided = errors.New("the device code was approved or denied already")
	errDeviceCodeExpired = errors.New("the device code expired")
)

// decideDevice records the user's answer; a code is answered once.
func (s *Server) decideDevice(ctx context.Context, deviceCodeHash string, status storage.DeviceCodeStatus, sessionIDHash string) error {
	now := s.now()
	_, err := s.store.UpdateDeviceCode(ctx, deviceCodeHash, func(d storage.DeviceCode) (storage.DeviceCode, error) {
		switch {
		case d.Status != storage.DeviceCodePending:
			return d, errDeviceCodeDecided
		case !now.Before(d.ExpiresAt):
			return d, errDeviceCodeExpired
		}
		d.Status, d.SessionIDHash = status, sessionIDHash
		return d, nil
	})
	return err
}

// approveDevice lets the device of a code collect tokens in the session.
func (s *Server) approveDevice(w http.ResponseWriter, r *http.Request, st *state, deviceCodeHash string, sess storage.Session) {
	if err := s.decideDevice(r.Context(), deviceCodeHash, storage.DeviceCodeApproved, sess.IDHash); err != nil {
		s.deviceDecisionFailed(w, r, err)
		return
	}
	s.logger.InfoContext(r.Context(), "device sign-in approved", "sid", sess.SID)
	s.render(w, st, http.StatusOK, "message", &pageData{Heading: "Your device is signed in",
		Message: "You can close this window and return to your device."}, pageCSP(st, ""))
}

func (s *Server) deviceDecisionFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errDeviceCodeDecided):
		s.renderError(w, http.StatusBadRequest, msgUsedUserCode)
	case errors.Is(err, errDeviceCodeExpired), errors.Is(err, storage.ErrNotFound):
		s.renderError(w, http.StatusBadRequest, msgExpiredUserCode)
	default:
		s.serverError(w, r, err)
	}
}

// displayUser names the signed-in user on the confirmation.
func displayUser(c storage.Claims) string {
	for _, v := range []string{c.Email, c.Username, c.Name} {
		if v != "" {
			return v
		}
	}
	return c.Subject
}
