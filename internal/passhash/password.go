// Package passhash hashes and verifies user passwords: argon2id (PHC strings) for what
// Hallpass creates, bcrypt accepted for imported users.
package passhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Parameters of the argon2id hashes the server creates at sign-up (OWASP's minimum
// recommendation: 19 MiB, 2 passes, 1 lane), light enough for two shared cores.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	// Upper bounds on imported hashes, so a hand-edited users Secret cannot make each login
	// allocate gigabytes.
	maxArgonMemoryKiB = 1 << 20
	maxArgonTime      = 16
)

// Hash returns a PHC-format argon2id hash of password with a random salt.
func Hash(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify checks a password against an argon2id (PHC) or bcrypt hash in constant
// time. An unknown hash format is an error, never a match.
func Verify(hash, password string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("verify bcrypt hash: %w", err)
		}
		return true, nil
	}
	return false, errors.New("verify password: unsupported hash format")
}

func verifyArgon2id(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return false, errors.New("verify argon2id hash: malformed")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("verify argon2id hash: unsupported version")
	}
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil {
		return false, fmt.Errorf("verify argon2id hash: parameters: %w", err)
	}
	if mem == 0 || mem > maxArgonMemoryKiB || iter == 0 || iter > maxArgonTime || threads == 0 {
		return false, errors.New("verify argon2id hash: parameters out of range")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("verify argon2id hash: salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false, errors.New("verify argon2id hash: malformed key")
	}
	got := argon2.IDKey([]byte(password), salt, iter, mem, threads, uint32(len(want))) //nolint:gosec // G115: len(want) is at most 128, checked above
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Dummy is a hash to verify against when the username is unknown, so that an unknown user
// costs the same time as a wrong password and the timing tells nothing.
var Dummy = sync.OnceValue(func() string {
	h, err := Hash("hallpass-dummy-password")
	if err != nil {
		panic(fmt.Sprintf("hash dummy password: %v", err))
	}
	return h
})
