package passhash

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestVerifyPassword(t *testing.T) {
	t.Parallel()
	// The demo user of config/samples/demo-users.yaml, as the operator imports it.
	const demoHash = "$argon2id$v=19$m=19456,t=2,p=1$aGFsbHBhc3MtZGVtby1zYQ$jdYK97oOgib4lBTl/s+JFaRwPQYPEl6Yn1+HpnmStUI"
	created, err := Hash("sign-up password")
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	tests := []struct {
		name, hash, password string
		want, wantErr        bool
	}{
		{"the sample argon2id hash accepts its password", demoHash, "correct-horse-battery", true, false},
		{"the sample argon2id hash refuses another password", demoHash, "correct-horse-batterY", false, false},
		{"a hash made at sign-up accepts its password", created, "sign-up password", true, false},
		{"a bcrypt hash accepts its password", string(bc), "imported", true, false},
		{"a bcrypt hash refuses another password", string(bc), "imported!", false, false},
		{"an unknown format is an error, never a match", "plaintext", "plaintext", false, true},
		{"absurd argon2 parameters are refused before hashing", "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdA$a2V5", "x", false, true},
		{"a truncated argon2 hash is an error", "$argon2id$v=19$m=19456", "x", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Verify(tc.hash, tc.password)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("Verify = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
