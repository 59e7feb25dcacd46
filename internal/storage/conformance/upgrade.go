package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/storage"
)

// previousVersionWrites are the writes of the version before sealed codes (ADR 0012): a
// code stored in auth_codes, its redemption, an access token naming its code, and the
// revocation by code. Values are literal, so both dialects run them; %[1]s makes the keys
// of one round unique, and %[2]d is a far expiry in Unix nanoseconds.
var previousVersionWrites = []string{
	`INSERT INTO auth_codes (code_hash, client_id, redirect_uri, scopes, nonce, code_challenge,
  code_challenge_method, session_id_hash, sid, connection, claims, auth_time, amr, expires_at,
  used, refresh_family_id)
VALUES ('code-%[1]s', 'app1', '', '["openid"]', '', '', '', 'session-%[1]s', 'sid', 'corp', '{}', NULL, '[]', %[2]d, FALSE, '')`,
	`UPDATE auth_codes SET used = TRUE, refresh_family_id = '' WHERE code_hash = 'code-%[1]s'`,
	`INSERT INTO access_tokens (token_hash, client_id, scopes, claims, session_id_hash,
  refresh_family_id, code_hash, issued_at, expires_at)
VALUES ('token-%[1]s', 'app1', '["openid"]', '{"sub":"alice"}', 'session-%[1]s', '', 'code-%[1]s', 1, %[2]d)`,
	`DELETE FROM access_tokens WHERE code_hash = 'no-such-code-%[1]s'`,
}

// Upgrade checks migration 3 (ADR 0012) on a database the previous version wrote: the
// upgraded store reads that version's access tokens, and replicas of that version, still
// running during a rolling update, keep writing after the migration. migrate brings an
// empty database's schema to its first n migrations; open opens the store on it, which
// applies the rest; exec runs a statement on it.
func Upgrade(t *testing.T, migrate func(t *testing.T, n int), open func(t *testing.T) storage.Storage, exec func(t *testing.T, query string)) {
	far := time.Now().Add(time.Hour).UnixNano()
	migrate(t, 2)
	for _, q := range previousVersionWrites {
		exec(t, fmt.Sprintf(q, "before", far))
	}

	s := open(t)
	tok, err := s.GetAccessToken(t.Context(), "token-before")
	must(t, err)
	if tok.ClientID != "app1" || tok.SessionIDHash != "session-before" || tok.Claims.Subject != "alice" {
		t.Fatalf("the previous version's access token after the upgrade: %+v", tok)
	}
	for _, q := range previousVersionWrites {
		exec(t, fmt.Sprintf(q, "after", far))
	}
	_, err = s.GetAccessToken(t.Context(), "token-after")
	must(t, err)
	_, err = s.GarbageCollect(t.Context(), time.Now())
	must(t, err)
	must(t, s.Close())
}
