package ssoapp

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// maxSessions bounds the in-memory session store, so that memory stays bounded.
const maxSessions = 100_000

// store is an in-memory map from random IDs to values that expire. One process holds
// every session of the application; an application with several replicas would keep
// sessions in a shared store instead.
type store[V any] struct {
	mu    sync.Mutex
	items map[string]entry[V]
	limit int
	now   func() time.Time
}

type entry[V any] struct {
	value   V
	expires time.Time
}

func newStore[V any](limit int, now func() time.Time) *store[V] {
	return &store[V]{items: map[string]entry[V]{}, limit: limit, now: now}
}

// add stores v under a new random ID and returns the ID, or "" when the store is full.
func (s *store[V]) add(v V, ttl time.Duration) string {
	id := randomID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) >= s.limit {
		s.expireLocked()
		if len(s.items) >= s.limit {
			return ""
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
