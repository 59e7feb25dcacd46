package conformance

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

func emailToken(token, username, purpose string) storage.EmailToken {
	return storage.EmailToken{Hash: digest.Of(token), Purpose: purpose, Connection: "db", Username: username,
		Email: username + "@example.com", ExpiresAt: t0.Add(30 * time.Minute)}
}

func userWithEmail(name, email string) storage.User {
	u := user(name)
	u.Claims.Email, u.Claims.EmailVerified = email, false
	return u
}

var emailTests = []test{
	{"users are found by their exact email address, in their connection only", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateUser(t.Context(), userWithEmail("alice", "a@example.com")))
		must(t, s.CreateUser(t.Context(), userWithEmail("bob", "b@example.com")))
		other := userWithEmail("alice", "a@example.com")
		other.Connection = "db2"
		must(t, s.CreateUser(t.Context(), other))
		got, err := s.UsersByEmail(t.Context(), "db", "a@example.com", 5)
		must(t, err)
		equal(t, "users of a@example.com", []storage.User{userWithEmail("alice", "a@example.com")}, got)
		for _, email := range []string{"A@example.com", "example.com", ""} {
			got, err := s.UsersByEmail(t.Context(), "db", email, 5)
			must(t, err)
			if len(got) != 0 {
				t.Fatalf("%q found %d users", email, len(got))
			}
		}
	}},
	{"a lookup by email returns at most the limit", func(t *testing.T, s storage.Storage) {
		for _, name := range []string{"c", "a", "b"} {
			must(t, s.CreateUser(t.Context(), userWithEmail(name, "shared@example.com")))
		}
		got, err := s.UsersByEmail(t.Context(), "db", "shared@example.com", 2)
		must(t, err)
		equal(t, "users", []storage.User{userWithEmail("a", "shared@example.com"), userWithEmail("b", "shared@example.com")}, got)
	}},
	{"an address is verified only while it is still the user's", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateUser(t.Context(), userWithEmail("alice", "a@example.com")))
		ok, err := s.VerifyUserEmail(t.Context(), "db", "alice", "old@example.com")
		must(t, err)
		if ok {
			t.Fatal("an address the user no longer has was verified")
		}
		ok, err = s.VerifyUserEmail(t.Context(), "db", "alice", "a@example.com")
		must(t, err)
		if !ok {
			t.Fatal("the user's address was not verified")
		}
		got, err := s.GetUser(t.Context(), "db", "alice")
		must(t, err)
		want := userWithEmail("alice", "a@example.com")
		want.Claims.EmailVerified = true
		equal(t, "alice", want, got)
		ok, err = s.VerifyUserEmail(t.Context(), "db", "nobody", "a@example.com")
		must(t, err)
		if ok {
			t.Fatal("a missing user was verified")
		}
	}},
	{"a token reads back until it expires, and only for its purpose", func(t *testing.T, s storage.Storage) {
		want := emailToken("t1", "alice", storage.EmailTokenReset)
		must(t, s.CreateEmailToken(t.Context(), want))
		alreadyExists(t, "same hash", s.CreateEmailToken(t.Context(), want))
		got, err := s.GetEmailToken(t.Context(), want.Hash, storage.EmailTokenReset, t0)
		must(t, err)
		equal(t, "token", want, got)
		_, err = s.GetEmailToken(t.Context(), want.Hash, storage.EmailTokenVerify, t0)
		notFound(t, "other purpose", err)
		_, err = s.GetEmailToken(t.Context(), want.Hash, storage.EmailTokenReset, want.ExpiresAt)
		notFound(t, "expired", err)
		_, err = s.UseEmailToken(t.Context(), want.Hash, storage.EmailTokenReset, want.ExpiresAt)
		notFound(t, "spending an expired token", err)
	}},
	{"spending a token spends every token of its user and purpose, once", func(t *testing.T, s storage.Storage) {
		for _, tok := range []storage.EmailToken{
			emailToken("first", "alice", storage.EmailTokenReset), emailToken("second", "alice", storage.EmailTokenReset),
			emailToken("verify", "alice", storage.EmailTokenVerify), emailToken("bob's", "bob", storage.EmailTokenReset),
		} {
			must(t, s.CreateEmailToken(t.Context(), tok))
		}
		got, err := s.UseEmailToken(t.Context(), digest.Of("second"), storage.EmailTokenReset, t0)
		must(t, err)
		equal(t, "spent", emailToken("second", "alice", storage.EmailTokenReset), got)
		for _, token := range []string{"first", "second"} {
			_, err := s.UseEmailToken(t.Context(), digest.Of(token), storage.EmailTokenReset, t0)
			notFound(t, "spent "+token, err)
		}
		_, err = s.GetEmailToken(t.Context(), digest.Of("verify"), storage.EmailTokenVerify, t0)
		must(t, err)
		_, err = s.GetEmailToken(t.Context(), digest.Of("bob's"), storage.EmailTokenReset, t0)
		must(t, err)
	}},
	{"exactly one of many concurrent uses of a token succeeds", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateEmailToken(t.Context(), emailToken("t1", "alice", storage.EmailTokenReset)))
		var spent atomic.Int32
		concurrently(20, func(int) {
			_, err := s.UseEmailToken(t.Context(), digest.Of("t1"), storage.EmailTokenReset, t0)
			if err == nil {
				spent.Add(1)
			}
		})
		if n := spent.Load(); n != 1 {
			t.Fatalf("%d concurrent uses succeeded, want 1", n)
		}
	}},
	{"garbage collection deletes expired tokens and keeps live ones", func(t *testing.T, s storage.Storage) {
		old, live := emailToken("old", "alice", storage.EmailTokenReset), emailToken("live", "bob", storage.EmailTokenReset)
		live.ExpiresAt = old.ExpiresAt.Add(time.Nanosecond)
		must(t, s.CreateEmailToken(t.Context(), old))
		must(t, s.CreateEmailToken(t.Context(), live))
		n, err := s.GarbageCollect(t.Context(), old.ExpiresAt)
		must(t, err)
		if n != 1 {
			t.Fatalf("garbage collection deleted %d rows, want 1", n)
		}
		_, err = s.GetEmailToken(t.Context(), live.Hash, storage.EmailTokenReset, t0)
		must(t, err)
	}},
}
