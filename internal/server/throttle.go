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
//
// The user key is counted before the password is checked (reserveAttempt), atomically in
// storage, and reset after a success; so parallel attempts cannot all pass one check: each
// takes a numbered slot, and only the slots within the budget (or the one attempt allowed
// after a delay) are verified. The IP key is read before and counted after a failure only,
// so the successful logins of many users behind one address do not use it up; its
// overshoot under concurrency is bounded by maxConcurrentVerifications.
const (
	throttleWindow   = 15 * time.Minute
	freeUserFailures = 5
	freeIPFailures   = 20
	maxThrottleDelay = 15 * time.Minute
	// freeSignups is how many sign-ups one client IP may attempt within the window.
	freeSignups = 10
)

type throttleKey struct {
	key  string
	free int
	// reserve counts every attempt before it is checked; the count is reset by a success.
	reserve bool
}

func loginThrottleKeys(connection, username, ip string) []throttleKey {
	return []throttleKey{
		{key: "user:" + connection + ":" + strings.ToLower(username), free: freeUserFailures, reserve: true},
		{key: "ip:" + ip, free: freeIPFailures},
	}
}

func signupThrottleKeys(ip string) []throttleKey {
	return []throttleKey{{key: "signup-ip:" + ip, free: freeSignups, reserve: true}}
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

// throttleWait returns how long the caller must wait before an attempt is checked, and
// the failures within the window of each key.
func (s *Server) throttleWait(ctx context.Context, keys []throttleKey) (time.Duration, []int, error) {
	now := s.now()
	var wait time.Duration
	failures := make([]int, len(keys))
	for i, k := range keys {
		t, err := s.store.GetThrottle(ctx, k.key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, nil, fmt.Errorf("read login throttle: %w", err)
		}
		if now.Sub(t.LastFailure) > throttleWindow {
			continue
		}
		failures[i] = t.Failures
		wait = max(wait, t.LastFailure.Add(throttleDelay(t.Failures, k.free)).Sub(now))
	}
	return wait, failures, nil
}

// reserveAttempt counts the attempt on the reserve keys before it is checked. before is
// what throttleWait read. ok is false when a concurrent attempt took the slot: beyond the
// free budget only the attempt that comes right after the read one may go on.
func (s *Server) reserveAttempt(ctx context.Context, keys []throttleKey, before []int) (bool, error) {
	ok := true
	for i, k := range keys {
		if !k.reserve {
			continue
		}
		t, err := s.store.RecordLoginFailure(ctx, k.key, s.now(), throttleWindow)
		if err != nil {
			return false, fmt.Errorf("record login attempt: %w", err)
		}
		if t.Failures > k.free && t.Failures != before[i]+1 {
			ok = false
		}
	}
	return ok, nil
}

// recordLoginFailure counts a failure on the keys that were not counted beforehand.
func (s *Server) recordLoginFailure(ctx context.Context, keys []throttleKey) error {
	for _, k := range keys {
		if k.reserve {
			continue
		}
		if _, err := s.store.RecordLoginFailure(ctx, k.key, s.now(), throttleWindow); err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
	}
	return nil
}

// resetThrottle clears the reserve keys after a successful login.
func (s *Server) resetThrottle(ctx context.Context, keys []throttleKey) error {
	for _, k := range keys {
		if !k.reserve {
			continue
		}
		if err := s.store.ResetThrottle(ctx, k.key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("reset login throttle: %w", err)
		}
	}
	return nil
}

// Password hashing (argon2id, 19 MiB each) is bounded server-wide: at most
// maxConcurrentVerifications run at once, and a request waits at most verifySlotWait for
// a slot before it is answered 503 with Retry-After, so a burst of logins cannot exceed
// the pod's memory limit nor build an unbounded queue.
const (
	maxConcurrentVerifications = 4
	verifySlotWait             = 250 * time.Millisecond
	busyRetryAfter             = "1"
)

// acquireVerification takes a password-hashing slot; ok is false when none freed up in
// time. The caller must call release when ok.
func (s *Server) acquireVerification(ctx context.Context) (release func(), ok bool) {
	release = func() { <-s.verifySlots }
	select {
	case s.verifySlots <- struct{}{}:
		return release, true
	default:
	}
	t := time.NewTimer(verifySlotWait)
	defer t.Stop()
	select {
	case s.verifySlots <- struct{}{}:
		return release, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
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
