package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
)

// Group commit.
//
// SQLite makes a transaction durable with an fsync of its write-ahead log at COMMIT
// (synchronous=FULL), and only one transaction writes at a time. With a COMMIT per
// transaction, the fsyncs, not the CPU, bound how many logins a second the server answers.
// So one goroutine owns the write connection: it takes every transaction waiting for it
// and runs them, one after the other, in one SQLite transaction, each inside its own
// SAVEPOINT, and makes them all durable with one COMMIT. A transaction whose function fails
// is rolled back to its savepoint alone. A caller is answered only after the COMMIT of its
// batch, with that COMMIT's error if it failed, so it sees exactly what a transaction of its
// own would give. Nobody waits for a batch to fill: a transaction that finds the writer idle
// is committed at once, and batches form only from those that queued during a COMMIT.

// maxBatch bounds how many transactions share one COMMIT, and so how long the first of
// them waits for the others.
const maxBatch = 64

// Savepoint statements; prepared with the others.
const (
	savepoint         = "SAVEPOINT batch_member"
	rollbackSavepoint = "ROLLBACK TO batch_member"
	releaseSavepoint  = "RELEASE batch_member"
)

var errClosed = errors.New("sqlite store is closed")

type writeRequest struct {
	ctx  context.Context
	fn   func(sqlstore.Tx) error
	done chan<- writeResult
}

type writeResult struct {
	err error
	// panicked carries a panic of fn back to its caller's goroutine, where an HTTP server
	// recovers it, instead of ending the process in the writer's.
	panicked   bool
	panicValue any
}

// Tx hands fn to the writer and waits until its batch is committed or rolled back.
func (d *database) Tx(ctx context.Context, fn func(sqlstore.Tx) error) error {
	done := make(chan writeResult, 1)
	select {
	case d.writes <- writeRequest{ctx: ctx, fn: fn, done: done}:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stop:
		return errClosed
	}
	// The writer always answers a request it took: it runs fn to the end even when ctx is
	// cancelled meanwhile, because an interrupted statement would roll back the whole batch.
	res := <-done
	if res.panicked {
		panic(res.panicValue)
	}
	return res.err
}

// writeLoop is the writer goroutine. It stops when stop is closed, after the batch it is
// running.
func (d *database) writeLoop() {
	defer close(d.writerDone)
	batch := make([]writeRequest, 0, maxBatch)
	for {
		select {
		case <-d.stop:
			return
		case req := <-d.writes:
			batch = append(batch[:0], req)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case req := <-d.writes:
				batch = append(batch, req)
			default:
				break more
			}
		}
		d.commitBatch(batch)
	}
}

// commitBatch runs the batch in one transaction and answers every request of it.
func (d *database) commitBatch(batch []writeRequest) {
	results := make([]writeResult, len(batch))
	// A member that failed may have decided on what members before it wrote (a code found
	// used, a session found gone): when those writes are lost, its own answer is void too.
	failAll := func(err error) {
		for i := range results {
			if !results[i].panicked {
				results[i].err = err
			}
		}
	}
	// Not the callers' contexts: cancelling one must not roll back the others.
	ctx := context.Background()
	tx, err := d.write.BeginTx(ctx, nil)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", err))
	} else {
		conn := txConn{tx: tx, stmts: d.writeStmts, Queue: new(sqlstore.Queue)}
		// A batch of one needs no savepoint: when it fails, the whole transaction goes.
		alone := len(batch) == 1
		for i, req := range batch {
			var broken error
			results[i], broken = runMember(conn, req, !alone)
			if broken != nil {
				// The transaction is no longer what the members before this one left: undo
				// all of it rather than commit a part.
				_ = tx.Rollback()
				failAll(fmt.Errorf("roll back a failed transaction of the batch: %w", broken))
				tx = nil
				break
			}
		}
		switch {
		case tx == nil:
		case alone && (results[0].err != nil || results[0].panicked):
			_ = tx.Rollback()
		default:
			if err := tx.Commit(); err != nil {
				failAll(fmt.Errorf("commit: %w", err))
			}
		}
	}
	for i, req := range batch {
		req.done <- results[i]
	}
}

// runMember runs one request, inside its own savepoint when inSavepoint. broken is set
// when the savepoint could not be rolled back or released; SQLite then may have rolled back
// the whole transaction (it does so on some I/O errors), and later statements would no
// longer be inside it.
func runMember(conn txConn, req writeRequest, inSavepoint bool) (res writeResult, broken error) {
	if err := req.ctx.Err(); err != nil {
		return writeResult{err: err}, nil
	}
	if inSavepoint {
		if _, err := conn.Exec(req.ctx, savepoint); err != nil {
			return writeResult{err: fmt.Errorf("savepoint: %w", err)}, err
		}
	}
	defer func() {
		if v := recover(); v != nil {
			res = writeResult{panicked: true, panicValue: v}
		}
		if !inSavepoint {
			return
		}
		if res.err != nil || res.panicked {
			if _, err := conn.Exec(req.ctx, rollbackSavepoint); err != nil {
				broken = err
				return
			}
		}
		if _, err := conn.Exec(req.ctx, releaseSavepoint); err != nil {
			broken = err
		}
	}()
	*conn.Queue = (*conn.Queue)[:0]
	if res.err = req.fn(conn); res.err == nil {
		res.err = conn.runLater(req.ctx)
	}
	return res, nil
}
