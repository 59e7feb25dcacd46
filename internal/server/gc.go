package server

import (
	"context"
	"time"
)

// RunGarbageCollection deletes expired sessions, codes, tokens and throttle rows every
// interval until ctx ends. Every replica may run it: the deletes are idempotent.
func (s *Server) RunGarbageCollection(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.store.GarbageCollect(ctx, s.now())
		if err != nil {
			s.logger.ErrorContext(ctx, "garbage collection failed", "err", err)
			continue
		}
		if n > 0 {
			s.logger.InfoContext(ctx, "garbage collected expired rows", "rows", n)
		}
	}
}
