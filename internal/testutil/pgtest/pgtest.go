// Package pgtest gives each test its own PostgreSQL schema in the shared test database
// (hack/postgres.sh), so that tests, and runs one after another, never see each other's
// rows.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
	schemaDSN, drop, err := CreateSchema(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return schemaDSN
}

// CreateSchema creates an empty schema in the database of dsn (a URL) and returns a DSN
// whose connections use it, and a function that drops it.
func CreateSchema(ctx context.Context, dsn string) (schemaDSN string, drop func() error, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("%s must be a URL: %w", DSNEnv, err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", DSNEnv, err)
	}
	schema := "t_" + strings.ToLower(rand.Text())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, errors.Join(fmt.Errorf("create schema: %w", err), admin.Close(ctx))
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop = func() error {
		ctx := context.WithoutCancel(ctx)
		_, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
		return errors.Join(err, admin.Close(ctx))
	}
	return u.String(), drop, nil
}
