package conformance

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

func factor(id, subject string) storage.Factor {
	return storage.Factor{
		ID: id, Connection: "db", Subject: subject, Type: storage.FactorTOTP, Name: "Phone " + id,
		Secret: []byte("JBSWY3DPEHPK3PXP"), LastStep: 0, CreatedAt: t0,
	}
}

// passkey is a WebAuthn factor of subject with a user handle of its own.
func passkey(id, subject string) storage.Factor {
	return storage.Factor{
		ID: id, Connection: "db", Subject: subject, Type: storage.FactorWebAuthn, Name: "Passkey " + id,
		Secret: []byte("cose public key " + id), CredentialID: []byte("credential " + id),
		UserHandle: []byte("handle of " + subject), Transports: []string{"internal", "hybrid"},
		CredentialFlags: 0x5d, CreatedAt: t0,
	}
}

var factorTests = []test{
	{"a passkey reads back with its credential ID, user handle, transports and flags", func(t *testing.T, s storage.Storage) {
		want := passkey("p1", "alice")
		must(t, s.CreateFactor(t.Context(), want))
		must(t, s.CreateFactor(t.Context(), factor("f1", "alice")))
		got, err := s.ListFactors(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "factors (same creation time: by ID)", []storage.Factor{factor("f1", "alice"), want}, got)
	}},
	{"a passkey sign-in finds only the user of its user handle", func(t *testing.T, s storage.Storage) {
		older, newer := passkey("p2", "alice"), passkey("p1", "alice")
		newer.CreatedAt = t0.Add(time.Hour)
		for _, f := range []storage.Factor{newer, older, passkey("p3", "bob"), factor("f1", "alice")} {
			must(t, s.CreateFactor(t.Context(), f))
		}
		got, err := s.ListFactorsByUserHandle(t.Context(), []byte("handle of alice"))
		must(t, err)
		equal(t, "alice's passkeys", []storage.Factor{older, newer}, got)
		for _, handle := range [][]byte{[]byte("handle of carol"), nil} {
			none, err := s.ListFactorsByUserHandle(t.Context(), handle)
			must(t, err)
			equal(t, "passkeys of an unknown handle", 0, len(none))
		}
	}},
	{"a credential ID is registered once across users", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), passkey("p1", "alice")))
		again := passkey("p2", "bob")
		again.CredentialID = []byte("credential p1")
		alreadyExists(t, "same credential for another user", s.CreateFactor(t.Context(), again))
	}},
	{"a passkey's signature counter only goes up", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), passkey("p1", "alice")))
		for _, tc := range []struct {
			counter  int64
			accepted bool
		}{{5, true}, {5, false}, {3, false}, {6, true}} {
			ok, err := s.UseFactorStep(t.Context(), "p1", tc.counter, t0)
			must(t, err)
			if ok != tc.accepted {
				t.Fatalf("counter %d: accepted = %v, want %v", tc.counter, ok, tc.accepted)
			}
		}
	}},
	{"a created factor reads back with every field", func(t *testing.T, s storage.Storage) {
		want := factor("f1", "alice")
		want.LastStep, want.LastUsedAt = 42, t0.Add(time.Second)
		must(t, s.CreateFactor(t.Context(), want))
		got, err := s.ListFactors(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "factors", []storage.Factor{want}, got)
	}},
	{"a factor ID is unique across users", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), factor("f1", "alice")))
		alreadyExists(t, "same ID for another user", s.CreateFactor(t.Context(), factor("f1", "bob")))
	}},
	{"a user's factors are listed oldest first and no one else's", func(t *testing.T, s storage.Storage) {
		older, newer := factor("f2", "alice"), factor("f1", "alice")
		newer.CreatedAt = t0.Add(time.Hour)
		other := factor("f3", "alice")
		other.Connection = "db2"
		for _, f := range []storage.Factor{newer, older, other, factor("f4", "bob")} {
			must(t, s.CreateFactor(t.Context(), f))
		}
		got, err := s.ListFactors(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "factors", []storage.Factor{older, newer}, got)
		none, err := s.ListFactors(t.Context(), "db", "carol")
		must(t, err)
		equal(t, "factors of a user without any", 0, len(none))
	}},
	{"a user removes their own factor and never another user's", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), factor("f1", "alice")))
		notFound(t, "removal by another user", s.DeleteFactor(t.Context(), "db", "bob", "f1"))
		notFound(t, "removal through another connection", s.DeleteFactor(t.Context(), "db2", "alice", "f1"))
		must(t, s.DeleteFactor(t.Context(), "db", "alice", "f1"))
		notFound(t, "second removal", s.DeleteFactor(t.Context(), "db", "alice", "f1"))
		got, err := s.ListFactors(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "factors after removal", 0, len(got))
	}},
	{"a time step is accepted once and never after a later one", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), factor("f1", "alice")))
		for _, tc := range []struct {
			step     int64
			accepted bool
		}{
			{100, true},
			{100, false}, // the same code again: a replay
			{99, false},  // an older code after a newer one
			{101, true},
		} {
			ok, err := s.UseFactorStep(t.Context(), "f1", tc.step, t0.Add(time.Duration(tc.step)*time.Second))
			must(t, err)
			if ok != tc.accepted {
				t.Fatalf("step %d: accepted = %v, want %v", tc.step, ok, tc.accepted)
			}
		}
		got, err := s.ListFactors(t.Context(), "db", "alice")
		must(t, err)
		if got[0].LastStep != 101 || !got[0].LastUsedAt.Equal(t0.Add(101*time.Second)) {
			t.Fatalf("factor after use: last step %d used at %s, want 101 at step 101's time", got[0].LastStep, got[0].LastUsedAt)
		}
		ok, err := s.UseFactorStep(t.Context(), "missing", 200, t0)
		must(t, err)
		if ok {
			t.Fatal("a missing factor accepted a step")
		}
	}},
	{"exactly one of many concurrent uses of a time step is accepted", func(t *testing.T, s storage.Storage) {
		must(t, s.CreateFactor(t.Context(), factor("f1", "alice")))
		var accepted atomic.Int32
		concurrently(20, func(int) {
			ok, err := s.UseFactorStep(t.Context(), "f1", 7, t0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				accepted.Add(1)
			}
		})
		if n := accepted.Load(); n != 1 {
			t.Fatalf("%d concurrent uses were accepted, want 1", n)
		}
	}},
}

