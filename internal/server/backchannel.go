package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/storage"
)

// OpenID Connect Back-Channel Logout 1.0 (with errata set 1): when a central session ends,
// every client that received tokens in it and registered a backchannelLogoutURI gets a
// signed logout token by a direct POST. Delivery is asynchronous: the user's response never
// waits for an application, however slow or dead.
//
// Each attempt mints a fresh token (new jti, iat and a two-minute exp), because a retry
// minutes later with the first token would arrive expired. Receivers that keep a jti
// replay cache therefore never refuse a retry, and one that processes two attempts only
// ends sessions that are already gone.

// backchannelLogoutEvent is the only member of a logout token's events claim.
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenLifetime is the spec's recommendation: "preferably at most two minutes".
const logoutTokenLifetime = 2 * time.Minute

// Outcomes of a delivery, the values of hallpass_backchannel_logout_total{result}.
const (
	deliveryDelivered = "delivered" // the application answered 2xx
	deliveryRejected  = "rejected"  // it answered 4xx: retrying the same request cannot help
	deliveryFailed    = "failed"    // no 2xx within the retry window
	deliveryDropped   = "dropped"   // the queue was full or the server was shutting down
)

// Reasons a session ends, logged with each delivery.
const (
	endLogout   = "logout"   // the user signed out (RP-initiated or /v2/logout)
	endExpired  = "expired"  // idle or absolute lifetime reached, found by the sweeper
	endReplaced = "replaced" // a new login in the same browser took its place
	endRevoked  = "revoked"  // an administrator revoked the user's sessions
)

// BackchannelOptions tune back-channel logout delivery. Zero fields take the defaults.
type BackchannelOptions struct {
	// Workers is how many deliveries run at once; default 4.
	Workers int
	// QueueSize bounds the deliveries waiting for a worker; default 1024. When it is full
	// a new delivery is dropped (and counted) rather than slowing down a logout. Those of
	// the sweeper that ends expired sessions take at most half of it, and wait for room.
	QueueSize int
	// RequestTimeout bounds one POST; default 5s.
	RequestTimeout time.Duration
	// InitialBackoff is the wait before the first retry, doubled on every further retry up
	// to MaxBackoff; defaults 1s and 30s.
	InitialBackoff, MaxBackoff time.Duration
	// RetryWindow bounds the time from the first attempt to the last; default 5m.
	RetryWindow time.Duration
	// HTTPClient sends the requests; default a client that follows no redirects, since a
	// receiver that redirects is misconfigured and the token must not go elsewhere.
	HTTPClient *http.Client
}

// WithBackchannelOptions tunes back-channel logout delivery.
func WithBackchannelOptions(o BackchannelOptions) Option {
	return func(s *Server) { s.backchannel.opts = o }
}

func (o *BackchannelOptions) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	def(&o.RequestTimeout, 5*time.Second)
	def(&o.InitialBackoff, time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.RetryWindow, 5*time.Minute)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// logoutDelivery is one logout token to send to one client.
type logoutDelivery struct {
	clientID string
	uri      string
	sid      string
	subject  string
	reason   string
	attempt  int
	// paced marks a delivery of the sweeper, which holds one of the queue's paced places
	// until a worker takes it.
	paced bool
	// deadline ends the retries (real time: it bounds real work, whatever the test clock).
	deadline time.Time
}

// backchannel is the bounded queue and worker pool that delivers logout tokens.
type backchannel struct {
	opts  BackchannelOptions
	queue chan logoutDelivery
	// paced holds a token per delivery of the sweeper in the queue: at most half the queue,
	// so that a mass expiry leaves room for the logouts of users meanwhile.
	paced chan struct{}
	// ctx ends in-flight requests when Shutdown gives up waiting.
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	pending int           // accepted deliveries without a final outcome, retries included
	idle    chan struct{} // closed when pending drops to 0, for Shutdown
	timers  map[*time.Timer]struct{}
}

func newBackchannel() *backchannel { return &backchannel{timers: map[*time.Timer]struct{}{}} }

// start launches the workers once the options are known.
func (b *backchannel) start(s *Server) {
	b.opts.setDefaults()
	b.queue = make(chan logoutDelivery, b.opts.QueueSize)
	b.paced = make(chan struct{}, max(b.opts.QueueSize/2, 1))
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for range b.opts.Workers {
		b.workers.Add(1)
		go func() {
			defer b.workers.Done()
			for {
				select {
				case <-b.ctx.Done():
					return
				case d := <-b.queue:
					if d.paced {
						<-b.paced
						d.paced = false
					}
					s.deliverLogoutToken(b.ctx, d)
				}
			}
		}()
	}
}

