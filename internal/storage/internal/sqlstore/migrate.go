package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// Migrate brings the schema up to date: migration i (0-based) takes the schema from version
// i to i+1, and schema_migrations records each one applied. Released migrations are never
// edited, only appended to.
//
// Everything runs in one transaction, after lock (if not empty) has been executed in it:
// backends whose transactions do not already exclude each other pass a statement that takes
// a transaction-scoped lock, so that servers starting together migrate once, one after the
// other.
func Migrate(ctx context.Context, db DB, d Dialect, lock string, migrations []string) error {
	return db.Tx(ctx, func(c Tx) error {
		if lock != "" {
			if _, err := c.Exec(ctx, lock); err != nil {
				return fmt.Errorf("lock schema: %w", err)
			}
		}
		if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  applied_at BIGINT NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var version int
		if err := c.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&version); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this binary's %d: run a newer version", version, len(migrations))
		}
		for i := version; i < len(migrations); i++ {
			if _, err := c.Exec(ctx, migrations[i]); err != nil {
				return fmt.Errorf("apply migration %d: %w", i+1, err)
			}
			insert := fmt.Sprintf("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
				d.Placeholder(1), d.Placeholder(2))
			if _, err := c.Exec(ctx, insert, i+1, Nanos(time.Now())); err != nil {
				return fmt.Errorf("record migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}
