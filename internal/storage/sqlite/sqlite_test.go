package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/conformance"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestStorage(t *testing.T) {
	conformance.Run(t, func(t *testing.T) storage.Storage {
		return open(t, filepath.Join(t.TempDir(), "hallpass.db"))
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	// A path with characters that mean something in a URI must still name the file.
	path := filepath.Join(t.TempDir(), "odd ?#% name.db")
	first, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateUser(t.Context(), storage.User{Connection: "db", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(matches) != 1 || matches[0] != path {
		t.Fatalf("files after close: %q, want only %q", matches, path)
	}

	second := open(t, path)
	if _, err := second.GetUser(t.Context(), "db", "alice"); err != nil {
		t.Fatalf("user written before reopening: %v", err)
	}
}

func BenchmarkSilentLogin(b *testing.B) {
	conformance.Benchmark(b, open(b, filepath.Join(b.TempDir(), "hallpass.db")))
}
