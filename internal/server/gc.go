package server

import (
	"context"
	"fmt"
	"time"
)

// The sweeper ends expired sessions through the path of a logout, so that their clients get
// a logout token (Auth0's "session-expired" initiator): a session that simply vanished from
// storage would leave every application's own session running. Garbage collection therefore
// never deletes a session, and deletes everything else whatever the sweeper has left to do
// (ADR 0027).

// sweepBatch is how many expired sessions one storage transaction ends.
const sweepBatch = 100

// GarbageReport is what one CollectGarbage did.
type GarbageReport struct {
	// SessionsEnded is how many expired sessions it ended (and announced).
	SessionsEnded int
	// SessionsLeft is true when its time was up before every expired session had ended:
	// the next run goes on with them.
	SessionsLeft bool
	// RowsDeleted is how many expired codes, tokens, families and other rows it deleted.
	RowsDeleted int64
}

// RunGarbageCollection runs CollectGarbage every interval until ctx ends, each run ending
// expired sessions for at most half the interval. Every replica may run it: ending a session
// and the deletes are idempotent, and only the replica that actually ends a session
// announces it.
func (s *Server) RunGarbageCollection(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.CollectGarbage(ctx, interval/2)
	}
}

// CollectGarbage ends the sessions that have expired, in batches, for about sweepFor (at
// least one batch, and the announcements of the last one), announcing each by back-channel
// logout; then it deletes expired codes, tokens and other rows, however many expired
// sessions are left for the next run.
func (s *Server) CollectGarbage(ctx context.Context, sweepFor time.Duration) GarbageReport {
	now := s.now()
	var rep GarbageReport
	if !s.backchannel.hold() {
		return rep // shutting down: the next start goes on
	}
	// Shutdown waits for the sweep: the sessions of a batch end in storage at once, and each
	// must still be announced.
	var err error
	rep.SessionsEnded, rep.SessionsLeft, err = s.endExpiredSessions(ctx, now, time.Now().Add(sweepFor))
	s.backchannel.done()
	if rep.SessionsEnded > 0 {
		s.logger.InfoContext(ctx, "expired sessions ended", "sessions", rep.SessionsEnded)
	}
	switch {
	case err != nil:
		s.logger.ErrorContext(ctx, "ending expired sessions failed; the next run tries again", "err", err)
	case rep.SessionsLeft:
		s.logger.WarnContext(ctx, "more expired sessions than one run ends in its time; the next run goes on", "ended", rep.SessionsEnded)
	}
	rep.RowsDeleted, err = s.store.GarbageCollect(ctx, now)
	if err != nil {
		s.logger.ErrorContext(ctx, "garbage collection failed", "err", err)
	}
	if rep.RowsDeleted > 0 {
		s.logger.InfoContext(ctx, "garbage collected expired rows", "rows", rep.RowsDeleted)
	}
	return rep
}

// endExpiredSessions ends the sessions that expired by now, a batch per storage transaction,
// until none is left (left false) or the real time until has come (left true).
func (s *Server) endExpiredSessions(ctx context.Context, now, until time.Time) (ended int, left bool, err error) {
	st := s.state.Load()
	for {
		batch, err := s.store.ListExpiredSessions(ctx, now, sweepBatch)
		if err != nil {
			return ended, true, fmt.Errorf("list expired sessions: %w", err)
		}
		n, err := s.terminateSessions(ctx, st, batch, endExpired)
		ended += n
		if err != nil {
			return ended, true, err
		}
		if len(batch) < sweepBatch {
			return ended, false, nil
		}
		if !time.Now().Before(until) {
			return ended, true, nil
		}
		select {
		case <-ctx.Done(): // shutting down: the next start goes on
			return ended, true, nil
		default:
		}
	}
}
