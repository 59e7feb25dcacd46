package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

// openTestStorage opens SQLite in a temp dir, or PostgreSQL when HALLPASS_TEST_POSTGRES_DSN
// is set, so the whole flow suite runs against both backends.
func openTestStorage(t *testing.T) storage.Storage {
	t.Helper()
	ctx := context.Background()
	var s storage.Storage
	var err error
	if dsn := os.Getenv("HALLPASS_TEST_POSTGRES_DSN"); dsn != "" {
		s, err = postgres.Open(ctx, dsn)
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallpass.db"))
	}
	if err != nil {
		t.Fatalf("open storage: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
