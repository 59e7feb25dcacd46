package config

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// CompressedConfigSecretKey is the key of the config Secret that holds the config
// gzip-compressed. The operator writes only this key: a Secret holds at most 1 MiB, and
// 10,000 typical clients render to about 4 MB of YAML but 0.7 MB compressed
// (docs/adr/0013). The config hash is still that of the uncompressed YAML.
const CompressedConfigSecretKey = "config.yaml.gz"

// MaxConfigBytes bounds a decompressed config, so that a small compressed value can never
// make a server allocate without limit.
const MaxConfigBytes = 64 << 20

// Compress gzips a serialized config at a compress/gzip level. The output depends only on
// the input and the level (no name or time in the header), so an unchanged config never
// rewrites the Secret.
func Compress(configData []byte, level int) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, fmt.Errorf("compress config: %w", err)
	}
	if _, err := w.Write(configData); err != nil {
		return nil, fmt.Errorf("compress config: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compress config: %w", err)
	}
	return buf.Bytes(), nil
}

// FromSecretData returns the serialized config held by a config Secret's data: the
// decompressed CompressedConfigSecretKey when present, else ConfigSecretKey (written by
// operators before compression, and by hand).
func FromSecretData(data map[string][]byte) ([]byte, error) {
	compressed, ok := data[CompressedConfigSecretKey]
	if !ok {
		return data[ConfigSecretKey], nil
	}
	r, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", CompressedConfigSecretKey, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", CompressedConfigSecretKey, err)
	}
	if len(out) > MaxConfigBytes {
		return nil, errors.New("decompress " + CompressedConfigSecretKey + ": the config is larger than 64 MiB")
	}
	return out, nil
}
