// Package sqlstore implements storage.Storage once for every SQL backend (as Dex's SQL
// storage does for its flavours): the sqlite and postgres packages supply a connection
// adapter, a Dialect and their schema, and run the same statements, so the two cannot drift
// apart in behaviour.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/hallpass/hallpass/internal/storage"
)

// Conn runs statements, inside or outside a transaction.
type Conn interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryRow runs a query for one row; Scan returns sql.ErrNoRows when there is none.
	QueryRow(ctx context.Context, query string, args ...any) Scanner
}

// Rows iterates over a query's result.
type Rows interface {
	Scanner
	Next() bool
	Err() error
	Close()
}

// Tx is the connection of a write transaction.
type Tx interface {
	Conn
	// Later queues a write to run after the transaction's function has returned nil, in
	// order, before the commit. A backend may send the queued writes and the commit (and a
	// transaction's BEGIN with its first statement) in one round trip, so a queued write
	// must fail by an error, never by affecting no row: every insert of this package is a
	// plain INSERT, and each backend reports a taken key as storage.ErrAlreadyExists.
	Later(query string, args ...any)
}

// Queue keeps the writes of Tx.Later, in order, for a backend's Tx to run before its commit.
type Queue []Write

// Write is one queued statement.
type Write struct {
	Query string
	Args  []any
}

// Later queues a write; a backend's transaction embeds a Queue to implement Tx.Later.
func (q *Queue) Later(query string, args ...any) { *q = append(*q, Write{query, args}) }

