package server

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

// A login transaction carries the validated authorization request from /authorize through
// the login pages to the form post. It travels in the page as XChaCha20-Poly1305 ciphertext under a
// key every replica derives from the signing keys, so no replica needs to have seen the
// /authorize request and the browser can neither read nor alter it.
const loginTransactionLifetime = 30 * time.Minute

type loginTransaction struct {
	Request authorizeRequest `json:"r"`
	CSRF    string           `json:"c"`
	Expires int64            `json:"e"`
}

var errBadTransaction = errors.New("login transaction is invalid or expired")

func sealTransaction(st *state, tx loginTransaction) (string, error) {
	return st.keys.sealer.seal(purposeLoginTransaction, tx)
}

func openTransaction(st *state, sealed string, now time.Time) (loginTransaction, error) {
	var tx loginTransaction
	if err := st.keys.sealer.open(purposeLoginTransaction, sealed, &tx); err != nil || now.Unix() > tx.Expires {
		return loginTransaction{}, errBadTransaction
	}
	return tx, nil
}

// csrfToken returns the browser's CSRF token, minting and setting one if it has none, so
// that several tabs signing in at once share one token.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, st *state) (string, error) {
	if v := st.cookies.value(r, csrfCookie); len(v) == 43 {
		return v, nil
	}
	v, err := config.RandomToken(32)
	if err != nil {
		return "", err
	}
	st.cookies.set(w, csrfCookie, v, time.Time{})
	return v, nil
}

// checkCSRF verifies the double submit: form field, cookie and transaction must agree.
func checkCSRF(r *http.Request, st *state, tx loginTransaction) bool {
	form := []byte(r.PostFormValue("csrf"))
	return len(form) > 0 &&
		subtle.ConstantTimeCompare(form, []byte(st.cookies.value(r, csrfCookie))) == 1 &&
		subtle.ConstantTimeCompare(form, []byte(tx.CSRF)) == 1
}

// startLogin seals the request into a login transaction and sends the browser to the login
// page.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, st *state, req *authorizeRequest) {
	csrf, err := s.csrfToken(w, r, st)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	sealed, err := sealTransaction(st, loginTransaction{Request: *req, CSRF: csrf, Expires: s.now().Add(loginTransactionLifetime).Unix()})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Location", st.endpoint(pathLogin)+"?tx="+sealed)
	w.WriteHeader(http.StatusSeeOther)
}
