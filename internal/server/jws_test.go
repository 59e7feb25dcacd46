package server

import (
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallpass/hallpass/internal/config"
)

// TestTokensKeepTheHeaderGoJoseWroteAndVerify: the server's own compact JWS carries, byte
// for byte, the protected header that go-jose wrote before (alg, kid, typ), and verifies
// with the published key, for both algorithms and every kind of token.
func TestTokensKeepTheHeaderGoJoseWroteAndVerify(t *testing.T) {
	for _, alg := range config.Algorithms {
		key, err := config.NewSigningKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"JWT", "logout+jwt", "at+jwt"} {
			t.Run("a "+alg+" token typed "+typ, func(t *testing.T) {
				ours, err := newJWSSigner(key, alg, typ)
				if err != nil {
					t.Fatal(err)
				}
				theirs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
				if err != nil {
					t.Fatal(err)
				}
				payload := []byte(`{"iss":"https://sso.example.com","sub":"alice"}`)
				tok, err := ours.sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := theirs.Sign(payload)
				if err != nil {
					t.Fatal(err)
				}
				refTok, err := ref.CompactSerialize()
				if err != nil {
					t.Fatal(err)
				}
				if got, want := strings.SplitN(tok, ".", 2)[0], strings.SplitN(refTok, ".", 2)[0]; got != want {
					t.Errorf("header %s, go-jose's %s", got, want)
				}
				jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatal(err)
				}
				got, err := jws.Verify(key.Public())
				if err != nil || string(got) != string(payload) {
					t.Errorf("verify with the public key: %q, %v", got, err)
				}
			})
		}
	}
}
