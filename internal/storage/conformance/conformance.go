// Package conformance is the one test suite that every storage backend runs, so that the
// server behaves the same whichever backend an SSOServer declares. A backend's own test calls
// Run with a function that returns a new, empty store.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// Run runs the suite. newStore must return a new, empty store that is closed when t ends.
func Run(t *testing.T, newStore func(t *testing.T) storage.Storage) {
	for _, group := range []struct {
		name  string
		tests []test
	}{
		{"sessions", sessionTests},
		{"code redemptions", codeRedemptionTests},
		{"access tokens", accessTokenTests},
		{"refresh families", refreshFamilyTests},
		{"revocation", revocationTests},
		{"device codes", deviceCodeTests},
		{"users", userTests},
		{"factors", factorTests},
		{"recovery codes", recoveryCodeTests},
		{"enrolment grace", enrolmentGraceTests},
		{"email", emailTests},
		{"throttles", throttleTests},
		{"single use", singleUseTests},
		{"garbage collection", gcTests},
		{"concurrency", concurrencyTests},
		{"health", healthTests},
		{"bulk writes", bulkTests},
	} {
		t.Run(group.name, func(t *testing.T) {
			for _, tc := range group.tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s storage.Storage)
}

// t0 has nanoseconds and a zone other than UTC: a backend must keep the instant exactly,
// whatever zone it hands back.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 123456789, time.FixedZone("UTC+5", 5*3600))

var errRefused = errors.New("refused by the update function")

func claims(sub string) storage.Claims {
	return storage.Claims{
		Subject: sub, Username: "user-" + sub, Name: "User " + sub, Email: sub + "@example.com",
		EmailVerified: true, Groups: []string{"admins", "devs"},
	}
}

func session(id string) storage.Session {
	return storage.Session{
		IDHash: digest.Of(id), SID: "sid-" + id, Connection: "corp", Claims: claims("alice"),
		AuthTime: t0.Add(-time.Minute), AMR: []string{"pwd", "otp"}, MFAAt: t0.Add(-30 * time.Second), Reusable: true,
		CreatedAt: t0.Add(-time.Minute), LastActivity: t0, ExpiresAt: t0.Add(72 * time.Hour),
		Clients: []string{"app1", "app2"}, Upstream: []byte(`{"id_token_hint":"x"}`),
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0", ClientAddress: "2001:db8::1",
	}
}

// storedCode returns the redemption of a code issued in a stored session.
func storedCode(t *testing.T, s storage.Storage) storage.CodeRedemption {
	t.Helper()
	sess := session("s")
	must(t, s.CreateSession(t.Context(), sess))
	return storage.CodeRedemption{CodeHash: digest.Of("code-s"), SessionIDHash: sess.IDHash, ExpiresAt: t0.Add(time.Minute)}
}

func accessToken(token string) storage.AccessToken {
	return storage.AccessToken{
		TokenHash: digest.Of(token), ClientID: "app1", Audience: "urn:example:orders", Scopes: []string{"openid", "email"},
		Claims: claims("alice"), SessionIDHash: digest.Of("session"), RefreshFamilyID: "fam",
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

func family(id string) storage.RefreshFamily {
	return storage.RefreshFamily{
		ID: id, ClientID: "app1", Audience: "urn:example:orders", Scopes: []string{"openid", "offline_access"}, Claims: claims("alice"),
		SessionIDHash: digest.Of("session"), SID: "sid-session", Connection: "corp",
		AuthTime: t0.Add(-time.Minute), AMR: []string{"pwd"}, CurrentHash: digest.Of(id + "-1"),
		PreviousHash: digest.Of(id + "-0"), RotatedAt: t0, CreatedAt: t0.Add(-time.Hour),
		ExpiresAt: t0.Add(30 * 24 * time.Hour), Revoked: false,
	}
}

func deviceCode(name string) storage.DeviceCode {
	return storage.DeviceCode{
		DeviceCodeHash: digest.Of("device-" + name), UserCodeHash: digest.Of("USER" + name),
		ClientID: "cli", Audience: "urn:example:orders", Scopes: []string{"openid", "groups", "offline_access", "orders:read"}, Status: storage.DeviceCodePending,
		Interval: 5 * time.Second, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute),
	}
}

func user(name string) storage.User {
	return storage.User{
		Connection: "db", Username: name, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Claims: claims(name), CreatedAt: t0,
	}
}

// equal fails the test unless got equals want; times compare with Equal.
func equal[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s differs (-want +got):\n%s", what, diff)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s: got error %v, want one matching storage.ErrNotFound", what, err)
	}
}

func alreadyExists(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("%s: got error %v, want one matching storage.ErrAlreadyExists", what, err)
	}
}

// refused checks that an Update returned the update function's own error, not a wrapped one.
func refused(t *testing.T, err error) {
	t.Helper()
	if err != errRefused { //nolint:errorlint // the interface promises the error unchanged
		t.Fatalf("got error %v, want the update function's error unchanged", err)
	}
}

