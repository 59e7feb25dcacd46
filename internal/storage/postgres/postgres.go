// Package postgres stores the SSO server's state in PostgreSQL, which any number of server
// replicas can share. The Update methods lock their row with SELECT ... FOR UPDATE, so a
// read-modify-write on one replica waits for one in progress on another and then sees its
// result.
//
// Every round trip to the database costs both processes a wake-up, and on a small machine
// those, not the statements, were most of PostgreSQL's CPU per login. So a transaction sends
// its BEGIN with its first statement, and the writes it queued (sqlstore.Tx.Later) with its
// COMMIT: a code redemption takes two round trips instead of five.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

var lockMigrations = fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(migrationLock))

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
	if err := sqlstore.Migrate(ctx, db, sqlstore.Postgres, lockMigrations, migrations); err != nil {
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
	return tag.RowsAffected(), keyTaken(err)
}

func (d *database) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	return row{d.pool.QueryRow(ctx, query, args...)}
}

func (d *database) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return d.pool.Query(ctx, query, args...)
}

func (d *database) Tx(ctx context.Context, fn func(sqlstore.Tx) error) (err error) {
	pc, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	// A connection released inside a transaction (fn panicked) is closed by the pool, not
	// reused.
	defer pc.Release()
	tx := &txConn{conn: pc.Conn()}
	defer func() {
		if err != nil && tx.begun {
			// The connection's transaction is failed or open; a failed ROLLBACK leaves it
			// so, and the pool then closes the connection instead of reusing it.
			_, _ = tx.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if !tx.begun && len(tx.Queue) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if !tx.begun {
		b.Queue("BEGIN")
	}
	for _, w := range tx.Queue {
		b.Queue(w.Query, w.Args...)
	}
	b.Queue("COMMIT")
	tx.begun = true // from here on, a failure must roll back
	return tx.send(ctx, b)
}

func (d *database) Close() error {
	d.pool.Close()
	return nil
}

// txConn is a transaction that has not sent its BEGIN until its first statement.
type txConn struct {
	conn  *pgx.Conn
	begun bool
	sqlstore.Queue
}

func (c *txConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if c.begun {
		tag, err := c.conn.Exec(ctx, query, args...)
		return tag.RowsAffected(), keyTaken(err)
	}
	br := c.begin(ctx, query, args)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	return tag.RowsAffected(), keyTaken(err)
}

func (c *txConn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	if c.begun {
		return row{c.conn.QueryRow(ctx, query, args...)}
	}
	return &batchRow{br: c.begin(ctx, query, args)}
}

// begin sends BEGIN and the transaction's first statement in one round trip; the caller
// reads both results and closes them.
func (c *txConn) begin(ctx context.Context, query string, args []any) pgx.BatchResults {
	c.begun = true
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(query, args...)
	return c.conn.SendBatch(ctx, b)
}

// send runs a batch of statements that return no rows and ends with COMMIT, reporting the
// first error. PostgreSQL answers the COMMIT of a transaction that failed earlier (a
// statement whose error fn ignored) with ROLLBACK and no error: that is a failure too.
func (c *txConn) send(ctx context.Context, b *pgx.Batch) error {
	br := c.conn.SendBatch(ctx, b)
	var first error
	var last pgconn.CommandTag
	for range b.Len() {
		tag, err := br.Exec()
		if err != nil && first == nil {
			first = keyTaken(err)
		}
		last = tag
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	if first == nil && last.String() != "COMMIT" {
		first = fmt.Errorf("commit: the transaction was rolled back (%s)", last)
	}
	return first
}

// batchRow is the row of a query sent after a BEGIN in one batch; Scan reads both.
type batchRow struct{ br pgx.BatchResults }

func (r *batchRow) Scan(dest ...any) error {
	defer r.br.Close()
	if _, err := r.br.Exec(); err != nil {
		return err
	}
	return row{r.br.QueryRow()}.Scan(dest...)
}

// keyTaken reports an insert of a taken key (unique_violation) as storage.ErrAlreadyExists.
func keyTaken(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return storage.ErrAlreadyExists
	}
	return err
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
