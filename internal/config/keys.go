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

// Signing algorithms. RS256 is always served, as OpenID Connect requires of every provider
// (Discovery §3, id_token_signing_alg_values_supported); ES256 is served beside it.
const (
	AlgorithmRS256 = "RS256"
	AlgorithmES256 = "ES256"
)

// Algorithms are the signing algorithms every key set serves, one key chain each.
var Algorithms = []string{AlgorithmRS256, AlgorithmES256}

// KeyChain is one algorithm's private JWKs in three slots. Current signs; Next is published
// in the JWKS before it ever signs, so relying parties have it cached when a rotation
// promotes it; Previous stays published until the tokens it signed have expired.
type KeyChain struct {
	Current  *jose.JSONWebKey `json:"current"`
	Next     *jose.JSONWebKey `json:"next"`
	Previous *jose.JSONWebKey `json:"previous,omitempty"`
}

// SigningKeys is the content of the signing-keys Secret (key KeysSecretKey): the first key
// chain at the top level, as Secrets have always held it, and Other, the chain of the
// other algorithm, so that RS256 and ES256 can both sign: the server's signing.algorithm
// picks the default and each client may pick its own ID token algorithm. The first chain's
// current and previous keys also derive the server's symmetric secrets (internal/server).
type SigningKeys struct {
	KeyChain
	Other *KeyChain `json:"other,omitempty"`
}

// NewSigningKeys generates fresh current and next keys for alg, the first chain, and for
// the other algorithm.
func NewSigningKeys(alg string) (*SigningKeys, error) {
	first, err := newKeyChain(alg)
	if err != nil {
		return nil, err
	}
	k := &SigningKeys{KeyChain: *first}
	if _, err := k.Complete(); err != nil {
		return nil, err
	}
	return k, nil
}

func newKeyChain(alg string) (*KeyChain, error) {
	cur, err := NewSigningKey(alg)
	if err != nil {
		return nil, err
	}
	next, err := NewSigningKey(alg)
	if err != nil {
		return nil, err
	}
	return &KeyChain{Current: cur, Next: next}, nil
}

// NewSigningKey generates one private JWK (RSA 2048 for RS256, P-256 for ES256) with a
// random key ID.
func NewSigningKey(alg string) (*jose.JSONWebKey, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case AlgorithmRS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case AlgorithmES256:
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

// KeyAlgorithm is the JWS algorithm of a key: its "alg" when set, else the one its type
// implies ("" for neither RSA nor P-256).
func KeyAlgorithm(k *jose.JSONWebKey) string {
	if k == nil {
		return ""
	}
	if k.Algorithm != "" {
		return k.Algorithm
	}
	switch key := k.Key.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return AlgorithmRS256
	case *ecdsa.PrivateKey:
		if key.Curve == elliptic.P256() {
			return AlgorithmES256
		}
	}
	return ""
}

// Copy returns keys whose chains can rotate without changing k's (the keys themselves are
// shared: they never change).
func (k *SigningKeys) Copy() *SigningKeys {
	c := *k
	if k.Other != nil {
		other := *k.Other
		c.Other = &other
	}
	return &c
}

// Chains returns the key chains, the first one first.
func (k *SigningKeys) Chains() []*KeyChain {
	if k.Other == nil {
		return []*KeyChain{&k.KeyChain}
	}
	return []*KeyChain{&k.KeyChain, k.Other}
}

// Chain returns the chain whose current key signs with alg, or nil.
func (k *SigningKeys) Chain(alg string) *KeyChain {
	for _, c := range k.Chains() {
		if KeyAlgorithm(c.Current) == alg {
			return c
		}
	}
	return nil
}

// algorithm is where a chain is heading: its next key's algorithm. A Secret written while
// signing.algorithm changed, before both algorithms were served side by side, has a next
// key of another algorithm than its current one; its rotations continue with the next.
func (c *KeyChain) algorithm() string { return KeyAlgorithm(c.Next) }

// Complete adds the chain of the other algorithm when the keys have one chain only (a
// Secret written before both algorithms were served). added reports whether it did.
func (k *SigningKeys) Complete() (added bool, err error) {
	if k.Other != nil {
		return false, nil
	}
	alg := AlgorithmES256
	if k.algorithm() == AlgorithmES256 {
		alg = AlgorithmRS256
	}
	if k.Other, err = newKeyChain(alg); err != nil {
		return false, err
	}
	return true, nil
}

// Rotate promotes each chain's Next to Current, keeps the old Current as Previous and
// generates a new Next of the chain's algorithm.
func (k *SigningKeys) Rotate() error {
	for _, c := range k.Chains() {
		next, err := NewSigningKey(c.algorithm())
		if err != nil {
			return err
		}
		c.Previous, c.Current, c.Next = c.Current, c.Next, next
	}
	return nil
}

// Revoke is the compromised-key drill: each chain's next key (never used to sign) becomes
// current at once and the keys that have signed leave the set. It returns their key IDs.
func (k *SigningKeys) Revoke() (revoked []string, err error) {
	for _, c := range k.Chains() {
		next, err := NewSigningKey(c.algorithm())
		if err != nil {
			return nil, err
		}
		revoked = append(revoked, c.Current.KeyID)
		if c.Previous != nil {
			revoked = append(revoked, c.Previous.KeyID)
		}
		c.Current, c.Next, c.Previous = c.Next, next, nil
	}
	return revoked, nil
}

// Public returns the public keys to publish in the JWKS, each chain's current, next and
// previous in turn, the first chain first.
func (k *SigningKeys) Public() []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, c := range k.Chains() {
		for _, key := range []*jose.JSONWebKey{c.Current, c.Next, c.Previous} {
			if key != nil {
				out = append(out, key.Public())
			}
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
	keys := []*jose.JSONWebKey{}
	for _, c := range k.Chains() {
		if c.Current == nil || c.Next == nil {
			return nil, errors.New("parse signing keys: current and next keys are required")
		}
		keys = append(keys, c.Current, c.Next, c.Previous)
	}
	for _, key := range keys {
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
