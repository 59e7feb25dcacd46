package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

// A million sessions (-fill): before the server starts, the command stores sessions of other
// users, refresh families and expired rows through the storage package's bulk writes
// (sqlstore's CreateSessions and the like: the statements and encoding of the server's own
// writes, many to a transaction), measures what each record takes on disk, and times one
// sweep of expired sessions and one garbage collection. The silent logins then run against
// the filled database.

// fillBatch is how many records one bulk transaction writes.
const fillBatch = 5000

// bulkStore is what both backends' stores offer besides storage.Storage.
type bulkStore interface {
	storage.Storage
	CreateSessions(ctx context.Context, sessions []storage.Session) error
	CreateRefreshFamilies(ctx context.Context, families []storage.RefreshFamily) error
	CreateAccessTokens(ctx context.Context, tokens []storage.AccessToken) error
}

type fillReport struct {
	sessions, families              int
	took                            time.Duration
	bytesPerSession, bytesPerFamily float64
	// gcRows expired access tokens were deleted by one garbage collection in gcTook, then
	// ended expired sessions were ended in sweepTook.
	ended     int
	sweepTook time.Duration
	gcRows    int64
	gcTook    time.Duration
}

func (f fillReport) String() string {
	if f.sessions == 0 {
		return "no fill"
	}
	s := fmt.Sprintf("%d sessions stored in %s (%.0f/s), %.0f B per session; %d refresh families, %.0f B per family",
		f.sessions, f.took.Round(time.Second), float64(f.sessions)/f.took.Seconds(), f.bytesPerSession, f.families, f.bytesPerFamily)
	if f.ended > 0 {
		s += fmt.Sprintf("; the sweep ended %d expired sessions in %s (%.0f/s)", f.ended, f.sweepTook.Round(time.Millisecond), float64(f.ended)/f.sweepTook.Seconds())
	}
	if f.gcRows > 0 {
		s += fmt.Sprintf("; GC deleted %d expired rows in %s (%.0f rows/s)", f.gcRows, f.gcTook.Round(time.Millisecond), float64(f.gcRows)/f.gcTook.Seconds())
	}
	return s
}

func fill(ctx context.Context, st config.Storage, o options) (fillReport, error) {
	rep := fillReport{sessions: o.fill, families: o.fillFamilies}
	store, size, closeAll, err := openForFill(ctx, st)
	if err != nil {
		return rep, err
	}
	defer closeAll()
	now := time.Now()
	before, err := size("sessions")
	if err != nil {
		return rep, err
	}
	start := time.Now()
	if err := inBatches(o.fill, func(from, to int) error { return store.CreateSessions(ctx, fillSessions(from, to, now, false)) }); err != nil {
		return rep, err
	}
	rep.took = time.Since(start)
	after, err := size("sessions")
	if err != nil {
		return rep, err
	}
	rep.bytesPerSession = float64(after-before) / float64(o.fill)
	if before, err = size("refresh_families"); err != nil {
		return rep, err
	}
	if err := inBatches(o.fillFamilies, func(from, to int) error { return store.CreateRefreshFamilies(ctx, fillFamilies(from, to, now)) }); err != nil {
		return rep, err
	}
	if after, err = size("refresh_families"); err != nil {
		return rep, err
	}
	rep.bytesPerFamily = float64(after-before) / float64(max(o.fillFamilies, 1))
	err = timedGC(ctx, store, o.gcRows, now, &rep)
	fmt.Println("fill:", rep)
	return rep, err
}

// sweepBatch is the server's: how many expired sessions one transaction ends.
const sweepBatch = 100

// timedGC stores n expired sessions and n expired access tokens of theirs (with the rows of
// the fill alive beside them), then times the server's two steps apart: one garbage
// collection, which deletes the tokens whatever the sessions' backlog, and the sweep that
// ends the sessions as the server's does (ListExpiredSessions and RevokeSessions, a batch at
// a time, none of them with a back-channel client to announce to).
func timedGC(ctx context.Context, store bulkStore, n int, now time.Time, rep *fillReport) error {
	if n == 0 {
		return nil
	}
	err := inBatches(n, func(from, to int) error {
		if err := store.CreateSessions(ctx, fillSessions(from, to, now, true)); err != nil {
			return err
		}
		return store.CreateAccessTokens(ctx, fillTokens(from, to, now))
	})
	if err != nil {
		return err
	}
	start := time.Now()
	if rep.gcRows, err = store.GarbageCollect(ctx, now); err != nil {
		return fmt.Errorf("garbage collection: %w", err)
	}
	rep.gcTook = time.Since(start)
	start = time.Now()
	for {
		batch, err := store.ListExpiredSessions(ctx, now, sweepBatch)
		if err != nil {
			return fmt.Errorf("list expired sessions: %w", err)
		}
		ids := make([]string, len(batch))
		for i, sess := range batch {
			ids[i] = sess.IDHash
		}
		ended, err := store.RevokeSessions(ctx, ids)
		if err != nil {
			return fmt.Errorf("end expired sessions: %w", err)
		}
		rep.ended += len(ended)
		if len(batch) < sweepBatch {
			break
		}
	}
	rep.sweepTook = time.Since(start)
	return nil
}

