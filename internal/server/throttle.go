package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
	"github.com/hallpass/hallpass/internal/storage"
)

// Login throttling: each key gets some free failures within the window; after that each
// further failure doubles the wait before the next attempt is even checked, up to
// maxThrottleDelay. A password attempt is counted on three keys:
//
//   - the (user, client address) pair, 5 free failures: guessing one user's password from
//     one place is stopped quickly, and locks out only that place;
//   - the user across all addresses, 20 free failures: a distributed guess at one account
//     is stopped too, while one attacker alone cannot lock the user out everywhere;
//   - the client address across users, 100 free failures: password spraying from one
//     address is stopped, while the many users behind one NAT or a shared egress do not
//     lock each other out with a few typos.
//
// A client address is an IPv4 address or the /64 of an IPv6 one (an end site usually
// owns a whole /64, so its addresses are one client).
//
// The user keys are counted before the password is checked (reserveAttempt), atomically in
// storage, and reset after a success; so parallel attempts cannot all pass one check: each
// takes a numbered slot, and only the slots within the budget (or the one attempt allowed
// after a delay) are verified. The address key is read before and counted after a failure
// only, so the successful logins of many users behind one address do not use it up; its
// overshoot under concurrency is bounded by maxConcurrentVerifications.
const (
	throttleWindow   = 15 * time.Minute
	freePairFailures = 5
	freeUserFailures = 20
	freeIPFailures   = 100
	maxThrottleDelay = 15 * time.Minute
	// freeSignups is how many sign-ups one client address may attempt within the window.
	freeSignups = 10
)

type throttleKey struct {
	key  string
	free int
	// reserve counts every attempt before it is checked; the count is reset by a success.
	reserve bool
}

func loginThrottleKeys(connection, username, ip string) []throttleKey {
	user := connection + ":" + strings.ToLower(username)
	return []throttleKey{
		{key: "user-ip:" + user + ":" + ip, free: freePairFailures, reserve: true},
		{key: "user:" + user, free: freeUserFailures, reserve: true},
		addressThrottleKey(ip),
	}
}

// addressThrottleKey is the client address's key across users and connections, the one a
// failure counts on when it names no user (a passkey answer of no known credential).
func addressThrottleKey(ip string) throttleKey {
	return throttleKey{key: "ip:" + ip, free: freeIPFailures}
}

// throttleUsername is the name a login attempt is throttled on: the account the connection
// resolves the typed name to, when it can tell (a directory matches "ＡＬＩＣＥ", "ALİCE"
// and "alice" as one entry, which no local folding reproduces exactly), and otherwise the
// typed name in NFKC, case-folded for a directory. Every spelling of one account then
// spends one budget. A directory that cannot be asked leaves the typed name; the login
// fails on the same error a moment later.
func (s *Server) throttleUsername(ctx context.Context, st *state, conn config.Connection, username string) string {
	if conn.Type != config.ConnectionLDAP {
		return username
	}
	fold := func(name string) string { return cases.Fold().String(norm.NFKC.String(name)) }
	c, err := s.connector(ctx, st, conn)
	if err != nil {
		return fold(username)
	}
	resolver, ok := c.(connector.UsernameResolver)
	if !ok {
		return fold(username)
	}
	if canonical, found, err := resolver.ResolveUsername(ctx, username); err == nil && found {
		return fold(canonical)
	}
	return fold(username)
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

// waitSeconds is a wait as the user reads it: whole seconds, at least one.
func waitSeconds(wait time.Duration) int { return max(1, int(math.Ceil(wait.Seconds()))) }

// throttledCheck runs check as one attempt under the login throttle of keys: it waits for
// no one (a throttled attempt is not checked and gets throttled true with the wait), counts
// the attempt before the check, and records a failure or resets the keys after it.
func (s *Server) throttledCheck(ctx context.Context, keys []throttleKey, check func() (bool, error)) (passed, throttled bool, wait time.Duration, err error) {
	wait, before, err := s.throttleWait(ctx, keys)
	if err != nil {
		return false, false, 0, err
	}
	if wait > 0 {
		return false, true, wait, nil
	}
	if ok, err := s.reserveAttempt(ctx, keys, before); err != nil || !ok {
		return false, err == nil, time.Second, err
	}
	if passed, err = check(); err != nil {
		return false, false, 0, err
	}
	if !passed {
		return false, false, 0, s.recordLoginFailure(ctx, keys)
	}
	return true, false, 0, s.resetThrottle(ctx, keys)
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

// clientIP is the throttling key of the client a request came from: the peer address,
// or, when the peer is one of the config's trusted proxies, the right-most address of
// X-Forwarded-For that is not a trusted proxy (each proxy appends the address it got the
// request from, so entries left of the first untrusted one may be forged by the client).
func (s *Server) clientIP(r *http.Request) string {
	trusted := s.state.Load().trustedProxies
	client, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := client.Addr().Unmap()
	if isTrustedProxy(trusted, addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a garbled entry: keep the last address a trusted proxy vouched for
			}
			addr = hop.Unmap()
			if !isTrustedProxy(trusted, addr) {
				break
			}
		}
	}
	return addressKey(addr)
}

func isTrustedProxy(trusted []netip.Prefix, addr netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// addressKey is an IPv4 address, or the /64 network of an IPv6 one.
func addressKey(addr netip.Addr) string {
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.WithZone("").Prefix(64)
	if err != nil {
		return addr.String()
	}
	return p.String()
}

// parseTrustedProxies reads the config's trusted proxies: CIDRs or single addresses.
func parseTrustedProxies(in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, v := range in {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("trustedProxies: %q is neither a CIDR nor an address", v)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
