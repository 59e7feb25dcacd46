package storage

import (
	"context"
	"sync"
	"time"
)

// Defaults of Health (ADR 0022).
const (
	// DefaultHealthInterval is the time between two probes of the database.
	DefaultHealthInterval = 5 * time.Second
	// DefaultUnreadyAfter is how long storage must fail on every probe before the server
	// reports itself not ready: a blip shorter than this (a failover, a restart of the
	// database) leaves every replica in its Service.
	DefaultUnreadyAfter = 30 * time.Second
	// healthProbeTimeout bounds one probe, so an unanswered probe counts as a failure.
	healthProbeTimeout = 3 * time.Second
)

// Pinger is what Health probes: a round trip to the database (Storage.Ping).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Health probes storage in the background and answers readiness from the last result, so
// that a readiness probe never waits for, nor adds load to, the database. Storage is
// unhealthy once every probe has failed for UnreadyAfter, and healthy again at the first
// probe that succeeds (ADR 0022).
type Health struct {
	store Pinger
	// Interval is the time between probes; UnreadyAfter the grace before failures make the
	// server unready (zero: never). Set them before Run.
	Interval, UnreadyAfter time.Duration
	// OnChange, when set, is called (from Run's goroutine) when storage goes from answering
	// to failing (err set) or back (err nil), for logs and metrics.
	OnChange func(up bool, err error)
	// Now is the clock (time.Now; tests set theirs).
	Now func() time.Time

	mu sync.Mutex
	// failingSince is the time of the first failed probe after the last success; zero while
	// storage answers.
	failingSince time.Time
	lastErr      error
}

// NewHealth returns a Health of store with the default interval and grace.
func NewHealth(store Pinger) *Health {
	return &Health{store: store, Interval: DefaultHealthInterval, UnreadyAfter: DefaultUnreadyAfter, Now: time.Now}
}

// Run probes until ctx ends.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		h.Probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Probe pings storage once and records the result.
func (h *Health) Probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, healthProbeTimeout)
	err := h.store.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not storage's failure
	}
	h.record(err, h.Now())
}

// record updates the state with one probe's result at now.
func (h *Health) record(err error, now time.Time) {
	h.mu.Lock()
	wasUp := h.failingSince.IsZero()
	switch {
	case err == nil:
		h.failingSince, h.lastErr = time.Time{}, nil
	case wasUp:
		h.failingSince, h.lastErr = now, err
	default:
		h.lastErr = err
	}
	up := h.failingSince.IsZero()
	h.mu.Unlock()
	if up != wasUp && h.OnChange != nil {
		h.OnChange(up, err)
	}
}

// Ready reports whether storage counts as available: it answered the last probe, or has
// failed for less than UnreadyAfter. When not, err is the last probe's error.
func (h *Health) Ready() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failingSince.IsZero() || h.UnreadyAfter <= 0 || h.Now().Sub(h.failingSince) < h.UnreadyAfter {
		return true, nil
	}
	return false, h.lastErr
}
