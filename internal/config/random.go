package config

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// RandomToken returns n bytes from crypto/rand, base64url-encoded without padding.
func RandomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ValidClientID reports whether id has the shape of the client IDs Hallpass issues: 1 to 128
// letters, digits, '-' or '_'. A client ID read back from a credentials Secret must have it:
// a machine-to-machine client's ID is the sub of its tokens, and one like "db|alice" would
// pass for a user's subject ("<connection>|<user>").
func ValidClientID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