// DB is a backend's database. Its own Exec writes and its Query and QueryRow only read.
type DB interface {
	Conn
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// Tx runs fn in a write transaction, then the writes fn queued with Later, and commits;
	// if fn or a queued write fails, it rolls back and returns that error. Transactions that
	// write the same row must be serialised: the second one must see what the first one
	// committed.
	Tx(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// Dialect is what differs in the statements of two backends.
type Dialect struct {
	Placeholder Placeholder
	// Lock ends the SELECT that starts a read-modify-write, to lock the row until commit.
	Lock string
	// Share ends a SELECT that keeps the row from being deleted or changed until commit.
	Share string
	// ClaimsEmail is the expression of a users row's email claim (indexed, see the schemas).
	ClaimsEmail string
}

// Numbered parameters exist in both dialects, which lets one statement text bind its
// arguments in column order whatever order the columns appear in the text.
var (
	SQLite = Dialect{Placeholder: func(i int) string { return fmt.Sprintf("?%d", i) }, ClaimsEmail: "json_extract(claims, '$.email')"}
	// Postgres locks the row for the transaction, so concurrent updaters queue on it and
	// each reads what the previous one committed.
	Postgres = Dialect{Placeholder: func(i int) string { return fmt.Sprintf("$%d", i) }, Lock: " FOR UPDATE", Share: " FOR SHARE",
		ClaimsEmail: "(claims->>'email')"}
)

// Store implements storage.Storage on a DB.
type Store struct {
	db DB
	q  queries
}

var _ storage.Storage = (*Store)(nil)

type queries struct {
	insertSession, selectSession, lockSession, updateSession, deleteSession  string
	sessionsBySubject, expiredSessions                                       string
	shareSession, insertRedemption, selectRedemption                         string
	insertToken, selectToken, deleteToken                                    string
	insertFamily, selectFamily, lockFamily, updateFamily, selectFamilyByHash string
	revokeFamiliesOfSession, deleteTokensOfSession                           string
	revokeFamily, deleteTokensOfFamily                                       string
	insertUser, selectUser, setUserPassword                                  string
	usersByEmail, lockUser, setUserClaims                                    string
	insertEmailToken, selectEmailToken, deleteEmailTokensOfUser              string
	insertDeviceCode, deviceCodeByUserCode, lockDeviceCode, updateDeviceCode string
	recordFailure, selectThrottle, deleteThrottle                            string
	useOnce                                                                  string
	insertFactor, factorsOfUser, deleteFactor, useFactorStep                 string
	factorsByUserHandle                                                      string
	deleteRecoveryCodes, insertRecoveryCode, useRecoveryCode, countCodes     string
	ping                                                                     string
	insertGrace, selectGrace                                                 string
	gc                                                                       []collect
}

// collect is one statement of GarbageCollect: it deletes rows that are at least age old.
type collect struct {
	query string
	age   time.Duration
}

// New returns a Store on db, whose schema must be migrated already.
func New(db DB, d Dialect) *Store { //nolint:funlen // one table of SQL statements, a line each, read as a list
	p := d.Placeholder
	// Expired rows go gcBatch at a time, each batch its own statement: one DELETE of a
	// whole backlog would hold SQLite's only writer, and every login waiting to commit, for
	// as long as it runs.
	expired := func(table, key, column string) string {
		return fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s IS NULL OR %s <= %s LIMIT %d)",
			table, key, key, table, column, column, p(1), gcBatch)
	}
	return &Store{db: db, q: queries{
		insertSession: Sessions.Insert(p),
		selectSession: Sessions.Select(p),
		lockSession:   Sessions.Select(p) + d.Lock,
		updateSession: Sessions.Update(p),
		deleteSession: "DELETE FROM sessions WHERE id_hash = " + p(1),
		sessionsBySubject: fmt.Sprintf("SELECT %s FROM sessions WHERE connection = %s AND subject = %s ORDER BY created_at, id_hash",
			Sessions.List(), p(1), p(2)),
		// A zero ExpiresAt is stored as NULL and, being before any now, counts as expired.
		// Each half reads the expiry index in order and stops at the limit: one condition
		// "IS NULL OR <= now" sorted the whole backlog for every batch (PostgreSQL keeps
		// NULLs last in the index, SQLite merged two index searches), so ending a backlog
		// took time in its square.
		expiredSessions: fmt.Sprintf("SELECT %[1]s FROM ("+
			"SELECT %[1]s FROM (SELECT %[1]s FROM sessions WHERE expires_at IS NULL LIMIT %[3]s) AS never "+
			"UNION ALL SELECT %[1]s FROM (SELECT %[1]s FROM sessions WHERE expires_at <= %[2]s ORDER BY expires_at LIMIT %[3]s) AS due"+
			") AS expired ORDER BY expires_at NULLS FIRST, id_hash LIMIT %[3]s",
			Sessions.List(), p(1), p(2)),

		// The session of a code being redeemed is held until commit (see RedeemCode).
		shareSession:     Sessions.Select(p) + d.Share,
		insertRedemption: fmt.Sprintf("INSERT INTO code_redemptions (code_hash, access_token_hash, refresh_family_id, expires_at) VALUES (%s, %s, %s, %s)", p(1), p(2), p(3), p(4)),
		selectRedemption: "SELECT access_token_hash, refresh_family_id FROM code_redemptions WHERE code_hash = " + p(1),

		insertToken: AccessTokens.Insert(p),
		selectToken: AccessTokens.Select(p),
		deleteToken: "DELETE FROM access_tokens WHERE token_hash = " + p(1),

		insertFamily: RefreshFamilies.Insert(p),
		selectFamily: RefreshFamilies.Select(p),
		lockFamily:   RefreshFamilies.Select(p) + d.Lock,
		updateFamily: RefreshFamilies.Update(p),
		selectFamilyByHash: fmt.Sprintf("SELECT %s FROM refresh_families WHERE current_hash = %s OR previous_hash = %s LIMIT 1",
			RefreshFamilies.List(), p(1), p(1)),

		revokeFamiliesOfSession: "UPDATE refresh_families SET revoked = TRUE WHERE session_id_hash = " + p(1),
		deleteTokensOfSession:   "DELETE FROM access_tokens WHERE session_id_hash = " + p(1),
		revokeFamily:            "UPDATE refresh_families SET revoked = TRUE WHERE id = " + p(1),
		deleteTokensOfFamily:    "DELETE FROM access_tokens WHERE refresh_family_id = " + p(1),

		insertDeviceCode:     DeviceCodes.Insert(p),
		deviceCodeByUserCode: fmt.Sprintf("SELECT %s FROM device_codes WHERE user_code_hash = %s", DeviceCodes.List(), p(1)),
		lockDeviceCode:       DeviceCodes.Select(p) + d.Lock,
		updateDeviceCode:     DeviceCodes.Update(p),

		insertUser: Users.Insert(p),
		selectUser: Users.Select(p),
		setUserPassword: fmt.Sprintf("UPDATE users SET password_hash = %s WHERE connection = %s AND username = %s",
			p(1), p(2), p(3)),
		usersByEmail: fmt.Sprintf("SELECT %s FROM users WHERE connection = %s AND %s = %s ORDER BY username LIMIT %s",
			Users.List(), p(1), d.ClaimsEmail, p(2), p(3)),
		lockUser:      Users.Select(p) + d.Lock,
		setUserClaims: fmt.Sprintf("UPDATE users SET claims = %s WHERE connection = %s AND username = %s", p(1), p(2), p(3)),

		insertEmailToken: EmailTokens.Insert(p),
		selectEmailToken: EmailTokens.Select(p),
		deleteEmailTokensOfUser: fmt.Sprintf("DELETE FROM email_tokens WHERE connection = %s AND username = %s AND purpose = %s",
			p(1), p(2), p(3)),

		// One statement, so concurrent failures of one key cannot lose a count even where the
		// row does not exist yet.
		recordFailure: fmt.Sprintf(`INSERT INTO throttles (throttle_key, failures, last_failure) VALUES (%s, 1, %s)
ON CONFLICT (throttle_key) DO UPDATE SET
  failures = CASE WHEN throttles.last_failure IS NULL OR throttles.last_failure < %s THEN 1 ELSE throttles.failures + 1 END,
  last_failure = excluded.last_failure
RETURNING %s`, p(1), p(2), p(3), Throttles.List()),
		selectThrottle: Throttles.Select(p),
		deleteThrottle: "DELETE FROM throttles WHERE throttle_key = " + p(1),

		// One statement, so two replicas using a key at once cannot both see a first use.
		useOnce: fmt.Sprintf(`INSERT INTO single_use (use_key, expires_at) VALUES (%s, %s)
ON CONFLICT (use_key) DO UPDATE SET expires_at = excluded.expires_at WHERE single_use.expires_at <= %s`, p(1), p(2), p(3)),

		insertFactor: Factors.Insert(p),
		factorsOfUser: fmt.Sprintf("SELECT %s FROM factors WHERE connection = %s AND subject = %s ORDER BY created_at, id",
			Factors.List(), p(1), p(2)),
		factorsByUserHandle: fmt.Sprintf("SELECT %s FROM factors WHERE user_handle = %s ORDER BY created_at, id",
			Factors.List(), p(1)),
		deleteFactor: fmt.Sprintf("DELETE FROM factors WHERE connection = %s AND subject = %s AND id = %s", p(1), p(2), p(3)),
		// One statement, so two replicas accepting the same code at once cannot both succeed.
		useFactorStep: fmt.Sprintf("UPDATE factors SET last_step = %s, last_used_at = %s WHERE id = %s AND last_step < %s",
			p(1), p(2), p(3), p(1)),
		deleteRecoveryCodes: fmt.Sprintf("DELETE FROM recovery_codes WHERE connection = %s AND subject = %s", p(1), p(2)),
		insertRecoveryCode: fmt.Sprintf("INSERT INTO recovery_codes (connection, subject, code_hash, created_at) VALUES (%s, %s, %s, %s)",
			p(1), p(2), p(3), p(4)),
		useRecoveryCode: fmt.Sprintf("DELETE FROM recovery_codes WHERE connection = %s AND subject = %s AND code_hash = %s",
			p(1), p(2), p(3)),
		countCodes: fmt.Sprintf("SELECT COUNT(*) FROM recovery_codes WHERE connection = %s AND subject = %s", p(1), p(2)),

		ping: "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
		insertGrace: fmt.Sprintf("INSERT INTO enrolment_grace (connection, subject, started_at) VALUES (%s, %s, %s) ON CONFLICT (connection, subject) DO NOTHING",
			p(1), p(2), p(3)),
		selectGrace: fmt.Sprintf("SELECT started_at FROM enrolment_grace WHERE connection = %s AND subject = %s", p(1), p(2)),

		gc: []collect{
			{query: expired("code_redemptions", "code_hash", "expires_at"), age: storage.CodeRedemptionRetention},
			// Codes stored by replicas of the version before ADR 0012, during an upgrade.
			{query: expired("auth_codes", "code_hash", "expires_at")},
			{query: expired("access_tokens", "token_hash", "expires_at")},
			{query: expired("refresh_families", "id", "expires_at")},
			{query: expired("throttles", "throttle_key", "last_failure"), age: storage.ThrottleRetention},
			{query: expired("single_use", "use_key", "expires_at")},
			{query: expired("email_tokens", "token_hash", "expires_at")},
			{query: expired("device_codes", "device_code_hash", "expires_at"), age: storage.DeviceCodeRetention},
		},
	}}
}

