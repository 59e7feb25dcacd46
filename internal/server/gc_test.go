package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/hallpass/hallpass/internal/digest"
	"github.com/hallpass/hallpass/internal/server"
	"github.com/hallpass/hallpass/internal/storage"
)

// bulkWriter is what both SQL backends offer to store a backlog in a few transactions.
type bulkWriter interface {
	CreateSessions(ctx context.Context, sessions []storage.Session) error
	CreateAccessTokens(ctx context.Context, tokens []storage.AccessToken) error
}

// sidReceiver is an application's back-channel endpoint that records the sid of every
// logout token it gets (unverified: verification is tested with the logout flows).
type sidReceiver struct {
	url  string
	mu   sync.Mutex
	sids map[string]int
}

func newSIDReceiver(t *testing.T) *sidReceiver {
	t.Helper()
	rec := &sidReceiver{sids: map[string]int{}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		var claims struct {
			SID string `json:"sid"`
		}
		jws, err := jose.ParseSignedCompact(form.Get("logout_token"), []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
		if err == nil {
			err = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims)
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.sids[claims.SID]++
		rec.mu.Unlock()
	}))
	t.Cleanup(ts.Close)
	rec.url = ts.URL + "/backchannel-logout"
	return rec
}

func (rec *sidReceiver) received() map[string]int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return maps.Clone(rec.sids)
}

// storeExpiredBacklog stores n sessions that expired an hour ago, the first announced of
// them earlier and with app1 as a client, and as many expired access tokens; it returns the sids of the
// sessions app1 must be told about and the tokens.
func storeExpiredBacklog(t *testing.T, e *env, n, announced int) (map[string]int, []storage.AccessToken) {
	t.Helper()
	bulk, ok := e.store.(bulkWriter)
	if !ok {
		t.Fatal("the test storage has no bulk writes")
	}
	now := e.clock.Now()
	sids := map[string]int{}
	sessions := make([]storage.Session, 0, n)
	tokens := make([]storage.AccessToken, 0, n)
	for i := range n {
		name := fmt.Sprint("expired-", i)
		sess := storage.Session{IDHash: digest.Of(name), SID: "sid-" + name, Connection: "people",
			Claims: storage.Claims{Subject: "people|" + name}, AuthTime: now.Add(-73 * time.Hour), AMR: []string{"pwd"},
			Reusable: true, CreatedAt: now.Add(-73 * time.Hour), LastActivity: now.Add(-73 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
		if i < announced {
			// Earliest expiry first: these come in the first batches, together.
			sess.ExpiresAt = now.Add(-2 * time.Hour)
			sess.Clients = []string{"app1"}
			sids[sess.SID] = 1
		}
		sessions = append(sessions, sess)
		tokens = append(tokens, storage.AccessToken{TokenHash: digest.Of("token-" + name), ClientID: "app1",
			Claims: sess.Claims, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	}
	if err := bulk.CreateSessions(t.Context(), sessions); err != nil {
		t.Fatalf("store expired sessions: %v", err)
	}
	if err := bulk.CreateAccessTokens(t.Context(), tokens); err != nil {
		t.Fatalf("store expired access tokens: %v", err)
	}
	return sids, tokens
}

// A million sessions created in one day expire together a day later. Before, the sweeper
// ended at most 5,000 of them per 5-minute run, and expired tokens and codes waited until
// it had ended them all. Now a run ends sessions for as long as it is given, collects the
// rest whatever is left, and every ended session's client still gets its logout token, even
// through a queue far smaller than the backlog.
func TestAMassExpiryEndsWithinARunAndTokensAreCollectedMeanwhile(t *testing.T) {
	const backlog, announced = 6000, 300 // more than a run used to end; more than the queue
	rec := newSIDReceiver(t)
	e := newEnvWithOptions(t, []server.Option{server.WithBackchannelOptions(server.BackchannelOptions{QueueSize: 16})},
		withBackchannel(map[string]string{"app1": rec.url}))
	alice := e.browser()
	e.rp("app2", "app2-secret").signIn(t, alice, "alice", alicePassword, oauthConnection("people"))
	wantSIDs, tokens := storeExpiredBacklog(t, e, backlog, announced)

	// A run whose time is up after one batch: the expired tokens go all the same.
	first := e.srv.CollectGarbage(t.Context(), 0)
	if first.SessionsEnded != 100 || !first.SessionsLeft {
		t.Errorf("a run of one batch ended %d sessions, left some: %v; want 100, true", first.SessionsEnded, first.SessionsLeft)
	}
	if first.RowsDeleted < backlog {
		t.Errorf("with a backlog of sessions, collection deleted %d rows, want the %d expired tokens", first.RowsDeleted, backlog)
	}
	if _, err := e.store.GetAccessToken(t.Context(), tokens[backlog-1].TokenHash); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("an expired token outlived the run: err = %v, want not found", err)
	}

	// One ordinary run ends the rest: more than the 5,000 a run used to end.
	second := e.srv.CollectGarbage(t.Context(), time.Minute)
	if second.SessionsEnded != backlog-100 || second.SessionsLeft {
		t.Errorf("the next run ended %d sessions, left some: %v; want %d, false", second.SessionsEnded, second.SessionsLeft, backlog-100)
	}
	if left, err := e.store.ListExpiredSessions(t.Context(), e.clock.Now(), 1); err != nil || len(left) != 0 {
		t.Errorf("expired sessions left after the runs: %d (err %v)", len(left), err)
	}
	if _, _, err := e.rp("app2", "app2-secret").silent(t, alice); err != "" {
		t.Errorf("alice's live session did not survive the sweep: %s", err)
	}

	e.drain(t)
	if d := cmp.Diff(wantSIDs, rec.received()); d != "" {
		t.Errorf("logout tokens app1 got per sid (-want +got):\n%s", d)
	}
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="dropped"}`, 0)
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="delivered"}`, announced)
}

// heldReceiver is a back-channel endpoint that holds every request until released, as a
// slow application does; inFlight counts the requests it holds.
type heldReceiver struct {
	url      string
	inFlight atomic.Int32
	received atomic.Int32
	release  chan struct{}
	// free releases every request held and every one to come.
	free func()
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	t.Helper()
	rec := &heldReceiver{release: make(chan struct{})}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rec.inFlight.Add(1)
		defer rec.inFlight.Add(-1)
		<-rec.release
		rec.received.Add(1)
	}))
	t.Cleanup(ts.Close)
	var once sync.Once
	rec.free = func() { once.Do(func() { close(rec.release) }) }
	t.Cleanup(rec.free) // runs before Close, which waits for the handlers
	rec.url = ts.URL + "/backchannel-logout"
	return rec
}

