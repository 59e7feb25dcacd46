package postgres_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/conformance"
	"github.com/hallpass/hallpass/internal/storage/postgres"
	"github.com/hallpass/hallpass/internal/testutil/pgtest"
)

// dsnEnv names the test database. Without it these tests skip; with it, a database that
// cannot be reached fails them, so CI (which always sets it) cannot pass by skipping.
const dsnEnv = pgtest.DSNEnv

// testDSN returns the test database's DSN, or skips t when none was given.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skipf("%s is not set; run: export %s=\"$(hack/postgres.sh)\" (make test does this)", dsnEnv, dsnEnv)
	}
	return dsn
}

func freshSchema(t testing.TB, dsn string) string { return pgtest.FreshSchema(t, dsn) }

func open(t testing.TB, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestStorage(t *testing.T) {
	dsn := testDSN(t)
	conformance.Run(t, func(t *testing.T) storage.Storage { return open(t, freshSchema(t, dsn)) })
}

// Without the migration lock, concurrent CREATE TABLE IF NOT EXISTS of one table fails for
// all but one replica.
func TestReplicasStartingTogetherAllStart(t *testing.T) {
	dsn := freshSchema(t, testDSN(t))
	const replicas = 8
	stores := make([]*postgres.Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}

	// What one replica writes, another reads.
	if err := stores[0].CreateUser(t.Context(), storage.User{Connection: "db", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[replicas-1].GetUser(t.Context(), "db", "alice"); err != nil {
		t.Fatal(fmt.Errorf("read another replica's write: %w", err))
	}
}

// durableEnv set to 1 says that the test database is the durable cluster (hack/postgres.sh
// with HALLPASS_PG_DURABLE=1), against which make test runs this package once more, with
// its benchmark, so that durability is measured as production runs it.
const durableEnv = "HALLPASS_TEST_POSTGRES_DURABLE"

func TestTheDurableRunFlushesEveryCommit(t *testing.T) {
	if os.Getenv(durableEnv) != "1" {
		t.Skipf("%s is not 1: this run is not the durable one", durableEnv)
	}
	conn, err := pgx.Connect(t.Context(), testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var v string
		if err := conn.QueryRow(t.Context(), "SHOW "+setting).Scan(&v); err != nil {
			t.Fatalf("show %s: %v", setting, err)
		}
		if v != "on" {
			t.Errorf("%s = %s on the durable run's database, want on", setting, v)
		}
	}
}

func BenchmarkSilentLogin(b *testing.B) {
	conformance.Benchmark(b, open(b, freshSchema(b, testDSN(b))))
}
