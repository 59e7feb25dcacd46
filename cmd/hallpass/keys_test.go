package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/config"
)

// jwksKeyIDs starts `hallpass server` on a config file alone, reads the key IDs of its JWKS
// and stops it.
func jwksKeyIDs(t *testing.T, cfgPath string, addr string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{"--config", cfgPath, "--listen", addr, "--metrics-listen", freeAddr(t)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/jwks")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var set struct {
				Keys []struct {
					KeyID string `json:"kid"`
					D     string `json:"d"`
				} `json:"keys"`
			}
			if err := json.Unmarshal(body, &set); err != nil {
				t.Fatalf("JWKS: %v: %s", err, body)
			}
			var ids []string
			for _, k := range set.Keys {
				if k.D != "" {
					t.Fatal("the JWKS publishes a private key")
				}
				ids = append(ids, k.KeyID)
			}
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAStandaloneServerStartsFromAConfigFileAloneAndKeepsTheKeysItGenerated(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := minimalConfig("http://"+addr, dir)
	data, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	first := jwksKeyIDs(t, cfgPath, addr)
	keysPath := filepath.Join(dir, "keys.json")
	info, err := os.Stat(keysPath)
	if err != nil {
		t.Fatalf("no keys file beside the config: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("keys file mode %o, want 600", mode)
	}
	raw, _ := os.ReadFile(keysPath)
	keys, err := config.ParseSigningKeys(raw)
	if err != nil {
		t.Fatal(err)
	}
	if keys.Current.Algorithm != "ES256" || len(first) != 4 {
		t.Errorf("generated %s keys, JWKS %v; want the config's ES256 first, current and next of both algorithms", keys.Current.Algorithm, first)
	}

	if again := jwksKeyIDs(t, cfgPath, addr); !slices.Equal(again, first) {
		t.Errorf("after a restart the JWKS has keys %v, want the same %v", again, first)
	}
	if entries, _ := os.ReadDir(dir); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), ".keys-") }) {
		t.Error("a temporary keys file was left behind")
	}
}

func TestKeysGenerateAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := runKeys(context.Background(), []string{"generate", "--keys", path}); err != nil {
		t.Fatal(err)
	}
	read := func() *config.SigningKeys {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		k, err := config.ParseSigningKeys(raw)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	before := read()
	if err := runKeys(context.Background(), []string{"generate", "--keys", path}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("generating over an existing file: %v, want a refusal", err)
	}
	if read().Current.KeyID != before.Current.KeyID {
		t.Fatal("a refused generate replaced the keys")
	}
	if err := runKeys(context.Background(), []string{"rotate", "--keys", path}); err != nil {
		t.Fatal(err)
	}
	after := read()
	if after.Current.KeyID != before.Next.KeyID || after.Previous.KeyID != before.Current.KeyID || after.Next.KeyID == before.Next.KeyID {
		t.Errorf("rotate: current %s previous %s; want the old next %s and the old current %s", after.Current.KeyID, after.Previous.KeyID, before.Next.KeyID, before.Current.KeyID)
	}
	for _, args := range [][]string{{}, {"generate"}, {"shred", "--keys", path}} {
		if err := runKeys(context.Background(), args); err == nil {
			t.Errorf("hallpass keys %v succeeded", args)
		}
	}
}
