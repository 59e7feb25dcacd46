package sqlstore

// Rows: how records map to SQL rows. Both schemas share one encoding, so both backends store
// every field the same way and a field added to a record is added in one place:
//   - times are UTC Unix nanoseconds in a 64-bit integer (exact, and comparable in SQL); the
//     zero time is NULL, so it reads back as the zero time rather than as 1970 or year 1;
//   - string lists and claims are JSON text; an empty list is stored as [] and every empty
//     list or byte slice reads back as nil, so callers never see both nil and empty;
//   - Session.Clients is stored sorted and without duplicates, as its contract says.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/storage"
)

// Scanner is satisfied by *sql.Row, *sql.Rows, pgx.Row and pgx.Rows.
type Scanner interface {
	Scan(dest ...any) error
}

// valuesRow reads a record's encoded values back as a row of them would read, so that a
// write can return the record as a later Select would give it without asking the database.
type valuesRow []any

func (v valuesRow) Scan(dest ...any) error {
	if len(dest) != len(v) {
		return fmt.Errorf("scan %d values into %d destinations", len(v), len(dest))
	}
	for i, d := range dest {
		ok := true
		switch d := d.(type) {
		case *string:
			*d, ok = v[i].(string)
		case *bool:
			*d, ok = v[i].(bool)
		case *[]byte:
			switch x := v[i].(type) {
			case string:
				*d = []byte(x)
			case []byte:
				*d = x
			default:
				*d, ok = nil, x == nil
			}
		case *sql.NullInt64:
			switch x := v[i].(type) {
			case int64:
				*d = sql.NullInt64{Int64: x, Valid: true}
			default:
				*d, ok = sql.NullInt64{}, x == nil
			}
		default:
			ok = false
		}
		if !ok {
			return fmt.Errorf("scan value %d (%T) into %T", i, v[i], d)
		}
	}
	return nil
}

// Placeholder renders the i-th (1-based) bind parameter of a dialect.
type Placeholder func(i int) string

// Table describes one record's table: Columns in the order of the record's Values and Scan
// functions, the first Key of them forming the primary key.
type Table struct {
	Name    string
	Columns []string
	Key     int
}

// Insert inserts one row; a taken key fails it (see Tx.Later).
func (t Table) Insert(p Placeholder) string {
	ph := make([]string, len(t.Columns))
	for i := range ph {
		ph[i] = p(i + 1)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)",
		t.Name, strings.Join(t.Columns, ", "), strings.Join(ph, ", "))
}

// Select reads rows by key; its parameters are the key columns.
func (t Table) Select(p Placeholder) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s", t.List(), t.Name, t.keyMatch(p))
}

// Update rewrites every non-key column of one row; its parameters are all columns, in order.
func (t Table) Update(p Placeholder) string {
	set := make([]string, 0, len(t.Columns)-t.Key)
	for i := t.Key; i < len(t.Columns); i++ {
		set = append(set, t.Columns[i]+" = "+p(i+1))
	}
	return fmt.Sprintf("UPDATE %s SET %s WHERE %s", t.Name, strings.Join(set, ", "), t.keyMatch(p))
}

// List is the column list for a SELECT.
func (t Table) List() string { return strings.Join(t.Columns, ", ") }

func (t Table) keyMatch(p Placeholder) string {
	m := make([]string, t.Key)
	for i := range m {
		m[i] = t.Columns[i] + " = " + p(i+1)
	}
	return strings.Join(m, " AND ")
}

var (
	Sessions = Table{Name: "sessions", Key: 1, Columns: []string{
		"id_hash", "sid", "connection", "subject", "claims", "auth_time", "amr", "reusable",
		"created_at", "last_activity", "expires_at", "clients", "upstream", "mfa_at", "user_agent", "client_address",
	}}
	AccessTokens = Table{Name: "access_tokens", Key: 1, Columns: []string{
		"token_hash", "client_id", "scopes", "claims", "session_id_hash", "refresh_family_id",
		"code_hash", "issued_at", "expires_at", "audience",
	}}
	RefreshFamilies = Table{Name: "refresh_families", Key: 1, Columns: []string{
		"id", "client_id", "scopes", "claims", "session_id_hash", "sid", "connection",
		"auth_time", "amr", "current_hash", "previous_hash", "rotated_at", "created_at",
		"expires_at", "revoked", "audience",
	}}
	Users = Table{Name: "users", Key: 2, Columns: []string{
		"connection", "username", "password_hash", "claims", "created_at",
	}}
	Factors = Table{Name: "factors", Key: 1, Columns: []string{
		"id", "connection", "subject", "factor_type", "name", "secret", "last_step",
		"created_at", "last_used_at", "credential_id", "user_handle", "transports", "credential_flags",
	}}
	EmailTokens = Table{Name: "email_tokens", Key: 1, Columns: []string{
		"token_hash", "purpose", "connection", "username", "email", "expires_at",
	}}
	DeviceCodes = Table{Name: "device_codes", Key: 1, Columns: []string{
		"device_code_hash", "user_code_hash", "client_id", "scopes", "status", "session_id_hash",
		"poll_interval", "last_polled_at", "created_at", "expires_at", "audience",
	}}
	Throttles = Table{Name: "throttles", Key: 1, Columns: []string{
		"throttle_key", "failures", "last_failure",
	}}
)

