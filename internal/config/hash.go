package config

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash is the hex SHA-256 of a serialized config: the operator reports it as the SSOServer's
// status.configHash, and each server pod reports the hash of the config it applied, so the
// two can be compared byte for byte.
func Hash(configData []byte) string {
	sum := sha256.Sum256(configData)
	return hex.EncodeToString(sum[:])
}
