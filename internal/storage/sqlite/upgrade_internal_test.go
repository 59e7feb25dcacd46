package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/conformance"
	"github.com/hallpass/hallpass/internal/storage/internal/sqlstore"
)

func TestMigration3KeepsThePreviousVersionWorking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hallpass.db")
	conformance.Upgrade(t, func(t *testing.T, n int) {
		db, err := openDatabase(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := sqlstore.Migrate(t.Context(), db, sqlstore.SQLite, "", migrations[:n]); err != nil {
			t.Fatal(err)
		}
	}, func(t *testing.T) storage.Storage {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, query string) {
		db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), query); err != nil {
			t.Fatalf("the previous version's %q: %v", query, err)
		}
	})
}
