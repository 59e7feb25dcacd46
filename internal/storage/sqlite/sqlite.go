// Package sqlite stores the SSO server's state in one SQLite file, for a server with a single
// replica. It uses the pure-Go driver, so the binary stays static.
//
// Every write goes through one connection, owned by one goroutine that commits the
// transactions waiting for it together (groupcommit.go), and every transaction starts with
// BEGIN IMMEDIATE, so writes (and the read-modify-write of the Update methods) are
// serialised, also against another process opening the same file; reads use a separate pool
// and, in WAL mode, never wait for a writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"

	"modernc.org/sqlite" // the "sqlite" driver, and its errors
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
)

// Store is a storage.Storage on an SQLite file.
type Store struct {
	*sqlstore.Store
}

var _ storage.Storage = (*Store)(nil)

// Open opens (creating if needed) the database file at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := openDatabase(path)
	if err != nil {
		return nil, err
	}
	// The write connection creates the file and switches it to WAL before any reader opens.
	if err := sqlstore.Migrate(ctx, db, sqlstore.SQLite, "", migrations); err != nil {
		return nil, errors.Join(fmt.Errorf("migrate sqlite %s: %w", path, err), db.Close())
	}
	st := sqlstore.New(db, sqlstore.SQLite)
	if err := db.prepare(ctx, st.Statements()); err != nil {
		return nil, errors.Join(fmt.Errorf("prepare sqlite %s: %w", path, err), db.Close())
	}
	return &Store{Store: st}, nil
}

// openDatabase opens the file's two pools and starts the writer.
func openDatabase(path string) (*database, error) {
	// Every connection gets these. busy_timeout makes a writer of another process wait
	// instead of failing; synchronous=FULL because a lost commit could un-redeem a code or
	// un-rotate a refresh token; foreign_keys so that constraints a later migration declares
	// are enforced (today's tables link records by hashes that may be empty, and declare none).
	params := url.Values{
		"_busy_timeout": {"10000"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
	}
	// The URI form lets a path hold characters such as '?' or '#'.
	name := "file:" + (&url.URL{Path: path}).EscapedPath()

	wp := url.Values{"_txlock": {"immediate"}}
	for k, v := range params {
		wp[k] = v
	}
	write, err := sql.Open("sqlite", name+"?"+wp.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)

	rp := url.Values{"_query_only": {"1"}}
	for k, v := range params {
		rp[k] = v
	}
	read, err := sql.Open("sqlite", name+"?"+rp.Encode())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite %s: %w", path, err), write.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	db := &database{write: write, read: read, writes: make(chan writeRequest), stop: make(chan struct{}), writerDone: make(chan struct{})}
	go db.writeLoop()
	return db, nil
}

// database adapts the two database/sql pools to sqlstore.DB.
//
// SQLite parses a statement every time it runs one that is not prepared, and that parsing
// was a quarter of the server's CPU; so every statement of sqlstore is prepared, on both
// pools, and runs as that prepared statement whenever it is given by its text. They are
// prepared once, at Open: preparing one on the write pool during a transaction would wait
// forever for the pool's only connection, which the transaction holds. A transaction runs
// them through tx.StmtContext, which reuses the statement prepared on its connection.
type database struct {
	write, read *sql.DB
	// The prepared statements of each pool by their text; set by prepare, then only read.
	// Statements not in them (those of the migrations) run unprepared.
	writeStmts, readStmts map[string]*sql.Stmt

	// writes takes transactions to the writer goroutine, which owns the write pool; stop
	// ends it and writerDone says it has ended.
	writes           chan writeRequest
	stop, writerDone chan struct{}
	stopOnce         sync.Once
}

// prepare prepares each of queries on both pools. (Which pool runs a statement depends on
// how sqlstore calls it, not on its text, and preparing one that a pool never runs costs
// little, so every statement is prepared on both.)
func (d *database) prepare(ctx context.Context, queries []string) error {
	d.writeStmts = make(map[string]*sql.Stmt, len(queries))
	d.readStmts = make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		w, err := d.write.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.writeStmts[q] = w
		r, err := d.read.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.readStmts[q] = r
	}
	for _, q := range []string{savepoint, rollbackSavepoint, releaseSavepoint} {
		w, err := d.write.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		d.writeStmts[q] = w
	}
	return nil
}

// Exec runs a write on its own as a transaction, so that it shares a batch's COMMIT too.
func (d *database) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := d.Tx(ctx, func(c sqlstore.Tx) error {
		var err error
		n, err = c.Exec(ctx, query, args...)
		return err
	})
	return n, err
}

func (d *database) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	if s, ok := d.readStmts[query]; ok {
		return s.QueryRowContext(ctx, args...)
	}
	return d.read.QueryRowContext(ctx, query, args...)
}

func (d *database) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	var rows *sql.Rows
	var err error
	if s, ok := d.readStmts[query]; ok {
		rows, err = s.QueryContext(ctx, args...)
	} else {
		rows, err = d.read.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return rowsAdapter{rows}, nil
}

// Close stops the writer after its batch, then closes the prepared statements and the pools.
func (d *database) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.writerDone
	var errs []error
	for _, stmts := range []map[string]*sql.Stmt{d.writeStmts, d.readStmts} {
		for _, s := range stmts {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(append(errs, d.read.Close(), d.write.Close())...)
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, keyTaken(err)
	}
	return res.RowsAffected()
}

// keyTaken reports an insert of a taken key as storage.ErrAlreadyExists.
func keyTaken(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE) {
		return storage.ErrAlreadyExists
	}
	return err
}

// txConn runs statements in a transaction of the write connection; its reads see the
// transaction's own writes. stmts are the write pool's prepared statements. A cancelled
// context does not interrupt its statements: SQLite would roll back the whole transaction,
// and with it the other transactions of the batch.
type txConn struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// Queue holds the writes queued by the transaction being run (see runMember).
	*sqlstore.Queue
}

func (c txConn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	ctx = context.WithoutCancel(ctx)
	if s, ok := c.stmts[query]; ok {
		return rowsAffected(c.tx.StmtContext(ctx, s).ExecContext(ctx, args...))
	}
	return rowsAffected(c.tx.ExecContext(ctx, query, args...))
}

// runLater runs the queued writes in order.
func (c txConn) runLater(ctx context.Context) error {
	for _, w := range *c.Queue {
		if _, err := c.Exec(ctx, w.Query, w.Args...); err != nil {
			return err
		}
	}
	return nil
}

func (c txConn) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Scanner {
	ctx = context.WithoutCancel(ctx)
	if s, ok := c.stmts[query]; ok {
		return c.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return c.tx.QueryRowContext(ctx, query, args...)
}

// rowsAdapter drops the error of Close: by then the rows were read, or Err said why not.
type rowsAdapter struct{ *sql.Rows }

func (r rowsAdapter) Close() { _ = r.Rows.Close() }