// Statements returns the text of every statement the Store runs (each once), so that a
// backend can prepare them all up front.
func (s *Store) Statements() []string {
	var out []string
	add := func(q string) {
		if !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	// Every string field of queries is a statement; reading them by reflection means a
	// statement added later cannot be left out.
	v := reflect.ValueOf(s.q)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			add(f.String())
		}
	}
	for _, c := range s.q.gc {
		add(c.query)
	}
	return out
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping reads the schema's version.
func (s *Store) Ping(ctx context.Context) error {
	var version int
	if err := s.db.QueryRow(ctx, s.q.ping).Scan(&version); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	return nil
}

// errKeyChanged is returned when an update function changes the key of its record: the
// update addresses a row by key, so it cannot also move it.
var errKeyChanged = errors.New("the update function changed the record's key")

// create inserts a row; the backend reports a taken key as ErrAlreadyExists.
func create(ctx context.Context, c Conn, query string, values []any, err error) error {
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, query, values...)
	return err
}

// get reads one row, reporting ErrNotFound when there is none.
func get[T any](row Scanner, scan func(Scanner) (T, error)) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return v, storage.ErrNotFound
	}
	return v, err
}

// update is the read-modify-write of every Update method: it returns the record fn made, as
// stored. The error of fn comes back unwrapped as fnErr, as the interface promises, and
// nothing is written. also, when not nil, queues more writes in the same transaction.
func update[T any](ctx context.Context, db DB, lock, write string, key []any,
	scan func(Scanner) (T, error), values func(T) ([]any, error), fn func(T) (T, error), also func(Tx) error,
) (out T, fnErr error, err error) {
	err = db.Tx(ctx, func(c Tx) error {
		cur, err := get(c.QueryRow(ctx, lock, key...), scan)
		if err != nil {
			return err
		}
		next, err := fn(cur)
		if err != nil {
			fnErr = err
			return err
		}
		vals, err := values(next)
		if err != nil {
			return err
		}
		if !slices.Equal(vals[:len(key)], key) {
			return errKeyChanged
		}
		c.Later(write, vals...)
		if out, err = scan(valuesRow(vals)); err != nil || also == nil {
			return err
		}
		return also(c)
	})
	if fnErr != nil {
		return out, fnErr, nil
	}
	return out, nil, err
}

