package server

import "github.com/prometheus/client_golang/prometheus"

// metrics count what an operator of the service watches: logins by outcome, silent
// authorizations by outcome, and token requests by grant and outcome.
type metrics struct {
	logins        *prometheus.CounterVec
	authorization *prometheus.CounterVec
	tokens        *prometheus.CounterVec
	backchannel   *prometheus.CounterVec
	factors       *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_logins_total",
			Help: "Password logins by result: success, failure (wrong credentials), throttled or busy (no free password-hashing slot).",
		}, []string{"result"}),
		authorization: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_authorizations_total",
			Help: "Authorization requests by outcome: sso (answered from the central session), login (sent to the login page) or the OAuth error code.",
		}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_token_requests_total",
			Help: "Token endpoint requests by grant type and result (ok or the OAuth error code).",
		}, []string{"grant", "result"}),
		backchannel: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_backchannel_logout_total",
			Help: "Back-channel logout tokens by final outcome: delivered (2xx), rejected (4xx), failed (no 2xx within the retry window) or dropped (queue full or shutting down).",
		}, []string{"result"}),
		factors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallpass_second_factor_events_total",
			Help: "Second-factor audit events by event (enrolled, removed, verified, failed, replay_refused, challenge_refused, counter_regression_refused, throttled, recovery_code_used, recovery_codes_generated, enrolment_deferred) and factor kind (totp, webauthn, recovery for recovery codes, none for a deferred enrolment).",
		}, []string{"event", "factor"}),
	}
}

// WithMetricsRegisterer registers the server's metrics with reg (they are kept but not
// exported when this option is absent).
func WithMetricsRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) {
		reg.MustRegister(s.metrics.logins, s.metrics.authorization, s.metrics.tokens, s.metrics.backchannel, s.metrics.factors)
	}
}
