package server

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// What the browser carries between two requests (a login transaction, an authorization
// code, the state of an upstream login or of a federated logout, a second-factor step, an
// account form) is sealed rather than stored: encrypted and authenticated under a key every
// replica derives from the signing keys (keys.go), so any replica can open it, the browser
// can neither read nor alter it, and issuing one writes nothing (ADR 0012).

// purpose names one kind of sealed document. It is the AEAD's additional data, so a document
// sealed for one purpose never opens as another (a login transaction as a code, say).
type purpose []byte

// The purposes. Their bytes are part of every document in flight: changing one invalidates
// those documents.
var (
	purposeLoginTransaction  = purpose("hallpass login transaction")
	purposeAuthorizationCode = purpose("hallpass authorization code")
	purposeUpstreamLogin     = purpose("hallpass upstream login")
	purposeFederatedLogout   = purpose("hallpass federated logout")
	purposeSecondFactor      = purpose("hallpass second factor")
	purposeAccountForm       = purpose("hallpass account form")
	purposeWebAuthnCeremony  = purpose("hallpass webauthn ceremony")
)

var errBadSealed = errors.New("sealed document is invalid")

// sealer seals JSON documents under the current signing key's AEAD and opens them under any
// key of the set, so a document sealed just before a rotation still opens after it.
type sealer struct {
	// aeads holds the current key's AEAD first, then the previous key's.
	aeads []cipher.AEAD
}

// seal encodes v as JSON and seals it for p, as unpadded base64url.
func (s sealer) seal(p purpose, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode sealed document: %w", err)
	}
	aead := s.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("read nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, p)), nil
}

// open opens a document sealed for p into v.
func (s sealer) open(p purpose, sealed string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return errBadSealed
	}
	return s.openRaw(p, raw, v)
}

// openRaw opens the decoded bytes of a document sealed for p into v.
func (s sealer) openRaw(p purpose, raw []byte, v any) error {
	for _, aead := range s.aeads {
		if len(raw) < aead.NonceSize() {
			return errBadSealed
		}
		plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], p)
		if err != nil {
			continue
		}
		if err := json.Unmarshal(plain, v); err != nil {
			return errBadSealed
		}
		return nil
	}
	return errBadSealed
}

// newAEAD is the cipher of every sealed document: XChaCha20-Poly1305, whose 192-bit random
// nonces cannot be expected to repeat however many documents one key seals. A sealed code
// per silent login would spend AES-GCM's 96-bit random nonces (NIST's limit is 2^32 per
// key) in weeks at a busy server, and nothing bounds how long a signing key, from which
// this key derives, stays current.
func newAEAD(key []byte) (cipher.AEAD, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("create XChaCha20-Poly1305: %w", err)
	}
	return aead, nil
}
