package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/storage"
)

// sessionValid applies the two lifetimes (docs/architecture.md, "Lifetimes") with the policy
// of the config being served now, so shortening a lifetime takes effect on live sessions at
// their next use.
func sessionValid(sess storage.Session, pol config.Session, now time.Time) bool {
	return now.Before(sess.CreatedAt.Add(pol.AbsoluteLifetime.Duration)) &&
		now.Before(sess.LastActivity.Add(pol.IdleTimeout.Duration))
}

// sessionExpiry is the earlier of the two limits, what storage uses to collect the row.
func sessionExpiry(created, lastActivity time.Time, pol config.Session) time.Time {
	abs := created.Add(pol.AbsoluteLifetime.Duration)
	idle := lastActivity.Add(pol.IdleTimeout.Duration)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// currentSession returns the browser's session if its cookie names one that is still
// valid. ok is false (with a nil error) when there is none.
func (s *Server) currentSession(ctx context.Context, r *http.Request, st *state) (sess storage.Session, ok bool, err error) {
	sess, ok, err = s.sessionByID(ctx, st.cookies.value(r, sessionCookie))
	if err != nil || !ok || !sessionValid(sess, st.cfg.Session, s.now()) {
		return storage.Session{}, false, err
	}
	return sess, true, nil
}

// sessionByID loads the session a browser's session ID (a cookie's value) names, valid or
// not. ok is false (with a nil error) when there is none.
func (s *Server) sessionByID(ctx context.Context, id string) (sess storage.Session, ok bool, err error) {
	if id == "" {
		return storage.Session{}, false, nil
	}
	sess, err = s.store.GetSession(ctx, digest.Of(id))
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Session{}, false, nil
	}
	if err != nil {
		return storage.Session{}, false, fmt.Errorf("load session: %w", err)
	}
	return sess, true, nil
}

// activityResolution is how old a session's recorded activity may be before a use of the
// session records it again: a minute, or a hundredth of the idle timeout when that is
// shorter. Without it every silent login would write the session; with it the idle timeout
// runs out at most that much early (ADR 0009).
func activityResolution(pol config.Session) time.Duration {
	return min(time.Minute, pol.IdleTimeout.Duration/100)
}

// useSession records an authorization request that used the session: it extends only the
// idle timer (never the absolute one) and adds the client to the session's clients. A
// session that already lists the client and whose activity is recent is not written.
func (s *Server) useSession(ctx context.Context, st *state, sess storage.Session, clientID string) (storage.Session, error) {
	now := s.now()
	if slices.Contains(sess.Clients, clientID) && now.Sub(sess.LastActivity) < activityResolution(st.cfg.Session) {
		return sess, nil
	}
	sess, err := s.store.UpdateSession(ctx, sess.IDHash, func(sess storage.Session) (storage.Session, error) {
		if !sessionValid(sess, st.cfg.Session, now) {
			return sess, errSessionEnded
		}
		sess.LastActivity = now
		sess.ExpiresAt = sessionExpiry(sess.CreatedAt, now, st.cfg.Session)
		if !slices.Contains(sess.Clients, clientID) {
			sess.Clients = append(sess.Clients, clientID)
			slices.Sort(sess.Clients)
		}
		return sess, nil
	})
	if err != nil {
		return storage.Session{}, fmt.Errorf("record session activity: %w", err)
	}
	return sess, nil
}

var errSessionEnded = errors.New("session ended")

const maxUserAgentLen = 256

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// newSession is what a successful login produces.
type newSession struct {
	// client is the application the user signed in to: the session's first client.
	client     string
	connection string
	claims     storage.Claims
	amr        []string
	// mfaAt is when the second factor was presented, if there was one.
	mfaAt    time.Time
	reusable bool
	// upstream is the connector's logout information (federated logout), if any.
	upstream []byte
}

// startSession stores a new central session with a fresh random ID and sets its cookie,
// ending the session the browser had before, so a login never keeps an ID that someone
// else may have planted (session fixation).
//
// A login through a client with singleSignOn off creates a non-reusable session. It never
// takes the session cookie, which names the SSO session the user's other applications rely
// on; it is tied to the browser in a cookie of its own (tieSession), so that signing out
// in this browser ends it too.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state, ns newSession) (storage.Session, error) {
	now := s.now()
	id, err := config.RandomToken(32)
	if err != nil {
		return storage.Session{}, err
	}
	sid, err := config.RandomToken(16)
	if err != nil {
		return storage.Session{}, err
	}
	sess := storage.Session{
		IDHash:     digest.Of(id),
		SID:        sid,
		Connection: ns.connection,
		Claims:     ns.claims,
		AuthTime:   now,
		AMR:        ns.amr,
		MFAAt:      ns.mfaAt,
		// Kept to show the user where each of their sessions started; bounded, as it is
		// whatever the browser sent.
		UserAgent:     truncate(r.UserAgent(), maxUserAgentLen),
		ClientAddress: s.clientIP(r),
		Reusable:      ns.reusable,
		Upstream:      ns.upstream,
		CreatedAt:     now,
		LastActivity:  now,
		ExpiresAt:     sessionExpiry(now, now, st.cfg.Session),
		Clients:       []string{ns.client},
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return storage.Session{}, fmt.Errorf("create session: %w", err)
	}
	if !ns.reusable {
		return sess, s.tieSession(ctx, w, r, st, id, sess)
	}
	if old := st.cookies.value(r, sessionCookie); old != "" {
		// The replaced session ends like any other: its tokens are revoked and its clients
		// get a logout token, so no application keeps a user the central session lost.
		if err := s.endReplacedSession(ctx, st, digest.Of(old)); err != nil {
			return storage.Session{}, err
		}
	}
	st.cookies.set(w, sessionCookie, id, sess.CreatedAt.Add(st.cfg.Session.AbsoluteLifetime.Duration))
	return sess, nil
}

// A browser holds at most maxTiedSessions sessions of clients with single sign-on off; a
// login beyond that ends the oldest, so none outlives the browser's reach.
const maxTiedSessions = 8

// tiedSessionIDs returns the IDs of the non-reusable sessions the browser holds, oldest
// first. Only well-formed IDs count, at most maxTiedSessions of them.
func tiedSessionIDs(r *http.Request, st *state) []string {
	var ids []string
	for id := range strings.SplitSeq(st.cookies.value(r, tiedSessionsCookie), ".") {
		if len(id) == 43 && len(ids) < maxTiedSessions {
			ids = append(ids, id)
		}
	}
	return ids
}

// tieSession adds the session id (of a client with single sign-on off) to the browser's
// tied sessions, ending the oldest one when the browser already holds the most it may.
func (s *Server) tieSession(ctx context.Context, w http.ResponseWriter, r *http.Request, st *state, id string, sess storage.Session) error {
	ids := append(tiedSessionIDs(r, st), id)
	for len(ids) > maxTiedSessions {
		if err := s.endReplacedSession(ctx, st, digest.Of(ids[0])); err != nil {
			return err
		}
		ids = ids[1:]
	}
	st.cookies.set(w, tiedSessionsCookie, strings.Join(ids, "."), sess.CreatedAt.Add(st.cfg.Session.AbsoluteLifetime.Duration))
	return nil
}