// SessionValues returns the column values of s, normalising Clients.
func SessionValues(s storage.Session) ([]any, error) {
	claims, err := json.Marshal(s.Claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	clients := slices.Clone(s.Clients)
	slices.Sort(clients)
	clients = slices.Compact(clients)
	return []any{
		s.IDHash, s.SID, s.Connection, s.Claims.Subject, string(claims), nanos(s.AuthTime),
		jsonList(s.AMR), s.Reusable, nanos(s.CreatedAt), nanos(s.LastActivity), nanos(s.ExpiresAt),
		jsonList(clients), bytes(s.Upstream), nanos(s.MFAAt), s.UserAgent, s.ClientAddress,
	}, nil
}

// ScanSession reads a row selected with Sessions.List().
func ScanSession(row Scanner) (storage.Session, error) {
	var (
		s                                    storage.Session
		subject                              string
		claims, amr, clients                 []byte
		authTime, created, activity, expires sql.NullInt64
		mfaAt                                sql.NullInt64
	)
	if err := row.Scan(&s.IDHash, &s.SID, &s.Connection, &subject, &claims, &authTime, &amr,
		&s.Reusable, &created, &activity, &expires, &clients, &s.Upstream, &mfaAt, &s.UserAgent, &s.ClientAddress); err != nil {
		return storage.Session{}, err
	}
	s.AuthTime, s.CreatedAt, s.LastActivity, s.ExpiresAt, s.MFAAt =
		fromNanos(authTime), fromNanos(created), fromNanos(activity), fromNanos(expires), fromNanos(mfaAt)
	s.Upstream = bytes(s.Upstream)
	return s, errors.Join(decodeClaims(&s.Claims, claims), decodeList(&s.AMR, amr),
		decodeList(&s.Clients, clients))
}

// AccessTokenValues returns the column values of t.
func AccessTokenValues(t storage.AccessToken) ([]any, error) {
	claims, err := json.Marshal(t.Claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return []any{
		t.TokenHash, t.ClientID, jsonList(t.Scopes), string(claims), t.SessionIDHash,
		t.RefreshFamilyID, "", nanos(t.IssuedAt), nanos(t.ExpiresAt), t.Audience,
	}, nil
}

// ScanAccessToken reads a row selected with AccessTokens.List().
func ScanAccessToken(row Scanner) (storage.AccessToken, error) {
	var (
		t               storage.AccessToken
		scopes, claims  []byte
		issued, expires sql.NullInt64
		// legacyCodeHash is written empty and ignored: only replicas of the version before
		// ADR 0012 set it, and a later migration drops it.
		legacyCodeHash string
	)
	if err := row.Scan(&t.TokenHash, &t.ClientID, &scopes, &claims, &t.SessionIDHash,
		&t.RefreshFamilyID, &legacyCodeHash, &issued, &expires, &t.Audience); err != nil {
		return storage.AccessToken{}, err
	}
	t.IssuedAt, t.ExpiresAt = fromNanos(issued), fromNanos(expires)
	return t, errors.Join(decodeClaims(&t.Claims, claims), decodeList(&t.Scopes, scopes))
}

// RefreshFamilyValues returns the column values of f.
func RefreshFamilyValues(f storage.RefreshFamily) ([]any, error) {
	claims, err := json.Marshal(f.Claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return []any{
		f.ID, f.ClientID, jsonList(f.Scopes), string(claims), f.SessionIDHash, f.SID, f.Connection,
		nanos(f.AuthTime), jsonList(f.AMR), f.CurrentHash, f.PreviousHash, nanos(f.RotatedAt),
		nanos(f.CreatedAt), nanos(f.ExpiresAt), f.Revoked, f.Audience,
	}, nil
}

// ScanRefreshFamily reads a row selected with RefreshFamilies.List().
func ScanRefreshFamily(row Scanner) (storage.RefreshFamily, error) {
	var (
		f                                   storage.RefreshFamily
		scopes, claims, amr                 []byte
		authTime, rotated, created, expires sql.NullInt64
	)
	if err := row.Scan(&f.ID, &f.ClientID, &scopes, &claims, &f.SessionIDHash, &f.SID,
		&f.Connection, &authTime, &amr, &f.CurrentHash, &f.PreviousHash, &rotated, &created,
		&expires, &f.Revoked, &f.Audience); err != nil {
		return storage.RefreshFamily{}, err
	}
	f.AuthTime, f.RotatedAt, f.CreatedAt, f.ExpiresAt =
		fromNanos(authTime), fromNanos(rotated), fromNanos(created), fromNanos(expires)
	return f, errors.Join(decodeClaims(&f.Claims, claims), decodeList(&f.Scopes, scopes),
		decodeList(&f.AMR, amr))
}

// UserValues returns the column values of u.
func UserValues(u storage.User) ([]any, error) {
	claims, err := json.Marshal(u.Claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return []any{u.Connection, u.Username, u.PasswordHash, string(claims), nanos(u.CreatedAt)}, nil
}

// ScanUser reads a row selected with Users.List().
func ScanUser(row Scanner) (storage.User, error) {
	var (
		u       storage.User
		claims  []byte
		created sql.NullInt64
	)
	if err := row.Scan(&u.Connection, &u.Username, &u.PasswordHash, &claims, &created); err != nil {
		return storage.User{}, err
	}
	u.CreatedAt = fromNanos(created)
	return u, decodeClaims(&u.Claims, claims)
}

// EmailTokenValues returns the column values of t.
func EmailTokenValues(t storage.EmailToken) []any {
	return []any{t.Hash, t.Purpose, t.Connection, t.Username, t.Email, nanos(t.ExpiresAt)}
}

// ScanEmailToken reads a row selected with EmailTokens.List().
func ScanEmailToken(row Scanner) (storage.EmailToken, error) {
	var (
		t       storage.EmailToken
		expires sql.NullInt64
	)
	if err := row.Scan(&t.Hash, &t.Purpose, &t.Connection, &t.Username, &t.Email, &expires); err != nil {
		return storage.EmailToken{}, err
	}
	t.ExpiresAt = fromNanos(expires)
	return t, nil
}

// FactorValues returns the column values of f.
func FactorValues(f storage.Factor) []any {
	return []any{f.ID, f.Connection, f.Subject, f.Type, f.Name, f.Secret, f.LastStep,
		nanos(f.CreatedAt), nanos(f.LastUsedAt), bytes(f.CredentialID), bytes(f.UserHandle), jsonList(f.Transports),
		int16(f.CredentialFlags)}
}

// ScanFactor reads a row selected with Factors.List().
func ScanFactor(row Scanner) (storage.Factor, error) {
	var (
		f             storage.Factor
		created, used sql.NullInt64
		transports    []byte
		flags         int16
	)
	if err := row.Scan(&f.ID, &f.Connection, &f.Subject, &f.Type, &f.Name, &f.Secret,
		&f.LastStep, &created, &used, &f.CredentialID, &f.UserHandle, &transports, &flags); err != nil {
		return storage.Factor{}, err
	}
	f.CreatedAt, f.LastUsedAt, f.CredentialFlags = fromNanos(created), fromNanos(used), uint8(flags) //nolint:gosec // stored from a uint8
	f.CredentialID, f.UserHandle = bytes(f.CredentialID), bytes(f.UserHandle)
	return f, decodeList(&f.Transports, transports)
}

// DeviceCodeValues returns the column values of d; the poll interval is in nanoseconds.
func DeviceCodeValues(d storage.DeviceCode) ([]any, error) {
	return []any{
		d.DeviceCodeHash, d.UserCodeHash, d.ClientID, jsonList(d.Scopes), string(d.Status), d.SessionIDHash,
		int64(d.Interval), nanos(d.LastPolledAt), nanos(d.CreatedAt), nanos(d.ExpiresAt), d.Audience,
	}, nil
}

// ScanDeviceCode reads a row selected with DeviceCodes.List().
func ScanDeviceCode(row Scanner) (storage.DeviceCode, error) {
	var (
		d                                 storage.DeviceCode
		status                            string
		scopes                            []byte
		interval, polled, created, expiry sql.NullInt64
	)
	if err := row.Scan(&d.DeviceCodeHash, &d.UserCodeHash, &d.ClientID, &scopes, &status, &d.SessionIDHash,
		&interval, &polled, &created, &expiry, &d.Audience); err != nil {
		return storage.DeviceCode{}, err
	}
	d.Status, d.Interval = storage.DeviceCodeStatus(status), time.Duration(interval.Int64)
	d.LastPolledAt, d.CreatedAt, d.ExpiresAt = fromNanos(polled), fromNanos(created), fromNanos(expiry)
	return d, decodeList(&d.Scopes, scopes)
}

// ScanThrottle reads a row selected with Throttles.List().
func ScanThrottle(row Scanner) (storage.Throttle, error) {
	var (
		t    storage.Throttle
		last sql.NullInt64
	)
	if err := row.Scan(&t.Key, &t.Failures, &last); err != nil {
		return storage.Throttle{}, err
	}
	t.LastFailure = fromNanos(last)
	return t, nil
}

// Nanos is the stored form of a time, for query parameters compared with time columns.
func Nanos(t time.Time) int64 { return t.UnixNano() }

// nanos is the stored form of a time column value: NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func jsonList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s) // a []string always marshals
	return string(b)
}

func bytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func decodeClaims(dst *storage.Claims, src []byte) error {
	if err := json.Unmarshal(src, dst); err != nil {
		return fmt.Errorf("decode claims: %w", err)
	}
	if len(dst.Groups) == 0 {
		dst.Groups = nil
	}
	return nil
}

func decodeList(dst *[]string, src []byte) error {
	if err := json.Unmarshal(src, dst); err != nil {
		return fmt.Errorf("decode list: %w", err)
	}
	if len(*dst) == 0 {
		*dst = nil
	}
	return nil
}