var sessionTests = []test{
	{"a created session reads back with every field", func(t *testing.T, s storage.Storage) {
		want := session("a")
		must(t, s.CreateSession(t.Context(), want))
		got, err := s.GetSession(t.Context(), want.IDHash)
		must(t, err)
		equal(t, "session", want, got)
	}},
	{"empty lists and bytes read back as nil", func(t *testing.T, s storage.Storage) {
		in := session("a")
		in.AMR, in.Clients, in.Upstream, in.Claims.Groups = []string{}, nil, []byte{}, []string{}
		must(t, s.CreateSession(t.Context(), in))
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		if got.AMR != nil || got.Clients != nil || got.Upstream != nil || got.Claims.Groups != nil {
			t.Fatalf("got AMR %#v, Clients %#v, Upstream %#v, Groups %#v; want all nil",
				got.AMR, got.Clients, got.Upstream, got.Claims.Groups)
		}
	}},
	{"zero times read back as zero", func(t *testing.T, s storage.Storage) {
		in := session("a")
		in.AuthTime, in.LastActivity = time.Time{}, time.Time{}
		must(t, s.CreateSession(t.Context(), in))
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		if !got.AuthTime.IsZero() || !got.LastActivity.IsZero() {
			t.Fatalf("got AuthTime %v, LastActivity %v; want zero times", got.AuthTime, got.LastActivity)
		}
	}},
	{"clients are stored sorted and unique", func(t *testing.T, s storage.Storage) {
		in := session("a")
		in.Clients = []string{"c", "a", "c", "b", "a"}
		must(t, s.CreateSession(t.Context(), in))
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		equal(t, "clients", []string{"a", "b", "c"}, got.Clients)
		updated, err := s.UpdateSession(t.Context(), in.IDHash, func(x storage.Session) (storage.Session, error) {
			x.Clients = append(x.Clients, "0", "b")
			return x, nil
		})
		must(t, err)
		equal(t, "clients after update", []string{"0", "a", "b", "c"}, updated.Clients)
	}},
	{"a missing session is not found", func(t *testing.T, s storage.Storage) {
		_, err := s.GetSession(t.Context(), digest.Of("nope"))
		notFound(t, "get", err)
	}},
	{"creating a session twice fails and keeps the first", func(t *testing.T, s storage.Storage) {
		first := session("a")
		must(t, s.CreateSession(t.Context(), first))
		second := session("a")
		second.SID = "another"
		alreadyExists(t, "second create", s.CreateSession(t.Context(), second))
		got, err := s.GetSession(t.Context(), first.IDHash)
		must(t, err)
		equal(t, "session", first, got)
	}},
	{"an update is stored and returned", func(t *testing.T, s storage.Storage) {
		in := session("a")
		must(t, s.CreateSession(t.Context(), in))
		later := t0.Add(time.Hour)
		var seen storage.Session
		returned, err := s.UpdateSession(t.Context(), in.IDHash, func(x storage.Session) (storage.Session, error) {
			seen = x
			x.LastActivity, x.ExpiresAt, x.Clients = later, later.Add(time.Hour), append(x.Clients, "app3")
			return x, nil
		})
		must(t, err)
		equal(t, "session passed to the update function", in, seen)
		want := in
		want.LastActivity, want.ExpiresAt, want.Clients = later, later.Add(time.Hour), []string{"app1", "app2", "app3"}
		equal(t, "returned session", want, returned)
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		equal(t, "stored session", want, got)
	}},
	{"an update function error leaves the session unchanged", func(t *testing.T, s storage.Storage) {
		in := session("a")
		must(t, s.CreateSession(t.Context(), in))
		_, err := s.UpdateSession(t.Context(), in.IDHash, func(x storage.Session) (storage.Session, error) {
			x.Reusable, x.Clients = false, nil
			return x, errRefused
		})
		refused(t, err)
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		equal(t, "session", in, got)
	}},
	{"a panicking update function leaves the store usable", func(t *testing.T, s storage.Storage) {
		in := session("a")
		must(t, s.CreateSession(t.Context(), in))
		func() {
			defer func() { _ = recover() }()
			_, _ = s.UpdateSession(t.Context(), in.IDHash, func(x storage.Session) (storage.Session, error) {
				panic("update function bug")
			})
		}()
		// A transaction left open would make the next write wait for ever.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		got, err := s.UpdateSession(ctx, in.IDHash, func(x storage.Session) (storage.Session, error) {
			x.SID = "after"
			return x, nil
		})
		must(t, err)
		if got.SID != "after" {
			t.Fatalf("SID is %q after the update", got.SID)
		}
	}},
	{"an update of a missing session is not found and never calls the function", func(t *testing.T, s storage.Storage) {
		called := false
		_, err := s.UpdateSession(t.Context(), digest.Of("nope"), func(x storage.Session) (storage.Session, error) {
			called = true
			return x, nil
		})
		notFound(t, "update", err)
		if called {
			t.Fatal("the update function was called for a missing session")
		}
	}},
	{"an update that changes the key fails and writes nothing", func(t *testing.T, s storage.Storage) {
		in := session("a")
		must(t, s.CreateSession(t.Context(), in))
		_, err := s.UpdateSession(t.Context(), in.IDHash, func(x storage.Session) (storage.Session, error) {
			x.IDHash, x.SID = digest.Of("b"), "changed"
			return x, nil
		})
		if err == nil {
			t.Fatal("changing the key succeeded")
		}
		got, err := s.GetSession(t.Context(), in.IDHash)
		must(t, err)
		equal(t, "session", in, got)
		_, err = s.GetSession(t.Context(), digest.Of("b"))
		notFound(t, "get under the new key", err)
	}},
	{"a deleted session is gone", func(t *testing.T, s storage.Storage) {
		in := session("a")
		must(t, s.CreateSession(t.Context(), in))
		must(t, s.CreateSession(t.Context(), session("b")))
		must(t, s.DeleteSession(t.Context(), in.IDHash))
		_, err := s.GetSession(t.Context(), in.IDHash)
		notFound(t, "get after delete", err)
		_, err = s.GetSession(t.Context(), session("b").IDHash)
		must(t, err)
		notFound(t, "second delete", s.DeleteSession(t.Context(), in.IDHash))
	}},
	{"sessions are listed by connection and subject", func(t *testing.T, s storage.Storage) {
		a1, a2, other, otherConn := session("a1"), session("a2"), session("b"), session("c")
		a2.CreatedAt = a1.CreatedAt.Add(time.Second)
		other.Claims = claims("bob")
		otherConn.Connection = "github"
		for _, x := range []storage.Session{a2, other, otherConn, a1} {
			must(t, s.CreateSession(t.Context(), x))
		}
		got, err := s.ListSessionsBySubject(t.Context(), "corp", "alice")
		must(t, err)
		equal(t, "alice's corp sessions, oldest first", []storage.Session{a1, a2}, got)
		none, err := s.ListSessionsBySubject(t.Context(), "corp", "carol")
		must(t, err)
		if len(none) != 0 {
			t.Fatalf("listed %d sessions of a user without sessions", len(none))
		}
	}},
	{"listing expired sessions needs a positive limit", func(t *testing.T, s storage.Storage) {
		x := session("a")
		x.ExpiresAt = t0
		must(t, s.CreateSession(t.Context(), x))
		if _, err := s.ListExpiredSessions(t.Context(), t0, 0); err == nil {
			t.Fatal("a limit of 0 was accepted")
		}
	}},
	{"expired sessions are listed up to the limit, earliest expiry first", func(t *testing.T, s storage.Storage) {
		now := t0.Add(time.Hour)
		var want []storage.Session
		for i, exp := range []time.Duration{-3 * time.Hour, -2 * time.Hour, 0, time.Nanosecond, time.Hour} {
			x := session(fmt.Sprint(i))
			x.ExpiresAt = now.Add(exp)
			must(t, s.CreateSession(t.Context(), x))
			if exp <= 0 {
				want = append(want, x)
			}
		}
		all, err := s.ListExpiredSessions(t.Context(), now, 10)
		must(t, err)
		equal(t, "expired sessions (ExpiresAt <= now)", want, all)
		limited, err := s.ListExpiredSessions(t.Context(), now, 2)
		must(t, err)
		equal(t, "first two expired sessions", want[:2], limited)
	}},
}

// issuing returns an issue function that issues tok, plus fam when it is not nil, and
// keeps the session it was given in *got when got is not nil.
func issuing(tok storage.AccessToken, fam *storage.RefreshFamily, got *storage.Session) func(storage.Session) (storage.Issued, error) {
	return func(sess storage.Session) (storage.Issued, error) {
		if got != nil {
			*got = sess
		}
		return storage.Issued{AccessToken: tok, RefreshFamily: fam}, nil
	}
}

