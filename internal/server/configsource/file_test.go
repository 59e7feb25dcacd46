package configsource_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/server/configsource"
)

func TestFileReload(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cfgPath, keysPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "keys.json")
	c, k := f.encode(f.cfg, f.keys)
	write := func(path string, data []byte) {
		// Write-then-rename, as the kubelet and editors do, so a poll never reads half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(cfgPath, c)
	write(keysPath, k)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rl := configsource.NewReloader(f.srv.Apply, f.metrics, slog.New(slog.DiscardHandler), c, k)
	go configsource.PollFiles(ctx, cfgPath, keysPath, 100*time.Millisecond, rl)

	if f.accepts("app2") {
		t.Fatal("app2 is accepted before it is configured")
	}

	t.Run("a new client is served within 2 seconds of the file changing", func(t *testing.T) {
		c, _ := f.encode(f.withClient(), f.keys)
		write(cfgPath, c)
		if !within(2*time.Second, func() bool { return f.accepts("app2") }) {
			t.Fatal("app2 was not accepted within 2s")
		}
	})

	t.Run("an invalid config is refused, counted, and the last good one keeps serving", func(t *testing.T) {
		bad, _ := f.encode(f.withClient(), f.keys)
		write(cfgPath, []byte(strings.Replace(string(bad), "signing:", "signng:", 1)))
		if !within(2*time.Second, func() bool { return f.failures() == 1 }) {
			t.Fatalf("reload failures = %v, want 1", f.failures())
		}
		if !f.accepts("app2") || !f.accepts("app1") {
			t.Fatal("the last good config stopped serving")
		}
		// A config that parses but fails validation is refused the same way.
		invalid := f.withClient()
		invalid.Issuer = "not a url"
		c, _ := f.encode(invalid, f.keys)
		write(cfgPath, c)
		if !within(2*time.Second, func() bool { return f.failures() == 2 }) {
			t.Fatalf("reload failures = %v, want 2", f.failures())
		}
		if f.srv.Config().Issuer != f.url {
			t.Fatal("an invalid issuer is being served")
		}
	})

	t.Run("rotated signing keys are published without a restart", func(t *testing.T) {
		rotated := f.keys.Copy()
		if err := rotated.Rotate(); err != nil {
			t.Fatal(err)
		}
		c, k := f.encode(f.withClient(), rotated)
		write(cfgPath, c)
		write(keysPath, k)
		if !within(2*time.Second, func() bool { return jwksHas(t, f.url, rotated.Next.KeyID) }) {
			t.Fatal("the new next key was not published within 2s")
		}
	})
}