// enqueue hands a delivery to the workers without ever blocking the caller.
func (b *backchannel) enqueue(d logoutDelivery, retry bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		if retry {
			b.doneLocked()
		}
		return false
	}
	select {
	case b.queue <- d:
		if !retry {
			b.pending++
		}
		return true
	default:
		if retry {
			b.doneLocked()
		}
		return false
	}
}

// enqueuePaced hands a delivery of the sweeper to the workers, waiting for one of the
// queue's paced places rather than dropping it: ending expired sessions goes no faster
// than their logout tokens are sent. It gives up only when Shutdown does; the caller's
// context does not count, since the session it announces has already ended in storage and
// would otherwise never be announced.
func (b *backchannel) enqueuePaced(d logoutDelivery) bool {
	select {
	case b.paced <- struct{}{}:
	case <-b.ctx.Done():
		return false
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.paced
		return false
	}
	b.pending++
	b.mu.Unlock()
	d.paced = true
	select {
	case b.queue <- d:
		return true
	case <-b.ctx.Done():
	}
	<-b.paced
	b.done()
	return false
}

// hold counts work that may still announce logouts (a sweep) as pending, so that Shutdown
// waits for it as for a delivery; it returns false once the server is shutting down. Each
// hold that returns true is ended by done.
func (b *backchannel) hold() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.pending++
	return true
}

// retryAfter re-enqueues d after delay. The wait holds no worker, so a dead client's
// retries never hold up the deliveries of others.
func (b *backchannel) retryAfter(d logoutDelivery, delay time.Duration, onDrop func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.doneLocked()
		onDrop()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		b.mu.Lock()
		delete(b.timers, t)
		b.mu.Unlock()
		if !b.enqueue(d, true) {
			onDrop()
		}
	})
	b.timers[t] = struct{}{}
}

func (b *backchannel) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.doneLocked()
}

func (b *backchannel) doneLocked() {
	b.pending--
	if b.pending == 0 && b.idle != nil {
		close(b.idle)
		b.idle = nil
	}
}

// Shutdown stops accepting logout deliveries, waits until the pending ones (retries
// included) have an outcome and a sweep in progress has announced the sessions it ended, or
// until ctx ends, then abandons the rest. Call it after the HTTP server has stopped and the
// context of RunGarbageCollection has ended, so the logouts served until then are still
// announced.
func (s *Server) Shutdown(ctx context.Context) error {
	b := s.backchannel
	b.mu.Lock()
	var wait chan struct{}
	if b.pending > 0 {
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		wait = b.idle
	}
	b.mu.Unlock()
	var err error
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			err = fmt.Errorf("wait for back-channel logout deliveries: %w", ctx.Err())
		}
	}
	b.mu.Lock()
	b.closed = true
	for t := range b.timers {
		if t.Stop() {
			b.doneLocked()
		}
	}
	clear(b.timers)
	b.mu.Unlock()
	b.cancel()
	b.workers.Wait()
	return errors.Join(err, s.waitForMail(ctx))
}

// announceLogout queues a logout token for every client of the ended session that
// registered a back-channel URI, as the config being served now knows them. A paced
// announcement (the sweeper's) waits for room in the queue instead of being dropped.
func (s *Server) announceLogout(ctx context.Context, st *state, sess storage.Session, reason string, paced bool) {
	for _, id := range sess.Clients {
		c, ok := st.cfg.Client(id)
		if !ok || c.BackchannelLogoutURI == "" {
			continue
		}
		d := logoutDelivery{clientID: id, uri: c.BackchannelLogoutURI, sid: sess.SID, subject: sess.Claims.Subject,
			reason: reason, deadline: time.Now().Add(s.backchannel.opts.RetryWindow)}
		var queued bool
		if paced {
			queued = s.backchannel.enqueuePaced(d)
		} else {
			queued = s.backchannel.enqueue(d, false)
		}
		if !queued {
			s.metrics.backchannel.WithLabelValues(deliveryDropped).Inc()
			s.logger.WarnContext(ctx, "back-channel logout dropped: queue full or shutting down", "client", id, "sid", sess.SID, "reason", reason)
		}
	}
}