var codeRedemptionTests = []test{
	{"a redemption gets the code's session and stores the tokens it issued", func(t *testing.T, s storage.Storage) {
		c, tok, fam := storedCode(t, s), accessToken("t"), family("fam-1")
		var got storage.Session
		must(t, s.RedeemCode(t.Context(), c, issuing(tok, &fam, &got)))
		equal(t, "session given to issue", session("s"), got)
		gotTok, err := s.GetAccessToken(t.Context(), tok.TokenHash)
		must(t, err)
		equal(t, "access token", tok, gotTok)
		gotFam, err := s.GetRefreshFamily(t.Context(), fam.ID)
		must(t, err)
		equal(t, "refresh family", fam, gotFam)
	}},
	{"a second redemption of a code is refused and stores nothing", func(t *testing.T, s storage.Storage) {
		c, second := storedCode(t, s), accessToken("t2")
		must(t, s.RedeemCode(t.Context(), c, issuing(accessToken("t"), nil, nil)))
		alreadyExists(t, "second redemption", s.RedeemCode(t.Context(), c, issuing(second, nil, nil)))
		tokenGone(t, s, second, true)
	}},
	{"a redemption without a refresh family stores the access token only", func(t *testing.T, s storage.Storage) {
		c, tok := storedCode(t, s), accessToken("t")
		must(t, s.RedeemCode(t.Context(), c, issuing(tok, nil, nil)))
		tokenGone(t, s, tok, false)
		_, err := s.GetRefreshFamily(t.Context(), "fam")
		notFound(t, "refresh family", err)
	}},
	{"a failed issue records no redemption and stores no token", func(t *testing.T, s storage.Storage) {
		c, tok, fam := storedCode(t, s), accessToken("t"), family("fam-1")
		refused(t, s.RedeemCode(t.Context(), c, func(storage.Session) (storage.Issued, error) {
			return storage.Issued{AccessToken: tok, RefreshFamily: &fam}, errRefused
		}))
		tokenGone(t, s, tok, true)
		_, err := s.GetRefreshFamily(t.Context(), fam.ID)
		notFound(t, "refresh family", err)
		notFound(t, "revoke by the code", s.RevokeByCode(t.Context(), c.CodeHash))
		must(t, s.RedeemCode(t.Context(), c, issuing(tok, &fam, nil)))
	}},
	{"a redemption whose tokens cannot be stored is not recorded", func(t *testing.T, s storage.Storage) {
		c, fam, tok := storedCode(t, s), family("fam-1"), accessToken("t")
		taken := family("fam-1")
		taken.ClientID = "other"
		must(t, s.CreateRefreshFamily(t.Context(), taken))
		alreadyExists(t, "redeem with a taken family ID", s.RedeemCode(t.Context(), c, issuing(tok, &fam, nil)))
		tokenGone(t, s, tok, true)
		fam.ID = "fam-2"
		must(t, s.RedeemCode(t.Context(), c, issuing(tok, &fam, nil)))
	}},
	{"a code whose session has ended is refused before issue runs and stores nothing", func(t *testing.T, s storage.Storage) {
		c, tok := storedCode(t, s), accessToken("t")
		must(t, s.RevokeSession(t.Context(), c.SessionIDHash))
		err := s.RedeemCode(t.Context(), c, func(storage.Session) (storage.Issued, error) {
			t.Error("issue ran for a code whose session has ended")
			return storage.Issued{AccessToken: tok}, nil
		})
		if !errors.Is(err, storage.ErrSessionEnded) {
			t.Fatalf("redeem after the session ended: got %v, want storage.ErrSessionEnded", err)
		}
		tokenGone(t, s, tok, true)
	}},
}

var accessTokenTests = []test{
	{"a created token reads back with every field", func(t *testing.T, s storage.Storage) {
		want := accessToken("t")
		must(t, s.CreateAccessToken(t.Context(), want))
		got, err := s.GetAccessToken(t.Context(), want.TokenHash)
		must(t, err)
		equal(t, "token", want, got)
	}},
	{"a token outside any session or family reads back with empty links", func(t *testing.T, s storage.Storage) {
		want := accessToken("t")
		want.SessionIDHash, want.RefreshFamilyID, want.Scopes = "", "", nil
		must(t, s.CreateAccessToken(t.Context(), want))
		got, err := s.GetAccessToken(t.Context(), want.TokenHash)
		must(t, err)
		equal(t, "token", want, got)
	}},
	{"creating a token twice fails", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateAccessToken(t.Context(), accessToken("t")))
		alreadyExists(t, "second create", s.CreateAccessToken(t.Context(), accessToken("t")))
	}},
	{"a missing token is not found", func(t *testing.T, s storage.Storage) {
		_, err := s.GetAccessToken(t.Context(), digest.Of("nope"))
		notFound(t, "get", err)
		notFound(t, "delete", s.DeleteAccessToken(t.Context(), digest.Of("nope")))
	}},
	{"a deleted token is gone and others stay", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateAccessToken(t.Context(), accessToken("t1")))
		must(t, s.CreateAccessToken(t.Context(), accessToken("t2")))
		must(t, s.DeleteAccessToken(t.Context(), digest.Of("t1")))
		_, err := s.GetAccessToken(t.Context(), digest.Of("t1"))
		notFound(t, "get after delete", err)
		_, err = s.GetAccessToken(t.Context(), digest.Of("t2"))
		must(t, err)
	}},
}

