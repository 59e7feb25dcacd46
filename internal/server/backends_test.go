package server_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

// openTestStorage opens SQLite in a temp dir, or PostgreSQL (a schema of the test's own)
// when HALLPASS_TEST_POSTGRES_DSN is set, so the whole flow suite runs against both backends.
func openTestStorage(t *testing.T) storage.Storage {
	t.Helper()
	ctx := context.Background()
	var s storage.Storage
	var err error
	if dsn := pgtest.DSN(); dsn != "" {
		s, err = postgres.Open(ctx, pgtest.FreshSchema(t, dsn))
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "hallpass.db"))
	}
	if err != nil {
		t.Fatalf("open storage: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
