package server

import (
	"crypto/cipher"
	"crypto/hkdf"
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

// keySet is what the server does with the signing-keys Secret: sign with the current key
// of each algorithm's chain, publish every public key, and verify its own ID tokens
// (id_token_hint) with any of them.
//
// It also derives the server's symmetric secrets from the private keys with HKDF, because
// every replica already shares that Secret and nothing else: the AEAD that seals login
// transactions and codes, and the refresh-token derivation key. The first chain's current
// key's secrets are used to create; its previous key's are still accepted, so a rotation
// does not break a login in progress.
type keySet struct {
	// algs are the algorithms ID tokens may be signed with, the default first.
	algs []string
	// signers holds each algorithm's signers; def is the default algorithm's, for JWT access
	// tokens and the clients that pick no algorithm of their own.
	signers map[string]*signers
	def     *signers
	public  jose.JSONWebKeySet
	// secrets[0] derives from the first chain's Current, secrets[1] (if any) from its
	// Previous.
	secrets []derivedSecrets
	// sealer seals what the browser carries (seal.go) under the same keys. It is made once
	// per key set, not per request: a sealed code is on every silent login's path.
	sealer sealer
}

// signers sign with one current key: ID tokens typed JWT, logout tokens typed logout+jwt
// (Back-Channel Logout §2.4) and JWT access tokens typed at+jwt (RFC 9068 §2.1), so that no
// receiver can mistake one kind of JWT for another.
type signers struct {
	idToken, logout, accessToken *jwsSigner
}

type derivedSecrets struct {
	aead    cipher.AEAD // of sealed documents
	refresh []byte      // HMAC-SHA256 key deriving rotated refresh tokens
}

// newKeySet loads the keys; preferred is the config's signing.algorithm. It is the default
// when a chain of that algorithm has a current key; otherwise (a Secret from before both
// algorithms were served, until the operator completes it) the first chain's is.
func newKeySet(keys *config.SigningKeys, preferred string) (*keySet, error) {
	ks := &keySet{signers: map[string]*signers{}, public: jose.JSONWebKeySet{Keys: keys.Public()}}
	for _, c := range keys.Chains() {
		if c.Current == nil || c.Next == nil {
			return nil, errors.New("load signing keys: current and next keys are required")
		}
		alg := config.KeyAlgorithm(c.Current)
		if alg == "" {
			return nil, fmt.Errorf("load signing keys: current key %q is neither RSA nor P-256", c.Current.KeyID)
		}
		if ks.signers[alg] != nil {
			continue
		}
		sg, err := newSigners(c.Current, alg)
		if err != nil {
			return nil, err
		}
		ks.signers[alg] = sg
	}
	def := preferred
	if ks.signers[def] == nil {
		def = config.KeyAlgorithm(keys.Current)
	}
	ks.def = ks.signers[def]
	ks.algs = []string{def}
	for _, alg := range config.Algorithms {
		if alg != def && ks.signers[alg] != nil {
			ks.algs = append(ks.algs, alg)
		}
	}
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

func newSigners(key *jose.JSONWebKey, alg string) (*signers, error) {
	made := make([]*jwsSigner, 3)
	for i, typ := range []string{"JWT", "logout+jwt", "at+jwt"} {
		s, err := newJWSSigner(key, alg, typ)
		if err != nil {
			return nil, fmt.Errorf("load signing keys: create %s %s signer: %w", alg, typ, err)
		}
		made[i] = s
	}
	return &signers{idToken: made[0], logout: made[1], accessToken: made[2]}, nil
}

// forClient returns the signers of the client's ID token algorithm: the default ones when
// it picked none, or its algorithm has no current key.
func (ks *keySet) forClient(c config.Client) *signers {
	if sg := ks.signers[c.IDTokenSigningAlgorithm]; sg != nil {
		return sg
	}
	return ks.def
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

// signJWT signs claims, a struct whose JSON is an object, as a compact JWS. It marshals the
// struct once, where go-jose's JWT builder would marshal it, decode it into a map and
// marshal that again: a tenth of a silent login's CPU besides the signature.
func signJWT(signer *jwsSigner, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	tok, err := signer.sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
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