var refreshFamilyTests = []test{
	{"a created family reads back with every field", func(t *testing.T, s storage.Storage) {
		want := family("f")
		want.Revoked = true
		must(t, s.CreateRefreshFamily(t.Context(), want))
		got, err := s.GetRefreshFamily(t.Context(), want.ID)
		must(t, err)
		equal(t, "family", want, got)
	}},
	{"a family that never rotated reads back with an empty previous hash and zero rotation time", func(t *testing.T, s storage.Storage) {
		want := family("f")
		want.PreviousHash, want.RotatedAt = "", time.Time{}
		must(t, s.CreateRefreshFamily(t.Context(), want))
		got, err := s.GetRefreshFamily(t.Context(), want.ID)
		must(t, err)
		equal(t, "family", want, got)
	}},
	{"creating a family twice fails", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateRefreshFamily(t.Context(), family("f")))
		alreadyExists(t, "second create", s.CreateRefreshFamily(t.Context(), family("f")))
	}},
	{"a missing family is not found", func(t *testing.T, s storage.Storage) {
		_, err := s.GetRefreshFamily(t.Context(), "nope")
		notFound(t, "get", err)
		_, err = s.RotateRefreshFamily(t.Context(), "nope", func(f storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
			return f, accessToken("t"), nil
		})
		notFound(t, "rotate", err)
	}},
	{"a family is found by its current and its previous token", func(t *testing.T, s storage.Storage) {
		f, other := family("f"), family("g")
		must(t, s.CreateRefreshFamily(t.Context(), f))
		must(t, s.CreateRefreshFamily(t.Context(), other))
		for _, h := range []string{f.CurrentHash, f.PreviousHash} {
			got, err := s.GetRefreshFamilyByToken(t.Context(), h)
			must(t, err)
			equal(t, "family", f, got)
		}
	}},
	{"an unknown or empty token finds no family", func(t *testing.T, s storage.Storage) {
		never := family("f")
		never.PreviousHash = ""
		must(t, s.CreateRefreshFamily(t.Context(), never))
		_, err := s.GetRefreshFamilyByToken(t.Context(), digest.Of("nope"))
		notFound(t, "unknown token", err)
		_, err = s.GetRefreshFamilyByToken(t.Context(), "")
		notFound(t, "empty hash", err)
	}},
	{"a rotation moves the current token to previous and stores the access token it issued", func(t *testing.T, s storage.Storage) {
		f, tok := family("f"), accessToken("t")
		must(t, s.CreateRefreshFamily(t.Context(), f))
		next, at := digest.Of("f-2"), t0.Add(time.Minute)
		got, err := s.RotateRefreshFamily(t.Context(), f.ID, func(x storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
			x.PreviousHash, x.CurrentHash, x.RotatedAt = x.CurrentHash, next, at
			return x, tok, nil
		})
		must(t, err)
		gotTok, err := s.GetAccessToken(t.Context(), tok.TokenHash)
		must(t, err)
		equal(t, "access token", tok, gotTok)
		want := f
		want.PreviousHash, want.CurrentHash, want.RotatedAt = f.CurrentHash, next, at
		equal(t, "returned family", want, got)
		byNew, err := s.GetRefreshFamilyByToken(t.Context(), next)
		must(t, err)
		equal(t, "family found by the new token", want, byNew)
		_, err = s.GetRefreshFamilyByToken(t.Context(), f.PreviousHash)
		notFound(t, "token two rotations old", err)
	}},
	{"a refused rotation leaves the family unchanged and stores no token", func(t *testing.T, s storage.Storage) {
		f, tok := family("f"), accessToken("t")
		must(t, s.CreateRefreshFamily(t.Context(), f))
		_, err := s.RotateRefreshFamily(t.Context(), f.ID, func(x storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
			x.CurrentHash, x.Revoked = digest.Of("other"), true
			return x, tok, errRefused
		})
		refused(t, err)
		got, err := s.GetRefreshFamily(t.Context(), f.ID)
		must(t, err)
		equal(t, "family", f, got)
		tokenGone(t, s, tok, true)
	}},
	{"a rotation whose token cannot be stored leaves the family unchanged", func(t *testing.T, s storage.Storage) {
		f, tok := family("f"), accessToken("t")
		must(t, s.CreateRefreshFamily(t.Context(), f))
		must(t, s.CreateAccessToken(t.Context(), tok))
		_, err := s.RotateRefreshFamily(t.Context(), f.ID, func(x storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
			x.PreviousHash, x.CurrentHash = x.CurrentHash, digest.Of("f-2")
			return x, tok, nil
		})
		alreadyExists(t, "rotate with a taken token hash", err)
		got, err := s.GetRefreshFamily(t.Context(), f.ID)
		must(t, err)
		equal(t, "family", f, got)
	}},
}

// issued is what one login and one refresh issue under a session: a redeemed code, a family
// and the access tokens of the code and of the family.
type issued struct {
	session    storage.Session
	code       storage.CodeRedemption
	family     storage.RefreshFamily
	codeToken  storage.AccessToken
	familyTok  storage.AccessToken
	standalone storage.AccessToken
}

func issue(t *testing.T, s storage.Storage, name string) issued {
	t.Helper()
	var x issued
	x.session = session(name)
	x.family = family("fam-" + name)
	x.family.SessionIDHash = x.session.IDHash
	x.code = storage.CodeRedemption{CodeHash: digest.Of("code-" + name), SessionIDHash: x.session.IDHash, ExpiresAt: t0.Add(time.Minute)}
	x.codeToken = accessToken("code-token-" + name)
	x.codeToken.SessionIDHash, x.codeToken.RefreshFamilyID = x.session.IDHash, x.family.ID
	x.familyTok = accessToken("family-token-" + name)
	x.familyTok.SessionIDHash, x.familyTok.RefreshFamilyID = x.session.IDHash, x.family.ID
	// A client-credentials token belongs to no session, family or code: no revocation of
	// anything else may take it.
	x.standalone = accessToken("standalone-" + name)
	x.standalone.SessionIDHash, x.standalone.RefreshFamilyID = "", ""
	must(t, s.CreateSession(t.Context(), x.session))
	must(t, s.RedeemCode(t.Context(), x.code, issuing(x.codeToken, &x.family, nil)))
	for _, tok := range []storage.AccessToken{x.familyTok, x.standalone} {
		must(t, s.CreateAccessToken(t.Context(), tok))
	}
	return x
}

func tokenGone(t *testing.T, s storage.Storage, tok storage.AccessToken, gone bool) {
	t.Helper()
	_, err := s.GetAccessToken(t.Context(), tok.TokenHash)
	switch {
	case gone:
		notFound(t, "get revoked access token", err)
	case err != nil:
		t.Fatalf("access token that should stay: %v", err)
	}
}

func familyRevoked(t *testing.T, s storage.Storage, id string, revoked bool) {
	t.Helper()
	f, err := s.GetRefreshFamily(t.Context(), id)
	must(t, err)
	if f.Revoked != revoked {
		t.Fatalf("family %s: Revoked is %v, want %v", id, f.Revoked, revoked)
	}
}

// sessionRevoked checks that the session of x and what was issued in it are gone (revoked)
// or all still there, and that the token issued outside any session stays either way.
func sessionRevoked(t *testing.T, s storage.Storage, x issued, revoked bool) {
	t.Helper()
	_, err := s.GetSession(t.Context(), x.session.IDHash)
	if revoked {
		notFound(t, "get revoked session", err)
	} else {
		must(t, err)
	}
	familyRevoked(t, s, x.family.ID, revoked)
	tokenGone(t, s, x.codeToken, revoked)
	tokenGone(t, s, x.familyTok, revoked)
	tokenGone(t, s, x.standalone, false)
}