// inBatches calls write for [from, to) ranges of at most fillBatch covering [0, n).
func inBatches(n int, write func(from, to int) error) error {
	for from := 0; from < n; from += fillBatch {
		if err := write(from, min(from+fillBatch, n)); err != nil {
			return err
		}
		if done := min(from+fillBatch, n); done%100_000 == 0 {
			fmt.Fprintf(os.Stderr, "  %d stored\n", done)
		}
	}
	return nil
}

// fillClaims are a typical user's claims from a Database connection.
func fillClaims(i int) storage.Claims {
	user := "user" + strconv.Itoa(i)
	return storage.Claims{Subject: user, Username: user, Name: "User Number " + strconv.Itoa(i), Email: user + "@example.com",
		EmailVerified: true, Groups: []string{"staff"}}
}

// fillSessions are sessions [from, to) of users other than the benchmark's, live or expired.
func fillSessions(from, to int, now time.Time, expired bool) []storage.Session {
	out := make([]storage.Session, 0, to-from)
	prefix, expires := "fill-session-", now.Add(72*time.Hour)
	if expired {
		prefix, expires = "expired-session-", now.Add(-time.Second)
	}
	for i := from; i < to; i++ {
		id := prefix + strconv.Itoa(i)
		out = append(out, storage.Session{
			IDHash: digest.Of(id), SID: digest.Of("sid-" + id)[:22], Connection: "people", Claims: fillClaims(i),
			AuthTime: now.Add(-time.Hour), AMR: []string{"pwd"}, Reusable: true, CreatedAt: now.Add(-time.Hour),
			LastActivity: now, ExpiresAt: expires, Clients: []string{"bench-app", "other-app"},
			UserAgent:     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
			ClientAddress: "2001:db8::" + strconv.FormatInt(int64(i), 16),
		})
	}
	return out
}

func fillFamilies(from, to int, now time.Time) []storage.RefreshFamily {
	out := make([]storage.RefreshFamily, 0, to-from)
	for i := from; i < to; i++ {
		id := "fill-family-" + strconv.Itoa(i)
		out = append(out, storage.RefreshFamily{
			ID: digest.Of(id)[:32], ClientID: "bench-app", Scopes: []string{"email", "offline_access", "openid", "profile"},
			Claims: fillClaims(i), SessionIDHash: digest.Of("fill-session-" + strconv.Itoa(i)), SID: digest.Of("sid-fill-session-" + strconv.Itoa(i))[:22],
			Connection: "people", AuthTime: now.Add(-time.Hour), AMR: []string{"pwd"},
			CurrentHash: digest.Of("current-" + id), PreviousHash: digest.Of("previous-" + id), RotatedAt: now.Add(-time.Minute),
			CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(720 * time.Hour),
		})
	}
	return out
}

func fillTokens(from, to int, now time.Time) []storage.AccessToken {
	out := make([]storage.AccessToken, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, storage.AccessToken{
			TokenHash: digest.Of("expired-token-" + strconv.Itoa(i)), ClientID: "bench-app", Scopes: []string{"openid", "profile"},
			Claims: fillClaims(i), SessionIDHash: digest.Of("expired-session-" + strconv.Itoa(i)),
			IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Second),
		})
	}
	return out
}

// openForFill opens the backend's store, and a way to read how many bytes a table takes:
// PostgreSQL's pg_total_relation_size (table, indexes and TOAST); for SQLite the pages in
// use of the whole file, since only the table being filled grows in between.
func openForFill(ctx context.Context, st config.Storage) (bulkStore, func(table string) (int64, error), func(), error) {
	if st.Type == config.StoragePostgres {
		store, err := postgres.Open(ctx, st.PostgresDSN)
		if err != nil {
			return nil, nil, nil, err
		}
		conn, err := pgx.Connect(ctx, st.PostgresDSN)
		if err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("connect to measure sizes: %w", err), store.Close())
		}
		size := func(table string) (n int64, err error) {
			err = conn.QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass)", table).Scan(&n)
			return n, err
		}
		return store, size, func() { _ = conn.Close(ctx); _ = store.Close() }, nil
	}
	store, err := sqlite.Open(ctx, st.SQLitePath)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := sql.Open("sqlite", "file:"+st.SQLitePath+"?mode=ro")
	if err != nil {
		return nil, nil, nil, errors.Join(err, store.Close())
	}
	size := func(string) (n int64, err error) {
		err = db.QueryRowContext(ctx, "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()").Scan(&n)
		return n, err
	}
	return store, size, func() { _ = db.Close(); _ = store.Close() }, nil
}
