package postgres

// migrations are applied in order by sqlstore.Migrate; append, never edit. Columns follow
// the encoding of sqlstore: times are BIGINT Unix nanoseconds (NULL for the zero time), which
// keeps the nanoseconds that timestamptz would drop, so both backends round-trip a time
// exactly; lists and claims are JSONB.
var migrations = []string{
	`
CREATE TABLE sessions (
  id_hash       TEXT PRIMARY KEY,
  sid           TEXT NOT NULL,
  connection    TEXT NOT NULL,
  subject       TEXT NOT NULL,
  claims        JSONB NOT NULL,
  auth_time     BIGINT,
  amr           JSONB NOT NULL,
  reusable      BOOLEAN NOT NULL,
  created_at    BIGINT,
  last_activity BIGINT,
  expires_at    BIGINT,
  clients       JSONB NOT NULL,
  upstream      BYTEA
);
CREATE INDEX sessions_by_subject ON sessions (connection, subject);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE auth_codes (
  code_hash             TEXT PRIMARY KEY,
  client_id             TEXT NOT NULL,
  redirect_uri          TEXT NOT NULL,
  scopes                JSONB NOT NULL,
  nonce                 TEXT NOT NULL,
  code_challenge        TEXT NOT NULL,
  code_challenge_method TEXT NOT NULL,
  session_id_hash       TEXT NOT NULL,
  sid                   TEXT NOT NULL,
  connection            TEXT NOT NULL,
  claims                JSONB NOT NULL,
  auth_time             BIGINT,
  amr                   JSONB NOT NULL,
  expires_at            BIGINT,
  used                  BOOLEAN NOT NULL,
  refresh_family_id     TEXT NOT NULL
);
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);

CREATE TABLE access_tokens (
  token_hash        TEXT PRIMARY KEY,
  client_id         TEXT NOT NULL,
  scopes            JSONB NOT NULL,
  claims            JSONB NOT NULL,
  session_id_hash   TEXT NOT NULL,
  refresh_family_id TEXT NOT NULL,
  code_hash         TEXT NOT NULL,
  issued_at         BIGINT,
  expires_at        BIGINT
);
CREATE INDEX access_tokens_by_session ON access_tokens (session_id_hash);
CREATE INDEX access_tokens_by_family ON access_tokens (refresh_family_id);
CREATE INDEX access_tokens_by_code ON access_tokens (code_hash);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);

CREATE TABLE refresh_families (
  id              TEXT PRIMARY KEY,
  client_id       TEXT NOT NULL,
  scopes          JSONB NOT NULL,
  claims          JSONB NOT NULL,
  session_id_hash TEXT NOT NULL,
  sid             TEXT NOT NULL,
  connection      TEXT NOT NULL,
  auth_time       BIGINT,
  amr             JSONB NOT NULL,
  current_hash    TEXT NOT NULL,
  previous_hash   TEXT NOT NULL,
  rotated_at      BIGINT,
  created_at      BIGINT,
  expires_at      BIGINT,
  revoked         BOOLEAN NOT NULL
);
CREATE INDEX refresh_families_by_current ON refresh_families (current_hash);
CREATE INDEX refresh_families_by_previous ON refresh_families (previous_hash);
CREATE INDEX refresh_families_by_session ON refresh_families (session_id_hash);
CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_at);

CREATE TABLE users (
  connection    TEXT NOT NULL,
  username      TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  claims        JSONB NOT NULL,
  created_at    BIGINT,
  PRIMARY KEY (connection, username)
);

CREATE TABLE throttles (
  throttle_key TEXT PRIMARY KEY,
  failures     INTEGER NOT NULL,
  last_failure BIGINT
);
CREATE INDEX throttles_by_last_failure ON throttles (last_failure);
`,
	`
CREATE TABLE single_use (
  use_key    TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE INDEX single_use_by_expiry ON single_use (expires_at);
`,
	// Authorization codes are sealed and no longer stored (ADR 0012): only their redemption
	// is, and an access token no longer names its code. This migration drops nothing the
	// previous version needs: its replicas, still running during a rolling update, write
	// auth_codes and access_tokens.code_hash (only their lookup by code_hash, on a reused
	// code, loses its index). A later release drops both.
	`
DROP INDEX access_tokens_by_code;

CREATE TABLE code_redemptions (
  code_hash         TEXT PRIMARY KEY,
  access_token_hash TEXT NOT NULL,
  refresh_family_id TEXT NOT NULL,
  expires_at        BIGINT
);
CREATE INDEX code_redemptions_by_expiry ON code_redemptions (expires_at);
`,
	// Second factors (ADR 0016). Add-only: a replica of the previous version neither reads
	// nor writes these, and leaves mfa_at NULL (no second factor) in the sessions it writes.
	`
ALTER TABLE sessions ADD COLUMN mfa_at BIGINT;

CREATE TABLE factors (
  id           TEXT PRIMARY KEY,
  connection   TEXT NOT NULL,
  subject      TEXT NOT NULL,
  factor_type  TEXT NOT NULL,
  name         TEXT NOT NULL,
  secret       BYTEA NOT NULL,
  last_step    BIGINT NOT NULL,
  created_at   BIGINT,
  last_used_at BIGINT
);
CREATE INDEX factors_by_user ON factors (connection, subject);

CREATE TABLE recovery_codes (
  connection TEXT NOT NULL,
  subject    TEXT NOT NULL,
  code_hash  TEXT NOT NULL,
  created_at BIGINT,
  PRIMARY KEY (connection, subject, code_hash)
);
`,
	// Where a session was started, for the account page's list of sessions. Add-only: a
	// replica of the previous version leaves them empty.
	`
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN client_address TEXT NOT NULL DEFAULT '';
`,
	// Links sent by mail (ADR 0020) and the lookup of signed-up users by their email claim.
	// Add-only: a replica of the previous version neither reads nor writes these, and the
	// index covers the users it creates as well.
	`
CREATE INDEX users_by_email ON users (connection, (claims->>'email'));

CREATE TABLE email_tokens (
  token_hash TEXT PRIMARY KEY,
  purpose    TEXT NOT NULL,
  connection TEXT NOT NULL,
  username   TEXT NOT NULL,
  email      TEXT NOT NULL,
  expires_at BIGINT
);
CREATE INDEX email_tokens_by_user ON email_tokens (connection, username, purpose);
CREATE INDEX email_tokens_by_expiry ON email_tokens (expires_at);
`,
	// Access tokens for an API (SSOAPI) record its identifier, their audience; refresh
	// families record it too, so that every refresh is for the same API. Rows written by
	// replicas of the previous version, during a rolling update, get the empty audience:
	// they were issued for no API.
	`
ALTER TABLE access_tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN audience TEXT NOT NULL DEFAULT '';
`,
	// WebAuthn credentials as factors (passkeys, ADR 0019). Add-only: a replica of the
	// previous version lists these rows among a user's factors but skips them, as it skips
	// every factor type it does not know.
	`
ALTER TABLE factors ADD COLUMN credential_id BYTEA;
ALTER TABLE factors ADD COLUMN user_handle BYTEA;
ALTER TABLE factors ADD COLUMN transports TEXT NOT NULL DEFAULT '[]';
ALTER TABLE factors ADD COLUMN credential_flags SMALLINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX factors_by_credential ON factors (credential_id);
CREATE INDEX factors_by_user_handle ON factors (user_handle);
`,
	// Device codes of the device authorization grant (RFC 8628, ADR 0017).
	`
CREATE TABLE device_codes (
  device_code_hash TEXT PRIMARY KEY,
  user_code_hash   TEXT NOT NULL UNIQUE,
  client_id        TEXT NOT NULL,
  scopes           JSONB NOT NULL,
  status           TEXT NOT NULL,
  session_id_hash  TEXT NOT NULL,
  poll_interval    BIGINT NOT NULL,
  last_polled_at   BIGINT,
  created_at       BIGINT,
  expires_at       BIGINT
);
CREATE INDEX device_codes_by_expiry ON device_codes (expires_at);
`,
	// Device codes for an API (SSOAPI): the identifier the device asked for, so that the
	// approved code's tokens are for it. Rows of the previous version get the empty audience:
	// they were for no API.
	`
ALTER TABLE device_codes ADD COLUMN audience TEXT NOT NULL DEFAULT '';
`,
	// When each user was first asked to enrol a second factor: the start of the user's
	// enrolment grace under mfa.policy Required (ADR 0024). Add-only: a replica of the previous
	// version never reads it.
	`
CREATE TABLE enrolment_grace (
  connection TEXT NOT NULL,
  subject    TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  PRIMARY KEY (connection, subject)
);
`,
}
