// Package pgtest gives each test its own PostgreSQL schema in the shared test database
// (hack/postgres.sh), so that tests, and runs one after another, never see each other's
// rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DSNEnv names the test database. make test always sets it.
const DSNEnv = "HALLPASS_TEST_POSTGRES_DSN"

// DSN returns the test database's DSN, or "" when none was given.
func DSN() string { return os.Getenv(DSNEnv) }

// FreshSchema creates an empty schema that is dropped when t ends and returns a DSN whose
// connections use it.
func FreshSchema(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", DSNEnv, err)
	}
	schema := "t_" + strings.ToLower(rand.Text())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s must be a URL: %v", DSNEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
