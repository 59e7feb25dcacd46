package clients

import (
	"errors"
	"sync/atomic"
	"testing"

	hallpassv1 "github.com/hallpass/hallpass/api/v1alpha1"
)

func TestEveryIndexIsWrittenOnce(t *testing.T) {
	var seen [100]atomic.Int32
	if err := Parallel(len(seen), 7, func(i int) error { seen[i].Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("index %d written %d times", i, n)
		}
	}
}

func TestAFailedWriteStopsTheRestAndIsReturned(t *testing.T) {
	boom := errors.New("boom")
	var started atomic.Int32
	err := Parallel(10000, 2, func(i int) error {
		started.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("error %v, want %v", err, boom)
	}
	if n := started.Load(); n > 100 {
		t.Errorf("%d writes started after the failure, want it to stop early", n)
	}
}

func TestClientsAreSpreadOverTheNamespacesWithHostsOfTheirOwn(t *testing.T) {
	a, b := New(1, hallpassv1.ServerReference{Name: "s"}), New(1+Namespaces, hallpassv1.ServerReference{Name: "s"})
	if a.Namespace != b.Namespace || a.Name == b.Name {
		t.Errorf("clients 1 and %d: %s/%s and %s/%s, want one namespace and two names", 1+Namespaces, a.Namespace, a.Name, b.Namespace, b.Name)
	}
	if a.Spec.RedirectURIs[0] == b.Spec.RedirectURIs[0] {
		t.Errorf("two clients share the redirect URI %s", a.Spec.RedirectURIs[0])
	}
}
