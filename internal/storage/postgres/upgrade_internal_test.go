package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/conformance"
	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

func TestMigration3KeepsThePreviousVersionWorking(t *testing.T) {
	if pgtest.DSN() == "" {
		t.Skipf("%s is not set", pgtest.DSNEnv)
	}
	dsn := pgtest.FreshSchema(t, pgtest.DSN())
	conformance.Upgrade(t, func(t *testing.T, n int) {
		pool, err := pgxpool.New(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if err := sqlstore.Migrate(t.Context(), &database{pool: pool}, sqlstore.Postgres, lockMigrations, migrations[:n]); err != nil {
			t.Fatal(err)
		}
	}, func(t *testing.T) storage.Storage {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, query string) {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		if _, err := conn.Exec(t.Context(), query); err != nil {
			t.Fatalf("the previous version's %q: %v", query, err)
		}
	})
}
