package replay

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c := New(2)
	steps := []struct {
		name  string
		id    string
		until time.Time
		now   time.Time
		want  bool
	}{
		{"a first presentation is accepted", "a", t0.Add(time.Minute), t0, true},
		{"a second one before it expires is refused", "a", t0.Add(time.Minute), t0.Add(time.Second), false},
		{"another identifier is accepted", "b", t0.Add(2 * time.Minute), t0, true},
		{"a full cache forgets the identifier closest to expiring", "c", t0.Add(3 * time.Minute), t0.Add(2 * time.Second), true},
		{"so the forgotten one passes again", "a", t0.Add(time.Minute), t0.Add(3 * time.Second), true},
		{"the others are still refused", "c", t0.Add(3 * time.Minute), t0.Add(4 * time.Second), false},
		{"an expired identifier may be used again", "c", t0.Add(5 * time.Minute), t0.Add(3 * time.Minute), true},
	}
	for _, s := range steps {
		if got := c.Add(s.id, s.until, s.now); got != s.want {
			t.Fatalf("%s: Add(%q) = %v, want %v", s.name, s.id, got, s.want)
		}
	}
}
