// Package digest names the one hash Hallpass uses for values it must recognise but never
// keep: session IDs, codes, tokens and client secrets are stored as their digest, and a
// rendered config is compared with what the server pods applied by its digest.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
)

// Of is the hex SHA-256 of a value. The secrets it is used on are 256-bit random values, so
// a fast hash is enough; passwords, which are not, go through passhash instead.
func Of[T string | []byte](value T) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}
