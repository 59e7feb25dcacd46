package server

import (
	"crypto/cipher"
	"crypto/rand"
	"testing"
)

func TestSealedDocumentsOpenOnlyForTheirPurposeAndKeys(t *testing.T) {
	t.Parallel()
	newKey := func() cipher.AEAD {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		aead, err := newAEAD(k)
		if err != nil {
			t.Fatal(err)
		}
		return aead
	}
	previous, current, other := newKey(), newKey(), newKey()
	beforeRotation := sealer{aeads: []cipher.AEAD{previous}}
	afterRotation := sealer{aeads: []cipher.AEAD{current, previous}}
	type doc struct{ V string }
	sealed, err := beforeRotation.seal(purposeLoginTransaction, doc{"x"})
	if err != nil {
		t.Fatal(err)
	}

	altered := []byte(sealed)
	altered[len(altered)/2] ^= 'A' ^ 'B' // one base64url letter for another
	tests := []struct {
		name   string
		s      sealer
		p      purpose
		sealed string
		opens  bool
	}{
		{"a document opens for its purpose", beforeRotation, purposeLoginTransaction, sealed, true},
		{"a document sealed before a rotation still opens after it", afterRotation, purposeLoginTransaction, sealed, true},
		{"a login transaction does not open as an authorization code", afterRotation, purposeAuthorizationCode, sealed, false},
		{"a document does not open under keys that did not seal it", sealer{aeads: []cipher.AEAD{other}}, purposeLoginTransaction, sealed, false},
		{"an altered document does not open", afterRotation, purposeLoginTransaction, string(altered), false},
		{"a truncated document does not open", afterRotation, purposeLoginTransaction, sealed[:10], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got doc
			err := tc.s.open(tc.p, tc.sealed, &got)
			if opened := err == nil && got.V == "x"; opened != tc.opens {
				t.Errorf("opened = %v (err %v), want %v", opened, err, tc.opens)
			}
		})
	}
}
