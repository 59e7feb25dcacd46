// Package postgres stores the SSO server's state in PostgreSQL, which any number of server
// replicas can share. The Update methods lock their row with SELECT ... FOR UPDATE, so a
// read-modify-write on one replica waits for one in progress on another and then sees its
// result.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
)

// Store is a storage.Storage on a PostgreSQL database.
type Store struct {
	*sqlstore.Store
}

var _ storage.Storage = (*Store)(nil)

// migrationLock is the advisory lock key that serialises schema migrations of replicas
// starting together (an arbitrary constant: "hallpass" in ASCII).
const migrationLock = 0x68616c6c70617373

// Open connects to the database named by dsn (a URL or key=value string; parameters such as
// search_path are passed to the server) and brings its schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// pgxpool connects lazily; fail here, not on the first login, when the database is
	// unreachable.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	db := &database{pool: pool}
	lock := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(migrationLock))
	if err := sqlstore.Migrate(ctx, db, sqlstore.Postgres, lock, migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return &Store{Store: sqlstore.New(db, sqlstore.Postgres)}, nil
}

// database adapts a pgx pool to sqlstore.DB.
type database struct {
	pool *pgxpool.Pool
}

func (d *database) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := d.pool.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (d *database) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	return row{d.pool.QueryRow(ctx, query, args...)}
}

func (d *database) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return d.pool.Query(ctx, query, args...)
}

func (d *database) Tx(ctx context.Context, fn func(sqlstore.Conn) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(txConn{tx}) })
}

func (d *database) Close() error {
	d.pool.Close()
	return nil
}

type txConn struct{ tx pgx.Tx }

func (c txConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.tx.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (c txConn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	return row{c.tx.QueryRow(ctx, query, args...)}
}

// row reports a missing row as sql.ErrNoRows, the one sentinel sqlstore tests for.
type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return sql.ErrNoRows
	}
	return err
}