func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	vals, err := SessionValues(sess)
	if err := create(ctx, s.db, s.q.insertSession, vals, err); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, idHash string) (storage.Session, error) {
	sess, err := get(s.db.QueryRow(ctx, s.q.selectSession, idHash), ScanSession)
	if err != nil {
		return storage.Session{}, fmt.Errorf("get session: %w", err)
	}
	return sess, nil
}

func (s *Store) UpdateSession(ctx context.Context, idHash string, fn func(storage.Session) (storage.Session, error)) (storage.Session, error) {
	out, fnErr, err := update(ctx, s.db, s.q.lockSession, s.q.updateSession, []any{idHash}, ScanSession, SessionValues, fn, nil)
	if fnErr != nil {
		return storage.Session{}, fnErr
	}
	if err != nil {
		return storage.Session{}, fmt.Errorf("update session: %w", err)
	}
	return out, nil
}

func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	n, err := s.db.Exec(ctx, s.q.deleteSession, idHash)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *Store) ListSessionsBySubject(ctx context.Context, connection, subject string) ([]storage.Session, error) {
	out, err := list(ctx, s.db, s.q.sessionsBySubject, ScanSession, connection, subject)
	if err != nil {
		return nil, fmt.Errorf("list sessions by subject: %w", err)
	}
	return out, nil
}

func (s *Store) ListExpiredSessions(ctx context.Context, now time.Time, limit int) ([]storage.Session, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("list expired sessions: limit %d is not positive", limit)
	}
	out, err := list(ctx, s.db, s.q.expiredSessions, ScanSession, Nanos(now), limit)
	if err != nil {
		return nil, fmt.Errorf("list expired sessions: %w", err)
	}
	return out, nil
}

