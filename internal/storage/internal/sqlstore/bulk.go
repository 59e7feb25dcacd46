package sqlstore

import (
	"context"
	"fmt"

	"github.com/hallpass/hallpass/internal/storage"
)

// Bulk writes: many records in one transaction, with the statements and encoding of the
// single-record methods. They are not part of storage.Storage (the server never needs them);
// benchmarks load a million sessions through them (bench/silentlogin -fill), and an import
// could. A taken key fails the whole batch, and nothing of it is written.

// CreateSessions stores sessions in one transaction.
func (s *Store) CreateSessions(ctx context.Context, sessions []storage.Session) error {
	return bulk(ctx, s.db, s.q.insertSession, sessions, SessionValues, "sessions")
}

// CreateRefreshFamilies stores refresh families in one transaction.
func (s *Store) CreateRefreshFamilies(ctx context.Context, families []storage.RefreshFamily) error {
	return bulk(ctx, s.db, s.q.insertFamily, families, RefreshFamilyValues, "refresh families")
}

// CreateAccessTokens stores access tokens in one transaction.
func (s *Store) CreateAccessTokens(ctx context.Context, tokens []storage.AccessToken) error {
	return bulk(ctx, s.db, s.q.insertToken, tokens, AccessTokenValues, "access tokens")
}

func bulk[T any](ctx context.Context, db DB, insert string, records []T, values func(T) ([]any, error), what string) error {
	err := db.Tx(ctx, func(tx Tx) error {
		for _, r := range records {
			vals, err := values(r)
			if err != nil {
				return err
			}
			tx.Later(insert, vals...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create %d %s: %w", len(records), what, err)
	}
	return nil
}