var recoveryCodeTests = []test{
	{"each recovery code works once and only for its user", func(t *testing.T, s storage.Storage) {
		codes := []string{digest.Of("a"), digest.Of("b")}
		must(t, s.SetRecoveryCodes(t.Context(), "db", "alice", codes, t0))
		for _, tc := range []struct {
			subject, code string
			ok            bool
		}{
			{"bob", "a", false},
			{"alice", "c", false},
			{"alice", "a", true},
			{"alice", "a", false},
		} {
			ok, err := s.UseRecoveryCode(t.Context(), "db", tc.subject, digest.Of(tc.code))
			must(t, err)
			if ok != tc.ok {
				t.Fatalf("%s using %q: ok = %v, want %v", tc.subject, tc.code, ok, tc.ok)
			}
		}
		n, err := s.CountRecoveryCodes(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "codes left", 1, n)
	}},
	{"new recovery codes replace every old one", func(t *testing.T, s storage.Storage) {
		must(t, s.SetRecoveryCodes(t.Context(), "db", "alice", []string{digest.Of("a"), digest.Of("b")}, t0))
		must(t, s.SetRecoveryCodes(t.Context(), "db", "alice", []string{digest.Of("c")}, t0))
		ok, err := s.UseRecoveryCode(t.Context(), "db", "alice", digest.Of("a"))
		must(t, err)
		if ok {
			t.Fatal("an old recovery code still works")
		}
		n, err := s.CountRecoveryCodes(t.Context(), "db", "alice")
		must(t, err)
		equal(t, "codes", 1, n)
	}},
}

var enrolmentGraceTests = []test{
	{"a user's enrolment grace starts at the first ask and never again", func(t *testing.T, s storage.Storage) {
		for _, tc := range []struct {
			subject string
			now     time.Time
			want    time.Time
		}{
			{"alice", t0, t0},
			{"alice", t0.Add(48 * time.Hour), t0},
			{"bob", t0.Add(time.Hour), t0.Add(time.Hour)},
		} {
			got, err := s.StartEnrolmentGrace(t.Context(), "db", tc.subject, tc.now)
			must(t, err)
			if !got.Equal(tc.want) {
				t.Fatalf("%s asked at %v: grace started %v, want %v", tc.subject, tc.now, got, tc.want)
			}
		}
	}},
	{"concurrent first asks agree on one start", func(t *testing.T, s storage.Storage) {
		starts := make([]time.Time, 10)
		var wg sync.WaitGroup
		for i := range starts {
			wg.Go(func() {
				var err error
				starts[i], err = s.StartEnrolmentGrace(t.Context(), "db", "alice", t0.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, got := range starts {
			if !got.Equal(starts[0]) {
				t.Fatalf("starts differ: %v", starts)
			}
		}
	}},
}
