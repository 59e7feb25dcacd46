package postgres

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

// TestATransactionWhoseStatementFailedDoesNotCommit: PostgreSQL answers the COMMIT of a
// transaction with a failed statement by rolling it back, without an error. A function
// that ignored the failure must still get one, or it would take its earlier writes for
// stored.
func TestATransactionWhoseStatementFailedDoesNotCommit(t *testing.T) {
	dsn := os.Getenv(pgtest.DSNEnv)
	if dsn == "" {
		t.Skipf("%s is not set", pgtest.DSNEnv)
	}
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.FreshSchema(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, q := range []string{"CREATE TABLE t (k TEXT PRIMARY KEY)", "INSERT INTO t VALUES ('taken')"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db := &database{pool: pool}
	err = db.Tx(ctx, func(c sqlstore.Tx) error {
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES ('written')"); err != nil {
			return err
		}
		_, _ = c.Exec(ctx, "INSERT INTO t VALUES ('taken')") // fails, and is ignored
		return nil
	})
	if err == nil {
		t.Fatal("the transaction reported success")
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows after the failed transaction: %d (%v), want only the one from before", n, err)
	}
}
