// Package testclock is the injectable time source of tests that cross lifetimes (sessions,
// tokens, key rotation, overlaps) without waiting.
package testclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads now until it is advanced.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now is the clock's time; pass the method value as a component's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