var revocationTests = []test{
	{"revoking a session deletes it and its access tokens and revokes its families", func(t *testing.T, s storage.Storage) {
		a, b := issue(t, s, "a"), issue(t, s, "b")
		must(t, s.RevokeSession(t.Context(), a.session.IDHash))
		sessionRevoked(t, s, a, true)
		sessionRevoked(t, s, b, false)
	}},
	{"revoking a session that is gone still revokes what was issued in it and reports not found", func(t *testing.T, s storage.Storage) {
		a := issue(t, s, "a")
		must(t, s.DeleteSession(t.Context(), a.session.IDHash))
		notFound(t, "revoke", s.RevokeSession(t.Context(), a.session.IDHash))
		familyRevoked(t, s, a.family.ID, true)
		tokenGone(t, s, a.familyTok, true)
	}},
	{"revoking an empty session hash touches no token issued outside a session", func(t *testing.T, s storage.Storage) {
		a := issue(t, s, "a")
		notFound(t, "revoke", s.RevokeSession(t.Context(), ""))
		tokenGone(t, s, a.standalone, false)
	}},
	{"revoking sessions in bulk ends those still there, reports them in order, and leaves the others", func(t *testing.T, s storage.Storage) {
		a, b, c, keep := issue(t, s, "a"), issue(t, s, "b"), issue(t, s, "c"), issue(t, s, "keep")
		must(t, s.DeleteSession(t.Context(), b.session.IDHash))
		ended, err := s.RevokeSessions(t.Context(), []string{c.session.IDHash, b.session.IDHash, "", a.session.IDHash})
		must(t, err)
		equal(t, "sessions ended", []string{c.session.IDHash, a.session.IDHash}, ended)
		for _, x := range []issued{a, b, c} {
			sessionRevoked(t, s, x, true)
		}
		sessionRevoked(t, s, keep, false)
		again, err := s.RevokeSessions(t.Context(), []string{a.session.IDHash})
		must(t, err)
		if len(again) != 0 {
			t.Fatalf("revoking an ended session again reported %d ended, want none", len(again))
		}
	}},
	{"sessions revoked in bulk by two at once are each reported by exactly one", func(t *testing.T, s storage.Storage) {
		var ids []string
		for i := range 20 {
			x := session(fmt.Sprint("both-", i))
			must(t, s.CreateSession(t.Context(), x))
			ids = append(ids, x.IDHash)
		}
		reversed := slices.Clone(ids)
		slices.Reverse(reversed)
		var ended [2][]string
		concurrently(2, func(i int) {
			order := ids
			if i == 1 {
				order = reversed
			}
			var err error
			if ended[i], err = s.RevokeSessions(t.Context(), order); err != nil {
				t.Errorf("revoker %d: %v", i, err)
			}
		})
		all := append(slices.Clone(ended[0]), ended[1]...)
		slices.Sort(all)
		want := slices.Clone(ids)
		slices.Sort(want)
		equal(t, "sessions reported ended by either", want, all)
	}},
	{"revoking a family deletes its access tokens only", func(t *testing.T, s storage.Storage) {
		a, b := issue(t, s, "a"), issue(t, s, "b")
		must(t, s.RevokeRefreshFamily(t.Context(), a.family.ID))
		familyRevoked(t, s, a.family.ID, true)
		tokenGone(t, s, a.codeToken, true)
		tokenGone(t, s, a.familyTok, true)
		tokenGone(t, s, a.standalone, false)
		_, err := s.GetSession(t.Context(), a.session.IDHash)
		must(t, err)
		familyRevoked(t, s, b.family.ID, false)
		tokenGone(t, s, b.familyTok, false)
		notFound(t, "revoke missing family", s.RevokeRefreshFamily(t.Context(), "nope"))
		notFound(t, "revoke empty family ID", s.RevokeRefreshFamily(t.Context(), ""))
		tokenGone(t, s, b.standalone, false)
	}},
	{"revoking by code revokes its family and the tokens of both", func(t *testing.T, s storage.Storage) {
		a, b := issue(t, s, "a"), issue(t, s, "b")
		must(t, s.RevokeByCode(t.Context(), a.code.CodeHash))
		familyRevoked(t, s, a.family.ID, true)
		tokenGone(t, s, a.codeToken, true)
		tokenGone(t, s, a.familyTok, true)
		tokenGone(t, s, a.standalone, false)
		_, err := s.GetSession(t.Context(), a.session.IDHash)
		must(t, err)
		familyRevoked(t, s, b.family.ID, false)
		tokenGone(t, s, b.codeToken, false)
	}},
	{"revoking by a code without a family deletes the code's token only", func(t *testing.T, s storage.Storage) {
		c, tok, other := storedCode(t, s), accessToken("t"), accessToken("other")
		tok.RefreshFamilyID, other.RefreshFamilyID = "", ""
		must(t, s.RedeemCode(t.Context(), c, issuing(tok, nil, nil)))
		must(t, s.CreateAccessToken(t.Context(), other))
		must(t, s.RevokeByCode(t.Context(), c.CodeHash))
		tokenGone(t, s, tok, true)
		tokenGone(t, s, other, false)
	}},
	{"revoking by a missing code is not found", func(t *testing.T, s storage.Storage) {
		notFound(t, "revoke", s.RevokeByCode(t.Context(), digest.Of("nope")))
	}},
}

var singleUseTests = []test{
	{"a key's first use is the only one until it expires", func(t *testing.T, s storage.Storage) {
		until := t0.Add(time.Minute)
		for _, tc := range []struct {
			key   string
			now   time.Time
			first bool
		}{
			{"a", t0, true},
			{"a", t0.Add(59 * time.Second), false},
			{"b", t0, true},
			{"a", until, true}, // expired: usable again, for another minute
			{"a", until.Add(time.Second), false},
		} {
			got, err := s.UseOnce(t.Context(), tc.key, tc.now, tc.now.Add(time.Minute))
			must(t, err)
			if got != tc.first {
				t.Fatalf("use of %q at %s: first = %v, want %v", tc.key, tc.now.Sub(t0), got, tc.first)
			}
		}
	}},
	{"exactly one of many concurrent uses of a key is the first", func(t *testing.T, s storage.Storage) {
		var firsts atomic.Int32
		concurrently(50, func(int) {
			first, err := s.UseOnce(t.Context(), "k", t0, t0.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
		if n := firsts.Load(); n != 1 {
			t.Fatalf("%d uses were the first, want 1", n)
		}
	}},
}

var userTests = []test{
	{"a created user reads back with every field", func(t *testing.T, s storage.Storage) {
		want := user("alice")
		must(t, s.CreateUser(t.Context(), want))
		got, err := s.GetUser(t.Context(), want.Connection, want.Username)
		must(t, err)
		equal(t, "user", want, got)
	}},
	{"a username is unique within its connection only", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateUser(t.Context(), user("alice")))
		alreadyExists(t, "same connection", s.CreateUser(t.Context(), user("alice")))
		other := user("alice")
		other.Connection, other.PasswordHash = "db2", "other"
		must(t, s.CreateUser(t.Context(), other))
		got, err := s.GetUser(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "first user", user("alice"), got)
	}},
	{"a user's new password replaces the old one and changes nothing else", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateUser(t.Context(), user("alice")))
		must(t, s.CreateUser(t.Context(), user("bob")))
		must(t, s.SetUserPassword(t.Context(), "db", "alice", "$argon2id$new"))
		got, err := s.GetUser(t.Context(), "db", "alice")
		must(t, err)
		want := user("alice")
		want.PasswordHash = "$argon2id$new"
		equal(t, "alice", want, got)
		bob, err := s.GetUser(t.Context(), "db", "bob")
		must(t, err)
		equal(t, "bob", user("bob"), bob)
		notFound(t, "a user who did not sign up", s.SetUserPassword(t.Context(), "db", "carol", "x"))
	}},
	{"a missing user is not found", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateUser(t.Context(), user("alice")))
		_, err := s.GetUser(t.Context(), "db", "bob")
		notFound(t, "other username", err)
		_, err = s.GetUser(t.Context(), "db2", "alice")
		notFound(t, "other connection", err)
	}},
}

