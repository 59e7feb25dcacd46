package sqlite_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
	"github.com/hallpass/hallpass/internal/storage/conformance"
	"github.com/hallpass/hallpass/internal/storage/sqlite"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
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
	conformance.Run(t, func(t *testing.T) storage.Storage {
		return open(t, filepath.Join(t.TempDir(), "hallpass.db"))
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	// A path with characters that mean something in a URI must still name the file.
	path := filepath.Join(t.TempDir(), "odd ?#% name.db")
	first, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateUser(t.Context(), storage.User{Connection: "db", Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(matches) != 1 || matches[0] != path {
		t.Fatalf("files after close: %q, want only %q", matches, path)
	}

	second := open(t, path)
	if _, err := second.GetUser(t.Context(), "db", "alice"); err != nil {
		t.Fatalf("user written before reopening: %v", err)
	}
}

func BenchmarkSilentLogin(b *testing.B) {
	conformance.Benchmark(b, open(b, filepath.Join(b.TempDir(), "hallpass.db")))
}

// TestBatchedTransactionsFailAlone redeems many codes at once, so that the writer commits
// them in batches, and makes every other redemption fail after it has recorded the code:
// each failure must be undone alone, and every success must be there after a reopen.
func TestBatchedTransactionsFailAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hallpass.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	taken := storage.AccessToken{TokenHash: digest.Of("taken"), ClientID: "app1"}
	if err := s.CreateAccessToken(ctx, taken); err != nil {
		t.Fatal(err)
	}
	sess := storage.Session{IDHash: digest.Of("s"), SID: "sid", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	code := func(i int) storage.CodeRedemption {
		return storage.CodeRedemption{CodeHash: digest.Of(fmt.Sprint("code-", i)), SessionIDHash: sess.IDHash, ExpiresAt: time.Now().Add(time.Hour)}
	}
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok := storage.AccessToken{TokenHash: digest.Of(fmt.Sprint("token-", i)), ClientID: "app1"}
			if i%2 == 1 {
				tok = taken // stored already: the insert fails after the code's redemption
			}
			err := s.RedeemCode(ctx, code(i), func(storage.Session) (storage.Issued, error) {
				return storage.Issued{AccessToken: tok}, nil
			})
			if (i%2 == 1) != errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("redemption %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	for i := range n {
		_, tokErr := s.GetAccessToken(ctx, digest.Of(fmt.Sprint("token-", i)))
		revokeErr := s.RevokeByCode(ctx, code(i).CodeHash)
		if revokeErr != nil && !errors.Is(revokeErr, storage.ErrNotFound) {
			t.Fatalf("code %d: %v", i, revokeErr)
		}
		if want := i%2 == 0; (revokeErr == nil) != want || (tokErr == nil) != want {
			t.Errorf("code %d after reopening: redemption recorded %v, token stored %v; want both %v", i, revokeErr == nil, tokErr == nil, want)
		}
	}
}

// TestAPanickingTransactionPanicsInItsCaller checks that a panic inside an update function
// reaches the goroutine that called the store (where an HTTP server recovers it), writes
// nothing, and leaves the store working.
func TestAPanickingTransactionPanicsInItsCaller(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "hallpass.db"))
	ctx := t.Context()
	sess := storage.Session{IDHash: digest.Of("s"), SID: "sid", Clients: []string{"app1"}}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	recovered := func() (v any) {
		defer func() { v = recover() }()
		_, _ = s.UpdateSession(ctx, sess.IDHash, func(x storage.Session) (storage.Session, error) {
			panic("update function failed")
		})
		return nil
	}()
	if recovered != "update function failed" {
		t.Fatalf("recovered %v, want the update function's panic", recovered)
	}
	got, err := s.UpdateSession(ctx, sess.IDHash, func(x storage.Session) (storage.Session, error) {
		x.Clients = append(x.Clients, "app2")
		return x, nil
	})
	if err != nil || !slices.Equal(got.Clients, []string{"app1", "app2"}) {
		t.Fatalf("update after the panic: clients %v, err %v", got.Clients, err)
	}
}
