package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// jwsSigner makes compact JWS (RFC 7515 §7.1) with one key and one type. Its protected
// header never changes, so it is encoded once, where go-jose encoded it twice per token
// with its own JSON package (once to sign, once to serialise): with ES256, whose signature
// is cheap, that and the copies around it were a third of the signing step's CPU.
type jwsSigner struct {
	// header is the base64url of {"alg":…,"kid":…,"typ":…}, the bytes go-jose wrote.
	header string
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
}

func newJWSSigner(key *jose.JSONWebKey, alg, typ string) (*jwsSigner, error) {
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
		Typ string `json:"typ"`
	}{alg, key.KeyID, typ})
	if err != nil {
		return nil, fmt.Errorf("encode the %s header: %w", typ, err)
	}
	s := &jwsSigner{header: base64.RawURLEncoding.EncodeToString(h)}
	switch k := key.Key.(type) {
	case *rsa.PrivateKey:
		if alg != string(jose.RS256) {
			return nil, fmt.Errorf("key %q is RSA, not %s", key.KeyID, alg)
		}
		s.rsa = k
	case *ecdsa.PrivateKey:
		if alg != string(jose.ES256) || k.Curve.Params().BitSize != 256 {
			return nil, fmt.Errorf("key %q is not a P-256 key for %s", key.KeyID, alg)
		}
		s.ec = k
	default:
		return nil, fmt.Errorf("key %q (%T) cannot sign", key.KeyID, key.Key)
	}
	return s, nil
}

// sign returns header.payload.signature for a payload (the claims' JSON).
func (s *jwsSigner) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.header)+2+enc.EncodedLen(len(payload))+enc.EncodedLen(512))
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	digest := sha256.Sum256(buf)
	var sig []byte
	if s.ec != nil {
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, digest[:])
		if err != nil {
			return "", fmt.Errorf("sign ES256: %w", err)
		}
		// RFC 7518 §3.4: R and S as 32-byte big-endian integers, not ASN.1.
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	} else {
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, s.rsa, crypto.SHA256, digest[:]); err != nil {
			return "", fmt.Errorf("sign RS256: %w", err)
		}
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