var throttleTests = []test{
	{"failures within the window add up", func(t *testing.T, s storage.Storage) {
		const window = 15 * time.Minute
		for i := 1; i <= 3; i++ {
			at := t0.Add(time.Duration(i) * time.Minute)
			got, err := s.RecordLoginFailure(t.Context(), "alice", at, window)
			must(t, err)
			equal(t, "throttle", storage.Throttle{Key: "alice", Failures: i, LastFailure: at}, got)
		}
		got, err := s.GetThrottle(t.Context(), "alice")
		must(t, err)
		equal(t, "stored throttle", storage.Throttle{Key: "alice", Failures: 3, LastFailure: t0.Add(3 * time.Minute)}, got)
	}},
	{"a failure after the window starts the count again", func(t *testing.T, s storage.Storage) {
		const window = 15 * time.Minute
		for range 3 {
			_, err := s.RecordLoginFailure(t.Context(), "alice", t0, window)
			must(t, err)
		}
		// Exactly one window later still counts; a nanosecond more does not.
		got, err := s.RecordLoginFailure(t.Context(), "alice", t0.Add(window), window)
		must(t, err)
		if got.Failures != 4 {
			t.Fatalf("failure exactly one window later: count %d, want 4", got.Failures)
		}
		later := t0.Add(2*window + time.Nanosecond)
		got, err = s.RecordLoginFailure(t.Context(), "alice", later, window)
		must(t, err)
		equal(t, "throttle", storage.Throttle{Key: "alice", Failures: 1, LastFailure: later}, got)
	}},
	{"keys are counted apart", func(t *testing.T, s storage.Storage) {
		_, err := s.RecordLoginFailure(t.Context(), "alice", t0, time.Hour)
		must(t, err)
		got, err := s.RecordLoginFailure(t.Context(), "10.0.0.1", t0, time.Hour)
		must(t, err)
		if got.Failures != 1 {
			t.Fatalf("a second key starts at %d failures, want 1", got.Failures)
		}
	}},
	{"a reset forgets the failures", func(t *testing.T, s storage.Storage) {
		_, err := s.RecordLoginFailure(t.Context(), "alice", t0, time.Hour)
		must(t, err)
		must(t, s.ResetThrottle(t.Context(), "alice"))
		_, err = s.GetThrottle(t.Context(), "alice")
		notFound(t, "get after reset", err)
		got, err := s.RecordLoginFailure(t.Context(), "alice", t0, time.Hour)
		must(t, err)
		if got.Failures != 1 {
			t.Fatalf("first failure after a reset: count %d, want 1", got.Failures)
		}
	}},
	{"resetting a key without failures is not an error", func(t *testing.T, s storage.Storage) {
		must(t, s.ResetThrottle(t.Context(), "nobody"))
	}},
	{"a key without failures is not found", func(t *testing.T, s storage.Storage) {
		_, err := s.GetThrottle(t.Context(), "nobody")
		notFound(t, "get", err)
	}},
}

var deviceCodeTests = []test{
	{"a created device code reads back by its user code with every field", func(t *testing.T, s storage.Storage) {
		want := deviceCode("a")
		want.LastPolledAt = t0.Add(time.Second)
		must(t, s.CreateDeviceCode(t.Context(), want))
		must(t, s.CreateDeviceCode(t.Context(), deviceCode("b")))
		got, err := s.GetDeviceCodeByUserCode(t.Context(), want.UserCodeHash)
		must(t, err)
		equal(t, "device code", want, got)
		_, err = s.GetDeviceCodeByUserCode(t.Context(), digest.Of("USERnope"))
		notFound(t, "unknown user code", err)
	}},
	{"a taken user code or device code refuses the new device code", func(t *testing.T, s storage.Storage) {
		first := deviceCode("a")
		must(t, s.CreateDeviceCode(t.Context(), first))
		sameUserCode := deviceCode("b")
		sameUserCode.UserCodeHash = first.UserCodeHash
		alreadyExists(t, "same user code", s.CreateDeviceCode(t.Context(), sameUserCode))
		sameDeviceCode := deviceCode("c")
		sameDeviceCode.DeviceCodeHash = first.DeviceCodeHash
		alreadyExists(t, "same device code", s.CreateDeviceCode(t.Context(), sameDeviceCode))
		got, err := s.GetDeviceCodeByUserCode(t.Context(), first.UserCodeHash)
		must(t, err)
		equal(t, "first device code", first, got)
	}},
	{"an approval is stored and returned", func(t *testing.T, s storage.Storage) {
		in := deviceCode("a")
		must(t, s.CreateDeviceCode(t.Context(), in))
		out, err := s.UpdateDeviceCode(t.Context(), in.DeviceCodeHash, func(d storage.DeviceCode) (storage.DeviceCode, error) {
			d.Status, d.SessionIDHash, d.Interval, d.LastPolledAt = storage.DeviceCodeApproved, digest.Of("session"), 10*time.Second, t0.Add(time.Minute)
			return d, nil
		})
		must(t, err)
		want := in
		want.Status, want.SessionIDHash, want.Interval, want.LastPolledAt = storage.DeviceCodeApproved, digest.Of("session"), 10*time.Second, t0.Add(time.Minute)
		equal(t, "returned device code", want, out)
		got, err := s.GetDeviceCodeByUserCode(t.Context(), in.UserCodeHash)
		must(t, err)
		equal(t, "stored device code", want, got)
	}},
	{"an update function error leaves the device code unchanged", func(t *testing.T, s storage.Storage) {
		in := deviceCode("a")
		must(t, s.CreateDeviceCode(t.Context(), in))
		_, err := s.UpdateDeviceCode(t.Context(), in.DeviceCodeHash, func(d storage.DeviceCode) (storage.DeviceCode, error) {
			d.Status = storage.DeviceCodeDenied
			return d, errRefused
		})
		refused(t, err)
		got, err := s.GetDeviceCodeByUserCode(t.Context(), in.UserCodeHash)
		must(t, err)
		equal(t, "device code", in, got)
	}},
	{"an update of a missing device code is not found", func(t *testing.T, s storage.Storage) {
		_, err := s.UpdateDeviceCode(t.Context(), digest.Of("device-nope"), func(d storage.DeviceCode) (storage.DeviceCode, error) {
			t.Error("the update function was called for a missing device code")
			return d, nil
		})
		notFound(t, "update", err)
	}},
	{"concurrent approvals of one device code see each other", func(t *testing.T, s storage.Storage) {
		in := deviceCode("a")
		must(t, s.CreateDeviceCode(t.Context(), in))
		var approved atomic.Int32
		concurrently(8, func(i int) {
			_, err := s.UpdateDeviceCode(t.Context(), in.DeviceCodeHash, func(d storage.DeviceCode) (storage.DeviceCode, error) {
				if d.Status != storage.DeviceCodePending {
					return d, errRefused
				}
				d.Status, d.SessionIDHash = storage.DeviceCodeApproved, digest.Of(fmt.Sprint("session-", i))
				return d, nil
			})
			if err == nil {
				approved.Add(1)
			} else if err != errRefused { //nolint:errorlint // the interface promises the error unchanged
				t.Errorf("approval %d: %v", i, err)
			}
		})
		if n := approved.Load(); n != 1 {
			t.Fatalf("%d concurrent approvals succeeded, want exactly 1", n)
		}
	}},
	{"garbage collection deletes device codes DeviceCodeRetention after they expired", func(t *testing.T, s storage.Storage) {
		now := t0.Add(time.Hour)
		old, live := deviceCode("old"), deviceCode("live")
		old.ExpiresAt = now.Add(-storage.DeviceCodeRetention)
		live.ExpiresAt = now.Add(-storage.DeviceCodeRetention + time.Nanosecond)
		must(t, s.CreateDeviceCode(t.Context(), old))
		must(t, s.CreateDeviceCode(t.Context(), live))
		n, err := s.GarbageCollect(t.Context(), now)
		must(t, err)
		if n != 1 {
			t.Fatalf("garbage collection reported %d rows, want 1", n)
		}
		_, err = s.GetDeviceCodeByUserCode(t.Context(), old.UserCodeHash)
		notFound(t, "collected device code", err)
		_, err = s.GetDeviceCodeByUserCode(t.Context(), live.UserCodeHash)
		must(t, err)
	}},
}

