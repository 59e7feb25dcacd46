package ssoapp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A sign-in in progress lives in the browser, sealed in the login cookie, not in the app:
// anonymous requests that start sign-ins then cost the app nothing, and no flood of them
// can push out or refuse a real user's sign-in.
type pendingLogin struct {
	State      string `json:"s"`
	Verifier   string `json:"v"`
	Nonce      string `json:"n"`
	Target     string `json:"t,omitempty"`
	Connection string `json:"c,omitempty"`
	Expires    int64  `json:"e"`
}

// pendingAAD binds sealed values to their purpose.
var pendingAAD = []byte("ssoapp pending login")

var errBadPending = errors.New("pending sign-in is invalid or expired")

// newSealer returns the cipher of login cookies. The key is random per process, like the
// app's sessions, which also live in this process.
func newSealer() (cipher.AEAD, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("read login cookie key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create login cookie cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

func (a *App) sealPending(p pendingLogin) (string, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode pending sign-in: %w", err)
	}
	nonce := make([]byte, a.sealer.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("read nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(a.sealer.Seal(nonce, nonce, plain, pendingAAD)), nil
}

func (a *App) openPending(sealed string, now time.Time) (pendingLogin, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < a.sealer.NonceSize() {
		return pendingLogin{}, errBadPending
	}
	n := a.sealer.NonceSize()
	plain, err := a.sealer.Open(nil, raw[:n], raw[n:], pendingAAD)
	if err != nil {
		return pendingLogin{}, errBadPending
	}
	var p pendingLogin
	if err := json.Unmarshal(plain, &p); err != nil || now.Unix() > p.Expires {
		return pendingLogin{}, errBadPending
	}
	return p, nil
}
