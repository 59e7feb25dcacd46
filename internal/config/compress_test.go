package config

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

func TestConfigSecretData(t *testing.T) {
	yamlConfig := []byte("issuer: https://sso.example.com\n")
	compressed, err := Compress(yamlConfig, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Compress(yamlConfig, gzip.BestSpeed)
	if !bytes.Equal(compressed, again) {
		t.Fatal("compressing the same config twice gave different bytes; the Secret would be rewritten for nothing")
	}
	var bomb bytes.Buffer
	w := gzip.NewWriter(&bomb)
	_, _ = w.Write(bytes.Repeat([]byte{'a'}, MaxConfigBytes+1))
	_ = w.Close()

	for _, tc := range []struct {
		name string
		data map[string][]byte
		want []byte
		err  string
	}{
		{"a compressed config is decompressed", map[string][]byte{CompressedConfigSecretKey: compressed}, yamlConfig, ""},
		{"the compressed key wins over a plain one left beside it", map[string][]byte{CompressedConfigSecretKey: compressed, ConfigSecretKey: []byte("stale")}, yamlConfig, ""},
		{"a plain config is read as it is", map[string][]byte{ConfigSecretKey: yamlConfig}, yamlConfig, ""},
		{"a compressed value that is not gzip is refused", map[string][]byte{CompressedConfigSecretKey: yamlConfig}, nil, "decompress config.yaml.gz"},
		{"a compressed value that expands past the bound is refused", map[string][]byte{CompressedConfigSecretKey: bomb.Bytes()}, nil, "larger than 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromSecretData(tc.data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
