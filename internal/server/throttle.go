package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/storage"
)

// Login throttling: a username or client IP gets some free failures within the window;
// after that each further failure doubles the wait before the next attempt is even
// checked, up to maxThrottleDelay. The IP budget is larger because many users may share
// one address.
const (
	throttleWindow   = 15 * time.Minute
	freeUserFailures = 5
	freeIPFailures   = 20
	maxThrottleDelay = 15 * time.Minute
)

type throttleKey struct {
	key  string
	free int
}

func loginThrottleKeys(connection, username, ip string) []throttleKey {
	return []throttleKey{
		{key: "user:" + connection + ":" + strings.ToLower(username), free: freeUserFailures},
		{key: "ip:" + ip, free: freeIPFailures},
	}
}

func throttleDelay(failures, free int) time.Duration {
	if failures < free {
		return 0
	}
	shift := failures - free
	if shift > 20 {
		return maxThrottleDelay
	}
	return min(time.Second<<shift, maxThrottleDelay)
}

// throttleWait returns how long the caller must wait before an attempt is checked.
func (s *Server) throttleWait(ctx context.Context, keys []throttleKey) (time.Duration, error) {
	now := s.now()
	var wait time.Duration
	for _, k := range keys {
		t, err := s.store.GetThrottle(ctx, k.key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read login throttle: %w", err)
		}
		if now.Sub(t.LastFailure) > throttleWindow {
			continue
		}
		wait = max(wait, t.LastFailure.Add(throttleDelay(t.Failures, k.free)).Sub(now))
	}
	return wait, nil
}

func (s *Server) recordLoginFailure(ctx context.Context, keys []throttleKey) error {
	for _, k := range keys {
		if _, err := s.store.RecordLoginFailure(ctx, k.key, s.now(), throttleWindow); err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
	}
	return nil
}

// clientIP is the address the request came from. Behind a reverse proxy it is the
// right-most X-Forwarded-For entry, the one the proxy nearest to us appended, and only when
// the server was told to trust it.
func (s *Server) clientIP(r *http.Request) string {
	if s.trustForwardedFor {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