// While the sweeper waits for a slow application to take the logout tokens of a mass
// expiry, a user who signs out of another application still gets that application told:
// the sweeper never holds more than half of the back-channel queue.
func TestASignOutDuringAMassExpiryIsStillAnnounced(t *testing.T) {
	slow, fast := newHeldReceiver(t), newSIDReceiver(t)
	e := newEnvWithOptions(t, []server.Option{server.WithBackchannelOptions(server.BackchannelOptions{QueueSize: 8, RequestTimeout: time.Minute})},
		withBackchannel(map[string]string{"app1": slow.url, "app2": fast.url}))
	alice := e.browser()
	tok, idt := e.rp("app2", "app2-secret").signIn(t, alice, "alice", alicePassword, oauthConnection("people"))
	const backlog = 50
	storeExpiredBacklog(t, e, backlog, backlog)

	swept := make(chan server.GarbageReport, 1)
	go func() { swept <- e.srv.CollectGarbage(context.Background(), time.Minute) }()
	// Every worker holds one of the expired sessions' tokens; the sweeper then fills its
	// share of the queue and waits.
	for deadline := time.Now().Add(10 * time.Second); slow.inFlight.Load() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow application holds %d requests, want the 4 workers' own", slow.inFlight.Load())
		}
	}
	time.Sleep(200 * time.Millisecond)

	raw, _ := tok.Extra("id_token").(string)
	alice.get(e.issuer + "/oidc/logout?" + url.Values{"id_token_hint": {raw}}.Encode())
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="dropped"}`, 0)

	slow.free()
	if rep := <-swept; rep.SessionsEnded != backlog {
		t.Errorf("the sweep ended %d sessions, want %d", rep.SessionsEnded, backlog)
	}
	e.drain(t)
	if got := fast.received(); got[sidOf(t, idt)] != 1 {
		t.Errorf("app2 got logout tokens for %v, want one for alice's session", got)
	}
	if n := slow.received.Load(); n != backlog {
		t.Errorf("the slow application got %d logout tokens, want %d", n, backlog)
	}
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="dropped"}`, 0)
}

// A server stopped while the sweeper waits for a slow application still announces every
// session of the batch the sweeper had ended: those sessions are gone from storage, and a
// dropped token would leave their applications' sessions running.
func TestAServerStoppedDuringASweepAnnouncesTheSessionsItEnded(t *testing.T) {
	slow := newHeldReceiver(t)
	e := newEnvWithOptions(t, []server.Option{server.WithBackchannelOptions(server.BackchannelOptions{QueueSize: 8, RequestTimeout: time.Minute})},
		withBackchannel(map[string]string{"app1": slow.url}))
	const backlog = 50 // one batch
	storeExpiredBacklog(t, e, backlog, backlog)

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan server.GarbageReport, 1)
	go func() { swept <- e.srv.CollectGarbage(sweepCtx, time.Minute) }()
	for deadline := time.Now().Add(10 * time.Second); slow.inFlight.Load() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow application holds %d requests, want the 4 workers' own", slow.inFlight.Load())
		}
	}

	// The server is told to stop as `hallpass server` does on SIGTERM: the sweeper's context
	// ends, then Shutdown waits.
	stopSweep()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- e.srv.Shutdown(shutdownCtx) }()
	time.Sleep(200 * time.Millisecond)
	slow.free()

	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if rep := <-swept; rep.SessionsEnded != backlog {
		t.Errorf("the sweep ended %d sessions, want %d", rep.SessionsEnded, backlog)
	}
	if n := slow.received.Load(); n != backlog {
		t.Errorf("the application got %d logout tokens for the %d sessions ended before the stop", n, backlog)
	}
	assertMetric(t, e, `hallpass_backchannel_logout_total{result="dropped"}`, 0)
}