// deliverLogoutToken makes one attempt and either records the outcome or schedules a retry.
func (s *Server) deliverLogoutToken(ctx context.Context, d logoutDelivery) {
	d.attempt++
	status, err := s.postLogoutToken(ctx, d)
	log := s.logger.With("client", d.clientID, "sid", d.sid, "reason", d.reason, "attempt", d.attempt)
	final := func(result string) {
		s.metrics.backchannel.WithLabelValues(result).Inc()
		s.backchannel.done()
	}
	switch {
	case err == nil && status >= 200 && status < 300:
		log.InfoContext(ctx, "back-channel logout delivered", "status", status)
		final(deliveryDelivered)
		return
	case err == nil && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		log.WarnContext(ctx, "back-channel logout rejected by the application", "status", status)
		final(deliveryRejected)
		return
	}
	delay := backoff(s.backchannel.opts.InitialBackoff, s.backchannel.opts.MaxBackoff, d.attempt)
	if ctx.Err() != nil || time.Now().Add(delay).After(d.deadline) {
		log.WarnContext(ctx, "back-channel logout failed; giving up", "status", status, "err", err)
		final(deliveryFailed)
		return
	}
	log.InfoContext(ctx, "back-channel logout attempt failed; retrying", "status", status, "err", err, "retryIn", delay)
	s.backchannel.retryAfter(d, delay, func() {
		s.metrics.backchannel.WithLabelValues(deliveryDropped).Inc()
		log.Warn("back-channel logout retry dropped: queue full or shutting down")
	})
}

// backoff is exponential with jitter: a random wait in [b/2, b) where b doubles per attempt,
// so that many receivers failing together do not retry in lockstep.
func backoff(initial, maxBackoff time.Duration, attempt int) time.Duration {
	b := initial
	for i := 1; i < attempt && b < maxBackoff; i++ {
		b *= 2
	}
	b = min(b, maxBackoff)
	return b/2 + rand.N(b/2+1) //nolint:gosec // G404: jitter of a retry, not a secret
}

// postLogoutToken sends one freshly minted logout token and returns the response status.
func (s *Server) postLogoutToken(ctx context.Context, d logoutDelivery) (int, error) {
	st := s.state.Load()
	token, err := s.mintLogoutToken(st, d.clientID, d.sid, d.subject)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.backchannel.opts.RequestTimeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.uri, strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build back-channel logout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.backchannel.opts.HTTPClient.Do(req)
	if err != nil {
		// The URL error names the receiver's URI, never the token: it is in the body.
		return 0, fmt.Errorf("post back-channel logout: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, nil
}

// logoutTokenClaims are the claims of a logout token (Back-Channel Logout §2.4). It has no
// nonce: the spec prohibits one, so that a logout token can never pass as an ID token.
type logoutTokenClaims struct {
	Issuer   string                    `json:"iss"`
	Subject  string                    `json:"sub,omitempty"`
	Audience string                    `json:"aud"`
	IssuedAt int64                     `json:"iat"`
	Expiry   int64                     `json:"exp"`
	ID       string                    `json:"jti"`
	SID      string                    `json:"sid,omitempty"`
	Events   map[string]map[string]any `json:"events"`
}

func (s *Server) mintLogoutToken(st *state, clientID, sid, subject string) (string, error) {
	if sid == "" && subject == "" {
		return "", errors.New("mint logout token: a logout token needs sid or sub")
	}
	jti, err := config.RandomToken(16)
	if err != nil {
		return "", fmt.Errorf("mint logout token: %w", err)
	}
	now := s.now()
	// Signed like the client's ID tokens, the algorithm its verifier is set up for.
	client, _ := st.cfg.Client(clientID)
	tok, err := signJWT(st.keys.forClient(client).logout, logoutTokenClaims{
		Issuer:   st.cfg.Issuer,
		Subject:  subject,
		Audience: clientID,
		IssuedAt: now.Unix(),
		Expiry:   now.Add(logoutTokenLifetime).Unix(),
		ID:       jti,
		SID:      sid,
		Events:   map[string]map[string]any{backchannelLogoutEvent: {}},
	})
	if err != nil {
		return "", fmt.Errorf("mint logout token: %w", err)
	}
	return tok, nil
}
