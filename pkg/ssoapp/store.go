package ssoapp

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// Bounds of the in-memory stores, so that a flood of sign-in attempts cannot exhaust memory.
const (
	maxSessions = 100_000
	maxLogins   = 10_000
)

// store is an in-memory map from random IDs to values that expire. One process holds
// every session of the application; an application with several replicas would keep
// sessions in a shared store instead.
type store[V any] struct {
	mu    sync.Mutex
	items map[string]entry[V]
	limit int
	now   func() time.Time
	// evictOldest makes a full store drop the entry closest to expiry instead of refusing
	// a new one, so anonymous requests filling it cannot block new sign-ins.
	evictOldest bool
}

type entry[V any] struct {
	value   V
	expires time.Time
}

func newStore[V any](limit int, now func() time.Time) *store[V] {
	return &store[V]{items: map[string]entry[V]{}, limit: limit, now: now}
}

// newEvictingStore is a store that, when full, drops the entry closest to expiry. Pending
// logins use it: a flood of started sign-ins then only pushes out the oldest pending ones
// (which a real user would restart), instead of refusing every new sign-in.
func newEvictingStore[V any](limit int, now func() time.Time) *store[V] {
	s := newStore[V](limit, now)
	s.evictOldest = true
	return s
}

// add stores v under a new random ID and returns the ID, or "" when the store is full
// (never for an evicting store).
func (s *store[V]) add(v V, ttl time.Duration) string {
	id := randomID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) >= s.limit {
		s.expireLocked()
		if len(s.items) >= s.limit && !s.evictOldest {
			return ""
		}
		for len(s.items) >= s.limit {
			s.evictOldestLocked()
		}
	}
	s.items[id] = entry[V]{value: v, expires: s.now().Add(ttl)}
	return id
}

func (s *store[V]) get(id string) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[id]
	if !ok || !s.now().Before(e.expires) {
		delete(s.items, id)
		var zero V
		return zero, false
	}
	return e.value, true
}

// take returns and removes the value: a login is finished at most once.
func (s *store[V]) take(id string) (V, bool) {
	v, ok := s.get(id)
	s.delete(id)
	return v, ok
}

func (s *store[V]) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, id)
}

// deleteWhere removes every value for which match is true and returns how many it removed.
func (s *store[V]) deleteWhere(match func(V) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, e := range s.items {
		if match(e.value) {
			delete(s.items, id)
			n++
		}
	}
	return n
}

func (s *store[V]) evictOldestLocked() {
	var oldest string
	var at time.Time
	for id, e := range s.items {
		if oldest == "" || e.expires.Before(at) {
			oldest, at = id, e.expires
		}
	}
	delete(s.items, oldest)
}

func (s *store[V]) expireLocked() {
	now := s.now()
	for id, e := range s.items {
		if !now.Before(e.expires) {
			delete(s.items, id)
		}
	}
}

// randomID is 256 bits from the system's CSPRNG, URL-safe.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