func list[T any](ctx context.Context, db DB, query string, scan func(Scanner) (T, error), args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *Store) RedeemCode(ctx context.Context, code storage.CodeRedemption, issue func(storage.Session) (storage.Issued, error)) error {
	var fnErr error
	err := s.db.Tx(ctx, func(c Tx) error {
		// The session's row is held until commit, so a RevokeSession either ends before this
		// looks (and the code is refused) or waits for this commit (and then deletes the
		// tokens stored here).
		sess, err := get(c.QueryRow(ctx, s.q.shareSession, code.SessionIDHash), ScanSession)
		if errors.Is(err, storage.ErrNotFound) {
			return storage.ErrSessionEnded
		}
		if err != nil {
			return err
		}
		issued, err := issue(sess)
		if err != nil {
			fnErr = err
			return err
		}
		var family string
		if issued.RefreshFamily != nil {
			family = issued.RefreshFamily.ID
		}
		// A code redeemed before takes the key, and its plain INSERT fails the transaction.
		c.Later(s.q.insertRedemption, code.CodeHash, issued.AccessToken.TokenHash, family, nanos(code.ExpiresAt))
		return storeIssued(c, s.q, issued)
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("redeem code: %w", err)
	}
	return nil
}

func (s *Store) CreateAccessToken(ctx context.Context, t storage.AccessToken) error {
	vals, err := AccessTokenValues(t)
	if err := create(ctx, s.db, s.q.insertToken, vals, err); err != nil {
		return fmt.Errorf("create access token: %w", err)
	}
	return nil
}

func (s *Store) GetAccessToken(ctx context.Context, tokenHash string) (storage.AccessToken, error) {
	t, err := get(s.db.QueryRow(ctx, s.q.selectToken, tokenHash), ScanAccessToken)
	if err != nil {
		return storage.AccessToken{}, fmt.Errorf("get access token: %w", err)
	}
	return t, nil
}

func (s *Store) DeleteAccessToken(ctx context.Context, tokenHash string) error {
	n, err := s.db.Exec(ctx, s.q.deleteToken, tokenHash)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete access token: %w", err)
	}
	return nil
}

func (s *Store) CreateRefreshFamily(ctx context.Context, f storage.RefreshFamily) error {
	vals, err := RefreshFamilyValues(f)
	if err := create(ctx, s.db, s.q.insertFamily, vals, err); err != nil {
		return fmt.Errorf("create refresh family: %w", err)
	}
	return nil
}

func (s *Store) GetRefreshFamily(ctx context.Context, id string) (storage.RefreshFamily, error) {
	f, err := get(s.db.QueryRow(ctx, s.q.selectFamily, id), ScanRefreshFamily)
	if err != nil {
		return storage.RefreshFamily{}, fmt.Errorf("get refresh family: %w", err)
	}
	return f, nil
}

func (s *Store) GetRefreshFamilyByToken(ctx context.Context, tokenHash string) (storage.RefreshFamily, error) {
	// Families that were never rotated have an empty PreviousHash, which must match nothing.
	if tokenHash == "" {
		return storage.RefreshFamily{}, fmt.Errorf("get refresh family by token: %w", storage.ErrNotFound)
	}
	f, err := get(s.db.QueryRow(ctx, s.q.selectFamilyByHash, tokenHash), ScanRefreshFamily)
	if err != nil {
		return storage.RefreshFamily{}, fmt.Errorf("get refresh family by token: %w", err)
	}
	return f, nil
}

func (s *Store) RotateRefreshFamily(ctx context.Context, id string, rotate func(storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error)) (storage.RefreshFamily, error) {
	var tok storage.AccessToken
	fn := func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		var err error
		f, tok, err = rotate(f)
		return f, err
	}
	store := func(c Tx) error { return storeIssued(c, s.q, storage.Issued{AccessToken: tok}) }
	out, fnErr, err := update(ctx, s.db, s.q.lockFamily, s.q.updateFamily, []any{id}, ScanRefreshFamily, RefreshFamilyValues, fn, store)
	if fnErr != nil {
		return storage.RefreshFamily{}, fnErr
	}
	if err != nil {
		return storage.RefreshFamily{}, fmt.Errorf("rotate refresh family: %w", err)
	}
	return out, nil
}

// storeIssued queues the inserts of the tokens a redemption or rotation issued.
func storeIssued(c Tx, q queries, issued storage.Issued) error {
	vals, err := AccessTokenValues(issued.AccessToken)
	if err != nil {
		return fmt.Errorf("store access token: %w", err)
	}
	c.Later(q.insertToken, vals...)
	if issued.RefreshFamily == nil {
		return nil
	}
	if vals, err = RefreshFamilyValues(*issued.RefreshFamily); err != nil {
		return fmt.Errorf("store refresh family: %w", err)
	}
	c.Later(q.insertFamily, vals...)
	return nil
}

