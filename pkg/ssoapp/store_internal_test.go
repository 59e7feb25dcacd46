package ssoapp

import (
	"testing"
	"time"
)

func TestAFullStoreOfPendingLogins(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	tests := []struct {
		name       string
		store      *store[int]
		wantNewID  bool
		wantOldest bool // the first entry is still there
	}{
		{name: "an evicting store drops the oldest pending login for a new one", store: newEvictingStore[int](3, clock), wantNewID: true, wantOldest: false},
		{name: "a plain store refuses a new entry", store: newStore[int](3, clock), wantNewID: false, wantOldest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.store.add(1, time.Minute)
			now = now.Add(time.Second)
			tt.store.add(2, time.Minute)
			tt.store.add(3, time.Minute)
			id := tt.store.add(4, time.Minute)
			if (id != "") != tt.wantNewID {
				t.Fatalf("add to a full store returned %q", id)
			}
			if _, ok := tt.store.get(first); ok != tt.wantOldest {
				t.Fatalf("oldest entry present = %v, want %v", ok, tt.wantOldest)
			}
			if len(tt.store.items) != 3 {
				t.Fatalf("%d entries, want the limit of 3", len(tt.store.items))
			}
		})
	}
}