// bulkStore is what the SQL backends offer besides storage.Storage, for benchmarks that
// load a million records.
type bulkStore interface {
	CreateSessions(ctx context.Context, sessions []storage.Session) error
	CreateRefreshFamilies(ctx context.Context, families []storage.RefreshFamily) error
	CreateAccessTokens(ctx context.Context, tokens []storage.AccessToken) error
}

var bulkTests = []test{
	{"records written in bulk read back as the ones written one by one", func(t *testing.T, s storage.Storage) {
		b, ok := s.(bulkStore)
		if !ok {
			t.Skip("this backend has no bulk writes")
		}
		sessions := []storage.Session{session("bulk-1"), session("bulk-2")}
		families := []storage.RefreshFamily{family("bulk-1"), family("bulk-2")}
		tokens := []storage.AccessToken{accessToken("bulk-1"), accessToken("bulk-2")}
		must(t, b.CreateSessions(t.Context(), sessions))
		must(t, b.CreateRefreshFamilies(t.Context(), families))
		must(t, b.CreateAccessTokens(t.Context(), tokens))
		for i := range 2 {
			gotS, err := s.GetSession(t.Context(), sessions[i].IDHash)
			must(t, err)
			gotF, err := s.GetRefreshFamily(t.Context(), families[i].ID)
			must(t, err)
			gotT, err := s.GetAccessToken(t.Context(), tokens[i].TokenHash)
			must(t, err)
			if d := cmp.Diff(sessions[i], gotS) + cmp.Diff(families[i], gotF) + cmp.Diff(tokens[i], gotT); d != "" {
				t.Errorf("record %d (-written +read):\n%s", i, d)
			}
		}
	}},
	{"a batch with a taken key writes nothing", func(t *testing.T, s storage.Storage) {
		b, ok := s.(bulkStore)
		if !ok {
			t.Skip("this backend has no bulk writes")
		}
		must(t, s.CreateSession(t.Context(), session("taken")))
		err := b.CreateSessions(t.Context(), []storage.Session{session("new"), session("taken")})
		if !errors.Is(err, storage.ErrAlreadyExists) {
			t.Fatalf("err = %v, want ErrAlreadyExists", err)
		}
		if _, err := s.GetSession(t.Context(), session("new").IDHash); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the batch's other session: err = %v, want ErrNotFound", err)
		}
	}},
}

var healthTests = []test{
	{"an open store answers a ping, also while it holds rows", func(t *testing.T, s storage.Storage) {
		must(t, s.Ping(t.Context()))
		must(t, s.CreateSession(t.Context(), session("a")))
		must(t, s.Ping(t.Context()))
	}},
	{"a ping whose context has ended fails", func(t *testing.T, s storage.Storage) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := s.Ping(ctx); err == nil {
			t.Error("Ping with a cancelled context succeeded")
		}
	}},
}

var gcTests = []test{
	{"garbage collection deletes a backlog of several batches, and nothing alive", func(t *testing.T, s storage.Storage) {
		b, ok := s.(bulkStore)
		if !ok {
			t.Skip("this backend has no bulk writes to store a backlog with")
		}
		now := t0.Add(time.Hour)
		const backlog = 2500 // more than two of GarbageCollect's batches
		tokens := make([]storage.AccessToken, 0, backlog+1)
		for i := range backlog + 1 {
			tok := accessToken(fmt.Sprint("backlog-", i))
			tok.ExpiresAt = now
			if i == backlog {
				tok.ExpiresAt = now.Add(time.Nanosecond)
			}
			tokens = append(tokens, tok)
		}
		must(t, b.CreateAccessTokens(t.Context(), tokens))
		n, err := s.GarbageCollect(t.Context(), now)
		must(t, err)
		if n != backlog {
			t.Errorf("GarbageCollect deleted %d rows, want %d", n, backlog)
		}
		if _, err := s.GetAccessToken(t.Context(), tokens[backlog].TokenHash); err != nil {
			t.Errorf("the live token: %v", err)
		}
		if _, err := s.GetAccessToken(t.Context(), tokens[backlog-1].TokenHash); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("an expired token: err = %v, want ErrNotFound", err)
		}
	}},
	{"garbage collection deletes exactly what expired", func(t *testing.T, s storage.Storage) {
		now := t0.Add(time.Hour)
		// Expiring exactly now counts as expired, as in ListExpiredSessions.
		old, live := now, now.Add(time.Nanosecond)

		oldSession, liveSession := session("old"), session("live")
		oldSession.ExpiresAt, liveSession.ExpiresAt = old, live
		oldToken, liveToken := accessToken("old"), accessToken("live")
		oldToken.ExpiresAt, liveToken.ExpiresAt = old, live
		oldFamily, liveFamily := family("old"), family("live")
		oldFamily.ExpiresAt, liveFamily.ExpiresAt = old, live
		for _, x := range []storage.Session{oldSession, liveSession} {
			must(t, s.CreateSession(t.Context(), x))
		}
		// A redemption record stays CodeRedemptionRetention after its code expired, for
		// replicas whose clocks run behind; its token outlives both here.
		codeTokens := map[time.Time]storage.AccessToken{}
		for name, expires := range map[string]time.Time{"old": old, "live": live} {
			tok := accessToken("code-token-" + name)
			tok.ExpiresAt = live.Add(time.Hour)
			codeTokens[expires] = tok
			redemption := storage.CodeRedemption{CodeHash: digest.Of("code-" + name), SessionIDHash: liveSession.IDHash,
				ExpiresAt: expires.Add(-storage.CodeRedemptionRetention)}
			must(t, s.RedeemCode(t.Context(), redemption, issuing(tok, nil, nil)))
		}
		for _, x := range []storage.AccessToken{oldToken, liveToken} {
			must(t, s.CreateAccessToken(t.Context(), x))
		}
		for _, x := range []storage.RefreshFamily{oldFamily, liveFamily} {
			must(t, s.CreateRefreshFamily(t.Context(), x))
		}
		_, err := s.RecordLoginFailure(t.Context(), "stale", now.Add(-storage.ThrottleRetention), time.Minute)
		must(t, err)
		_, err = s.RecordLoginFailure(t.Context(), "recent", now.Add(-storage.ThrottleRetention+time.Second), time.Minute)
		must(t, err)
		must(t, s.CreateUser(t.Context(), user("alice")))
		for key, expires := range map[string]time.Time{"used-old": old, "used-live": live} {
			_, err := s.UseOnce(t.Context(), key, old.Add(-time.Hour), expires)
			must(t, err)
		}

		n, err := s.GarbageCollect(t.Context(), now)
		must(t, err)
		if n != 5 {
			t.Fatalf("garbage collection reported %d rows, want 5", n)
		}
		if first, err := s.UseOnce(t.Context(), "used-live", now, live); err != nil || first {
			t.Fatalf("a live single-use record after collection: first %v, err %v", first, err)
		}

		// Sessions end through RevokeSessions, announced by the server, never here.
		_, err = s.GetSession(t.Context(), oldSession.IDHash)
		must(t, err)
		_, err = s.GetSession(t.Context(), liveSession.IDHash)
		must(t, err)
		_, err = s.GetAccessToken(t.Context(), oldToken.TokenHash)
		notFound(t, "expired access token", err)
		_, err = s.GetAccessToken(t.Context(), liveToken.TokenHash)
		must(t, err)
		_, err = s.GetRefreshFamily(t.Context(), oldFamily.ID)
		notFound(t, "expired family", err)
		_, err = s.GetRefreshFamily(t.Context(), liveFamily.ID)
		must(t, err)
		_, err = s.GetThrottle(t.Context(), "stale")
		notFound(t, "stale throttle", err)
		_, err = s.GetThrottle(t.Context(), "recent")
		must(t, err)
		_, err = s.GetUser(t.Context(), "db", "alice")
		must(t, err)

		n, err = s.GarbageCollect(t.Context(), now)
		must(t, err)
		if n != 0 {
			t.Fatalf("a second collection reported %d rows, want 0", n)
		}

		notFound(t, "revoke by an expired code", s.RevokeByCode(t.Context(), digest.Of("code-old")))
		tokenGone(t, s, codeTokens[old], false)
		must(t, s.RevokeByCode(t.Context(), digest.Of("code-live")))
		tokenGone(t, s, codeTokens[live], true)
	}},
	{"a session without an expiry counts as expired", func(t *testing.T, s storage.Storage) {
		x := session("a")
		x.ExpiresAt = time.Time{}
		must(t, s.CreateSession(t.Context(), x))
		listed, err := s.ListExpiredSessions(t.Context(), t0, 10)
		must(t, err)
		equal(t, "expired sessions", []storage.Session{x}, listed)
	}},
	{"garbage collection leaves expired sessions to be ended", func(t *testing.T, s storage.Storage) {
		x := session("a")
		x.ExpiresAt = time.Time{}
		must(t, s.CreateSession(t.Context(), x))
		n, err := s.GarbageCollect(t.Context(), t0.Add(time.Hour))
		must(t, err)
		if n != 0 {
			t.Fatalf("garbage collection reported %d rows, want 0", n)
		}
		if _, err := s.GetSession(t.Context(), x.IDHash); err != nil {
			t.Fatalf("garbage collection deleted an expired session nobody ended: %v", err)
		}
	}},
}