// RevokeSession also revokes what was issued under idHash when the session itself is gone
// (ended meanwhile by another replica or the sweeper, say) and then reports ErrNotFound: a
// logout must not leave refresh tokens of the session alive.
func (s *Store) RevokeSession(ctx context.Context, idHash string) error {
	// Tokens issued outside any session have an empty session hash: never touch them.
	if idHash == "" {
		return fmt.Errorf("revoke session: %w", storage.ErrNotFound)
	}
	var found bool
	err := s.db.Tx(ctx, func(c Tx) error {
		var err error
		found, err = s.revokeSession(ctx, c, idHash)
		return err
	})
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// RevokeSessions is RevokeSession for many sessions in one transaction; it returns the
// hashes of the sessions it deleted, in the order given. It deletes in the order of the
// hashes, so two transactions ending overlapping batches wait for each other rather than
// deadlock.
func (s *Store) RevokeSessions(ctx context.Context, idHashes []string) ([]string, error) {
	sorted := slices.Clone(idHashes)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	found := make(map[string]bool, len(sorted))
	err := s.db.Tx(ctx, func(c Tx) error {
		clear(found)
		for _, idHash := range sorted {
			if idHash == "" {
				continue
			}
			ok, err := s.revokeSession(ctx, c, idHash)
			if err != nil {
				return err
			}
			found[idHash] = ok
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", err)
	}
	var ended []string
	for _, idHash := range idHashes {
		if found[idHash] {
			ended = append(ended, idHash)
			found[idHash] = false
		}
	}
	return ended, nil
}

// revokeSession deletes a session and queues the revocation of what was issued in it; found
// reports whether the session's row was there. What is queued affects any number of rows.
func (s *Store) revokeSession(ctx context.Context, c Tx, idHash string) (found bool, err error) {
	n, err := c.Exec(ctx, s.q.deleteSession, idHash)
	if err != nil {
		return false, err
	}
	c.Later(s.q.revokeFamiliesOfSession, idHash)
	c.Later(s.q.deleteTokensOfSession, idHash)
	return n > 0, nil
}

// RevokeRefreshFamily deletes the access tokens issued from id even when the family itself
// is gone, and then reports ErrNotFound.
func (s *Store) RevokeRefreshFamily(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("revoke refresh family: %w", storage.ErrNotFound)
	}
	var found bool
	err := s.db.Tx(ctx, func(c Tx) error {
		n, err := c.Exec(ctx, s.q.revokeFamily, id)
		if err != nil {
			return err
		}
		found = n > 0
		_, err = c.Exec(ctx, s.q.deleteTokensOfFamily, id)
		return err
	})
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke refresh family: %w", err)
	}
	return nil
}

func (s *Store) RevokeByCode(ctx context.Context, codeHash string) error {
	err := s.db.Tx(ctx, func(c Tx) error {
		var token, family string
		if err := c.QueryRow(ctx, s.q.selectRedemption, codeHash).Scan(&token, &family); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return storage.ErrNotFound
			}
			return err
		}
		if _, err := c.Exec(ctx, s.q.deleteToken, token); err != nil {
			return err
		}
		if family == "" {
			return nil
		}
		if _, err := c.Exec(ctx, s.q.revokeFamily, family); err != nil {
			return err
		}
		_, err := c.Exec(ctx, s.q.deleteTokensOfFamily, family)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke by code: %w", err)
	}
	return nil
}

func (s *Store) CreateDeviceCode(ctx context.Context, d storage.DeviceCode) error {
	vals, err := DeviceCodeValues(d)
	if err := create(ctx, s.db, s.q.insertDeviceCode, vals, err); err != nil {
		return fmt.Errorf("create device code: %w", err)
	}
	return nil
}

func (s *Store) GetDeviceCodeByUserCode(ctx context.Context, userCodeHash string) (storage.DeviceCode, error) {
	d, err := get(s.db.QueryRow(ctx, s.q.deviceCodeByUserCode, userCodeHash), ScanDeviceCode)
	if err != nil {
		return storage.DeviceCode{}, fmt.Errorf("get device code by user code: %w", err)
	}
	return d, nil
}

func (s *Store) UpdateDeviceCode(ctx context.Context, deviceCodeHash string, fn func(storage.DeviceCode) (storage.DeviceCode, error)) (storage.DeviceCode, error) {
	out, fnErr, err := update(ctx, s.db, s.q.lockDeviceCode, s.q.updateDeviceCode, []any{deviceCodeHash}, ScanDeviceCode, DeviceCodeValues, fn, nil)
	if fnErr != nil {
		return storage.DeviceCode{}, fnErr
	}
	if err != nil {
		return storage.DeviceCode{}, fmt.Errorf("update device code: %w", err)
	}
	return out, nil
}

