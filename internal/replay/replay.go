// Package replay remembers the identifiers of one-time messages (SAML assertion IDs, the
// jti of logout tokens) until they expire, so that a second presentation is refused.
package replay

import (
	"sync"
	"time"
)

// Cache is safe for concurrent use. It is bounded: when full of live entries, it forgets
// the one closest to expiring, which an attacker would have the least time to replay.
type Cache struct {
	mu    sync.Mutex
	limit int
	seen  map[string]time.Time
}

// New returns a cache of at most limit identifiers.
func New(limit int) *Cache { return &Cache{limit: limit, seen: map[string]time.Time{}} }

// Add records id until the given time and reports false if it was already there.
func (c *Cache) Add(id string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[id]; ok && now.Before(exp) {
		return false
	}
	if len(c.seen) >= c.limit {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
	}
	if len(c.seen) >= c.limit {
		var oldest string
		var oldestExp time.Time
		for k, exp := range c.seen {
			if oldest == "" || exp.Before(oldestExp) {
				oldest, oldestExp = k, exp
			}
		}
		delete(c.seen, oldest)
	}
	c.seen[id] = until
	return true
}
