package config

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// BenchmarkRS256Signature signs with the current key as generated and as parsed back from
// the keys Secret, the way the server gets it: the two must cost the same (a parsed key
// without crypto/rsa's precomputed values cost 15-20% more per signature).
func BenchmarkRS256Signature(b *testing.B) {
	generated, err := NewSigningKeys("RS256")
	if err != nil {
		b.Fatal(err)
	}
	data, err := MarshalSigningKeys(generated)
	if err != nil {
		b.Fatal(err)
	}
	parsed, err := ParseSigningKeys(data)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("id token"))
	for name, keys := range map[string]*SigningKeys{"generated": generated, "parsed from the keys Secret": parsed} {
		b.Run(name, func(b *testing.B) {
			key := keys.Current.Key.(*rsa.PrivateKey)
			for b.Loop() {
				if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
