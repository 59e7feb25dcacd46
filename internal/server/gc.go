package server

import (
	"context"
	"fmt"
	"time"
)

// The sweeper ends expired sessions before garbage collection deletes them, so that their
// clients get a logout token (Auth0's "session-expired" initiator): a session that simply
// vanished from storage would leave every application's own session running.
const (
	// sweepBatch is how many expired sessions one storage query returns.
	sweepBatch = 100
	// sweepMaxBatches bounds one sweep; what is left waits for the next interval, and
	// garbage collection waits with it so that no session is deleted unannounced.
	sweepMaxBatches = 50
)

// RunGarbageCollection ends expired sessions (announcing them by back-channel logout) and
// then deletes expired codes, tokens, sessions and throttle rows, every interval until ctx
// ends. Every replica may run it: ending a session and the deletes are idempotent, and only
// the replica that actually ends a session announces it.
func (s *Server) RunGarbageCollection(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.collectGarbage(ctx)
	}
}

func (s *Server) collectGarbage(ctx context.Context) {
	now := s.now()
	ended, drained, err := s.endExpiredSessions(ctx, now)
	if ended > 0 {
		s.logger.InfoContext(ctx, "expired sessions ended", "sessions", ended)
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "ending expired sessions failed; garbage collection waits for the next run", "err", err)
		return
	}
	if !drained {
		s.logger.WarnContext(ctx, "more expired sessions than one sweep ends; garbage collection waits for the next run", "ended", ended)
		return
	}
	n, err := s.store.GarbageCollect(ctx, now)
	if err != nil {
		s.logger.ErrorContext(ctx, "garbage collection failed", "err", err)
		return
	}
	if n > 0 {
		s.logger.InfoContext(ctx, "garbage collected expired rows", "rows", n)
	}
}

// endExpiredSessions ends, in bounded batches, the sessions that expired by now. drained
// is true when none is left, so that GarbageCollect(now) deletes no session unannounced.
func (s *Server) endExpiredSessions(ctx context.Context, now time.Time) (ended int, drained bool, err error) {
	st := s.state.Load()
	for range sweepMaxBatches {
		batch, err := s.store.ListExpiredSessions(ctx, now, sweepBatch)
		if err != nil {
			return ended, false, fmt.Errorf("list expired sessions: %w", err)
		}
		for _, sess := range batch {
			ok, err := s.terminateSession(ctx, st, sess, endExpired)
			if err != nil {
				return ended, false, err
			}
			if ok {
				ended++
			}
		}
		if len(batch) < sweepBatch {
			return ended, true, nil
		}
	}
	return ended, false, nil
}
