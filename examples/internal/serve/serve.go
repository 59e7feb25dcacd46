// Package serve runs an example app's HTTP server.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Run listens on addr, logs "serving" with attrs once the address is bound (so a port that
// is taken is one error, never a "serving" line first), and serves handler until ctx ends.
func Run(ctx context.Context, logger *slog.Logger, addr string, handler http.Handler, attrs ...any) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(l) }()
	logger.Info("serving", append(attrs, "listen", l.Addr().String())...)
	select {
	case err := <-errs:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