// concurrently runs fn n times at once, from n goroutines released together.
func concurrently(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			fn(i)
		})
	}
	start.Done()
	done.Wait()
}

var concurrencyTests = []test{
	{"exactly one of many concurrent rotations of a refresh token wins", func(t *testing.T, s storage.Storage) {
		f := family("f")
		must(t, s.CreateRefreshFamily(t.Context(), f))
		const generations, racers = 5, 20
		for g := range generations {
			// Every racer presents the token it read, as a client retrying a refresh would;
			// the rotation may only succeed for the one that still finds it current.
			seen, err := s.GetRefreshFamily(t.Context(), f.ID)
			must(t, err)
			var wins atomic.Int32
			errs := make(chan error, racers)
			concurrently(racers, func(i int) {
				tok := accessToken(fmt.Sprintf("gen-%d-racer-%d", g, i))
				_, err := s.RotateRefreshFamily(t.Context(), f.ID, func(x storage.RefreshFamily) (storage.RefreshFamily, storage.AccessToken, error) {
					if x.CurrentHash != seen.CurrentHash {
						return x, tok, errRefused
					}
					x.PreviousHash, x.CurrentHash = x.CurrentHash, digest.Of(fmt.Sprintf("gen-%d-racer-%d", g, i))
					return x, tok, nil
				})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, errRefused):
					errs <- err
				}
			})
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if w := wins.Load(); w != 1 {
				t.Fatalf("generation %d: %d rotations succeeded, want exactly 1", g, w)
			}
			now, err := s.GetRefreshFamily(t.Context(), f.ID)
			must(t, err)
			if now.PreviousHash != seen.CurrentHash {
				t.Fatalf("generation %d: previous hash is not the token all racers presented", g)
			}
		}
	}},
	{"exactly one of many concurrent redemptions of a code wins and revoking by the code takes what it issued", func(t *testing.T, s storage.Storage) {
		c := storedCode(t, s)
		var wins atomic.Int32
		winner := make(chan int, 1)
		concurrently(20, func(i int) {
			tok, fam := accessToken(fmt.Sprint("t-", i)), family(fmt.Sprint("fam-", i))
			tok.RefreshFamilyID = fam.ID
			switch err := s.RedeemCode(t.Context(), c, issuing(tok, &fam, nil)); {
			case err == nil:
				wins.Add(1)
				winner <- i
			case !errors.Is(err, storage.ErrAlreadyExists):
				t.Error(err)
			}
		})
		if w := wins.Load(); w != 1 {
			t.Fatalf("%d redemptions succeeded, want exactly 1", w)
		}
		i := <-winner
		for j := range 20 {
			tokenGone(t, s, accessToken(fmt.Sprint("t-", j)), j != i)
		}
		must(t, s.RevokeByCode(t.Context(), c.CodeHash))
		familyRevoked(t, s, fmt.Sprint("fam-", i), true)
		tokenGone(t, s, accessToken(fmt.Sprint("t-", i)), true)
	}},
	{"no concurrent session update is lost", func(t *testing.T, s storage.Storage) {
		x := session("a")
		x.Clients = nil
		must(t, s.CreateSession(t.Context(), x))
		const n = 200
		concurrently(n, func(i int) {
			_, err := s.UpdateSession(t.Context(), x.IDHash, func(cur storage.Session) (storage.Session, error) {
				cur.Clients = append(cur.Clients, fmt.Sprintf("client-%03d", i))
				return cur, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
		got, err := s.GetSession(t.Context(), x.IDHash)
		must(t, err)
		if len(got.Clients) != n {
			t.Fatalf("after %d concurrent updates the session lists %d clients", n, len(got.Clients))
		}
		if !slices.IsSorted(got.Clients) {
			t.Fatal("clients are not sorted")
		}
	}},
	{"no concurrent login failure goes uncounted", func(t *testing.T, s storage.Storage) {
		const n = 200
		concurrently(n, func(int) {
			if _, err := s.RecordLoginFailure(t.Context(), "alice", t0, time.Hour); err != nil {
				t.Error(err)
			}
		})
		got, err := s.GetThrottle(t.Context(), "alice")
		must(t, err)
		if got.Failures != n {
			t.Fatalf("after %d concurrent failures the count is %d", n, got.Failures)
		}
	}},
}
