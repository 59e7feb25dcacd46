package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// SigningKeys is the content of the signing-keys Secret (key KeysSecretKey): private JWKs in
// three slots. Current signs; Next is published in the JWKS before it ever signs, so relying
// parties have it cached when a rotation promotes it; Previous stays published until the
// tokens it signed have expired.
type SigningKeys struct {
	Current  *jose.JSONWebKey `json:"current"`
	Next     *jose.JSONWebKey `json:"next"`
	Previous *jose.JSONWebKey `json:"previous,omitempty"`
}

// NewSigningKeys generates a fresh current and next key for the algorithm.
func NewSigningKeys(alg string) (*SigningKeys, error) {
	cur, err := NewSigningKey(alg)
	if err != nil {
		return nil, err
	}
	next, err := NewSigningKey(alg)
	if err != nil {
		return nil, err
	}
	return &SigningKeys{Current: cur, Next: next}, nil
}

// NewSigningKey generates one private JWK (RSA 2048 for RS256, P-256 for ES256) with a
// random key ID.
func NewSigningKey(alg string) (*jose.JSONWebKey, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case string(jose.RS256):
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case string(jose.ES256):
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("generate signing key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s signing key: %w", alg, err)
	}
	kid, err := RandomToken(16)
	if err != nil {
		return nil, err
	}
	return &jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
}

// Rotate promotes Next to Current, keeps the old Current as Previous and generates a new
// Next for alg, so an algorithm change reaches the signing slot one rotation later, after
// relying parties have seen the new key in the JWKS.
func (k *SigningKeys) Rotate(alg string) error {
	next, err := NewSigningKey(alg)
	if err != nil {
		return err
	}
	k.Previous, k.Current, k.Next = k.Current, k.Next, next
	return nil
}

// Public returns the public keys to publish in the JWKS, current first.
func (k *SigningKeys) Public() []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range []*jose.JSONWebKey{k.Current, k.Next, k.Previous} {
		if key != nil {
			out = append(out, key.Public())
		}
	}
	return out
}

// ParseSigningKeys decodes and checks the keys Secret content.
func ParseSigningKeys(data []byte) (*SigningKeys, error) {
	var k SigningKeys
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("parse signing keys: %w", err)
	}
	if k.Current == nil || k.Next == nil {
		return nil, errors.New("parse signing keys: current and next keys are required")
	}
	for _, key := range []*jose.JSONWebKey{k.Current, k.Next, k.Previous} {
		if key == nil {
			continue
		}
		if key.IsPublic() || key.KeyID == "" || !key.Valid() {
			return nil, fmt.Errorf("parse signing keys: key %q must be a valid private key with a key ID", key.KeyID)
		}
		// go-jose leaves an RSA key without crypto/rsa's own precomputed values, which
		// every signature would then compute again.
		if rk, ok := key.Key.(*rsa.PrivateKey); ok {
			rk.Precompute()
		}
	}
	return &k, nil
}

// MarshalSigningKeys encodes the keys for the Secret.
func MarshalSigningKeys(k *SigningKeys) ([]byte, error) {
	b, err := json.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("marshal signing keys: %w", err)
	}
	return b, nil
}