func (s *Store) CreateUser(ctx context.Context, u storage.User) error {
	vals, err := UserValues(u)
	if err := create(ctx, s.db, s.q.insertUser, vals, err); err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

func (s *Store) GetUser(ctx context.Context, connection, username string) (storage.User, error) {
	u, err := get(s.db.QueryRow(ctx, s.q.selectUser, connection, username), ScanUser)
	if err != nil {
		return storage.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

func (s *Store) SetUserPassword(ctx context.Context, connection, username, passwordHash string) error {
	n, err := s.db.Exec(ctx, s.q.setUserPassword, passwordHash, connection, username)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set user password: %w", err)
	}
	return nil
}

func (s *Store) UsersByEmail(ctx context.Context, connection, email string, limit int) ([]storage.User, error) {
	out, err := list(ctx, s.db, s.q.usersByEmail, ScanUser, connection, email, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("list users by email: %w", err)
	}
	return out, nil
}

func (s *Store) VerifyUserEmail(ctx context.Context, connection, username, email string) (bool, error) {
	verified := false
	err := s.db.Tx(ctx, func(c Tx) error {
		u, err := get(c.QueryRow(ctx, s.q.lockUser, connection, username), ScanUser)
		if errors.Is(err, storage.ErrNotFound) || err == nil && u.Claims.Email != email {
			return nil
		}
		if err != nil {
			return err
		}
		u.Claims.EmailVerified = true
		claims, err := json.Marshal(u.Claims)
		if err != nil {
			return fmt.Errorf("encode claims: %w", err)
		}
		verified = true
		_, err = c.Exec(ctx, s.q.setUserClaims, string(claims), connection, username)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("verify user email: %w", err)
	}
	return verified, nil
}

func (s *Store) CreateEmailToken(ctx context.Context, t storage.EmailToken) error {
	if err := create(ctx, s.db, s.q.insertEmailToken, EmailTokenValues(t), nil); err != nil {
		return fmt.Errorf("create email token: %w", err)
	}
	return nil
}

func (s *Store) GetEmailToken(ctx context.Context, hash, purpose string, now time.Time) (storage.EmailToken, error) {
	t, err := get(s.db.QueryRow(ctx, s.q.selectEmailToken, hash), ScanEmailToken)
	if err == nil && (t.Purpose != purpose || !now.Before(t.ExpiresAt)) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.EmailToken{}, fmt.Errorf("get email token: %w", err)
	}
	return t, nil
}

func (s *Store) UseEmailToken(ctx context.Context, hash, purpose string, now time.Time) (storage.EmailToken, error) {
	var t storage.EmailToken
	err := s.db.Tx(ctx, func(c Tx) error {
		var err error
		t, err = get(c.QueryRow(ctx, s.q.selectEmailToken, hash), ScanEmailToken)
		if err == nil && (t.Purpose != purpose || !now.Before(t.ExpiresAt)) {
			err = storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		// Of two replicas spending one token at once, only the first deletes its row.
		n, err := c.Exec(ctx, s.q.deleteEmailTokensOfUser, t.Connection, t.Username, t.Purpose)
		if err == nil && n == 0 {
			err = storage.ErrNotFound
		}
		return err
	})
	if err != nil {
		return storage.EmailToken{}, fmt.Errorf("use email token: %w", err)
	}
	return t, nil
}

func (s *Store) CreateFactor(ctx context.Context, f storage.Factor) error {
	if err := create(ctx, s.db, s.q.insertFactor, FactorValues(f), nil); err != nil {
		return fmt.Errorf("create factor: %w", err)
	}
	return nil
}

func (s *Store) ListFactors(ctx context.Context, connection, subject string) ([]storage.Factor, error) {
	out, err := list(ctx, s.db, s.q.factorsOfUser, ScanFactor, connection, subject)
	if err != nil {
		return nil, fmt.Errorf("list factors: %w", err)
	}
	return out, nil
}

func (s *Store) ListFactorsByUserHandle(ctx context.Context, userHandle []byte) ([]storage.Factor, error) {
	if len(userHandle) == 0 {
		return nil, nil
	}
	out, err := list(ctx, s.db, s.q.factorsByUserHandle, ScanFactor, userHandle)
	if err != nil {
		return nil, fmt.Errorf("list factors by user handle: %w", err)
	}
	return out, nil
}

func (s *Store) DeleteFactor(ctx context.Context, connection, subject, id string) error {
	n, err := s.db.Exec(ctx, s.q.deleteFactor, connection, subject, id)
	if err == nil && n == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete factor: %w", err)
	}
	return nil
}

func (s *Store) UseFactorStep(ctx context.Context, id string, step int64, now time.Time) (bool, error) {
	n, err := s.db.Exec(ctx, s.q.useFactorStep, step, Nanos(now), id)
	if err != nil {
		return false, fmt.Errorf("use factor step: %w", err)
	}
	return n == 1, nil
}

func (s *Store) SetRecoveryCodes(ctx context.Context, connection, subject string, hashes []string, now time.Time) error {
	err := s.db.Tx(ctx, func(c Tx) error {
		if _, err := c.Exec(ctx, s.q.deleteRecoveryCodes, connection, subject); err != nil {
			return err
		}
		for _, h := range hashes {
			c.Later(s.q.insertRecoveryCode, connection, subject, h, Nanos(now))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set recovery codes: %w", err)
	}
	return nil
}

func (s *Store) UseRecoveryCode(ctx context.Context, connection, subject, hash string) (bool, error) {
	n, err := s.db.Exec(ctx, s.q.useRecoveryCode, connection, subject, hash)
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	return n == 1, nil
}

func (s *Store) CountRecoveryCodes(ctx context.Context, connection, subject string) (int, error) {
	var n int64
	if err := s.db.QueryRow(ctx, s.q.countCodes, connection, subject).Scan(&n); err != nil {
		return 0, fmt.Errorf("count recovery codes: %w", err)
	}
	return int(n), nil
}

// StartEnrolmentGrace inserts the start unless a row is there (the insert of a concurrent
// first ask loses, and both read the winner's start).
func (s *Store) StartEnrolmentGrace(ctx context.Context, connection, subject string, now time.Time) (time.Time, error) {
	if _, err := s.db.Exec(ctx, s.q.insertGrace, connection, subject, Nanos(now)); err != nil {
		return time.Time{}, fmt.Errorf("start enrolment grace: %w", err)
	}
	var started int64
	if err := s.db.QueryRow(ctx, s.q.selectGrace, connection, subject).Scan(&started); err != nil {
		return time.Time{}, fmt.Errorf("read enrolment grace: %w", err)
	}
	return time.Unix(0, started).UTC(), nil
}

func (s *Store) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (storage.Throttle, error) {
	var t storage.Throttle
	err := s.db.Tx(ctx, func(c Tx) error {
		var err error
		t, err = ScanThrottle(c.QueryRow(ctx, s.q.recordFailure, key, Nanos(now), Nanos(now.Add(-window))))
		return err
	})
	if err != nil {
		return storage.Throttle{}, fmt.Errorf("record login failure: %w", err)
	}
	return t, nil
}

func (s *Store) GetThrottle(ctx context.Context, key string) (storage.Throttle, error) {
	t, err := get(s.db.QueryRow(ctx, s.q.selectThrottle, key), ScanThrottle)
	if err != nil {
		return storage.Throttle{}, fmt.Errorf("get throttle: %w", err)
	}
	return t, nil
}

// ResetThrottle succeeds for a key without failures: a successful login resets its key
// whether or not it failed before.
func (s *Store) ResetThrottle(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, s.q.deleteThrottle, key); err != nil {
		return fmt.Errorf("reset throttle: %w", err)
	}
	return nil
}

func (s *Store) UseOnce(ctx context.Context, key string, now, expires time.Time) (bool, error) {
	n, err := s.db.Exec(ctx, s.q.useOnce, key, Nanos(expires), Nanos(now))
	if err != nil {
		return false, fmt.Errorf("use once: %w", err)
	}
	return n == 1, nil
}

// GarbageCollect deletes throttle rows whose last failure is storage.ThrottleRetention old,
// code redemptions storage.CodeRedemptionRetention after their code expired and device codes
// storage.DeviceCodeRetention after they expired.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, c := range s.q.gc {
		for {
			n, err := s.db.Exec(ctx, c.query, Nanos(now.Add(-c.age)))
			if err != nil {
				return total, fmt.Errorf("garbage collect: %w", err)
			}
			total += n
			if n < gcBatch {
				break
			}
		}
	}
	return total, nil
}

// gcBatch is how many rows one statement of GarbageCollect deletes: on SQLite, about a
// quarter of a second of the writer on a busy 2-core machine (docs/benchmarks.md), where one
// statement for a backlog of 600,000 rows held it for a minute.
const gcBatch = 1000
