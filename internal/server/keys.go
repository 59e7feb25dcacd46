package server

import (
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hallpass/hallpass/internal/config"
)

// keySet is what the server does with the signing-keys Secret: sign with Current, publish
// all three public keys, and verify its own ID tokens (id_token_hint) with any of them.
//
// It also derives the server's symmetric secrets from the private keys with HKDF, because
// every replica already shares that Secret and nothing else: the AEAD that seals login
// transactions and codes, and the refresh-token derivation key. The current key's secrets are used to create;
// the previous key's are still accepted, so a rotation does not break a login in progress.
type keySet struct {
	// algs are the algorithms ID tokens may be signed with: the current key's, and the next
	// key's when an algorithm change is under way.
	algs   []string
	signer jose.Signer
	// logoutSigner signs logout tokens with the same key, typed logout+jwt (Back-Channel
	// Logout §2.4), and accessTokenSigner JWT access tokens, typed at+jwt (RFC 9068 §2.1),
	// so that no receiver can mistake one kind of JWT for another.
	logoutSigner, accessTokenSigner jose.Signer
	public                          jose.JSONWebKeySet
	// secrets[0] derives from Current, secrets[1] (if any) from Previous.
	secrets []derivedSecrets
	// sealer seals what the browser carries (seal.go) under the same keys. It is made once
	// per key set, not per request: a sealed code is on every silent login's path.
	sealer sealer
}

type derivedSecrets struct {
	aead    cipher.AEAD // of sealed documents
	refresh []byte      // HMAC-SHA256 key deriving rotated refresh tokens
}

func newKeySet(keys *config.SigningKeys) (*keySet, error) {
	if keys.Current == nil || keys.Next == nil {
		return nil, errors.New("load signing keys: current and next keys are required")
	}
	// The current key's own algorithm signs. signing.algorithm in the config is where the
	// operator is heading: after an algorithm change the new kind of key waits in the Next
	// slot for one rotation, so relying parties see it in the JWKS before it signs.
	alg := keyAlgorithm(keys.Current)
	if alg == "" {
		return nil, fmt.Errorf("load signing keys: current key %q is neither RSA nor P-256", keys.Current.KeyID)
	}
	signers := make(map[jose.ContentType]jose.Signer, 3)
	for _, typ := range []jose.ContentType{"JWT", "logout+jwt", "at+jwt"} {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: keys.Current}, (&jose.SignerOptions{}).WithType(typ))
		if err != nil {
			return nil, fmt.Errorf("load signing keys: create %s signer: %w", typ, err)
		}
		signers[typ] = s
	}
	algs := []string{string(alg)}
	if next := keyAlgorithm(keys.Next); next != "" && next != alg {
		algs = append(algs, string(next))
	}
	ks := &keySet{algs: algs, signer: signers["JWT"], logoutSigner: signers["logout+jwt"], accessTokenSigner: signers["at+jwt"],
		public: jose.JSONWebKeySet{Keys: keys.Public()}}
	for _, k := range []*jose.JSONWebKey{keys.Current, keys.Previous} {
		if k == nil {
			continue
		}
		d, err := deriveSecrets(k)
		if err != nil {
			return nil, err
		}
		ks.secrets = append(ks.secrets, d)
		ks.sealer.aeads = append(ks.sealer.aeads, d.aead)
	}
	return ks, nil
}

// keyAlgorithm is the JWS algorithm of a key: its "alg" when set, else the one its type
// implies.
func keyAlgorithm(k *jose.JSONWebKey) jose.SignatureAlgorithm {
	if k.Algorithm != "" {
		return jose.SignatureAlgorithm(k.Algorithm)
	}
	switch key := k.Key.(type) {
	case *rsa.PrivateKey:
		return jose.RS256
	case *ecdsa.PrivateKey:
		if key.Curve == elliptic.P256() {
			return jose.ES256
		}
	}
	return ""
}

func deriveSecrets(k *jose.JSONWebKey) (derivedSecrets, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return derivedSecrets{}, fmt.Errorf("derive secrets from key %q: %w", k.KeyID, err)
	}
	tx, err := hkdf.Key(sha256.New, der, nil, "hallpass login transaction v1", 32)
	if err != nil {
		return derivedSecrets{}, fmt.Errorf("derive transaction key: %w", err)
	}
	rt, err := hkdf.Key(sha256.New, der, nil, "hallpass refresh token v1", 32)
	if err != nil {
		return derivedSecrets{}, fmt.Errorf("derive refresh key: %w", err)
	}
	aead, err := newAEAD(tx)
	if err != nil {
		return derivedSecrets{}, err
	}
	return derivedSecrets{aead: aead, refresh: rt}, nil
}

// sign serialises claims as a compact JWS with the current key (its kid in the header).
func (ks *keySet) sign(claims any) (string, error) { return signJWT(ks.signer, claims) }

// signJWT signs claims, a struct whose JSON is an object, as a compact JWS. It marshals the
// struct once, where go-jose's JWT builder would marshal it, decode it into a map and
// marshal that again: a tenth of a silent login's CPU besides the signature.
func signJWT(signer jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign token: serialise: %w", err)
	}
	return tok, nil
}

// verify checks an ID token this server signed with any published key and decodes its claims.
// It does not check expiry: an expired ID token is still a valid id_token_hint.
func (ks *keySet) verify(token string, iss string, claims *idTokenClaims) error {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return fmt.Errorf("parse token: %w", err)
	}
	if len(tok.Headers) != 1 {
		return errors.New("token must have exactly one signature")
	}
	// Only ID tokens: a logout token (typ logout+jwt, an events claim) or a JWT access
	// token signed with the same key must not pass for one.
	if typ, ok := tok.Headers[0].ExtraHeaders[jose.HeaderType]; ok && !strings.EqualFold(fmt.Sprint(typ), "JWT") {
		return fmt.Errorf("token of type %v is not an ID token", typ)
	}
	keys := ks.public.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return errors.New("token is not signed by a key of this server")
	}
	var events struct {
		Events json.RawMessage `json:"events"`
	}
	if err := tok.Claims(keys[0].Key, claims, &events); err != nil {
		return fmt.Errorf("verify token: %w", err)
	}
	if events.Events != nil {
		return errors.New("token has an events claim: it is a logout token, not an ID token")
	}
	if claims.Issuer != iss {
		return errors.New("token was issued by another issuer")
	}
	return nil
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeRawJSON(w, st.keys.public)
}
