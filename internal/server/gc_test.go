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
