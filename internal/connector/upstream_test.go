package connector

import (
	"errors"
	"testing"
)

func TestLogoutURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		upstream []byte
		// want is the URL, or "" when wantErr says why there is none.
		want    string
		wantErr error
	}{
		{"a login without upstream information has nothing to end", nil, "", ErrNoUpstreamLogout},
		{"an upstream without an end-session endpoint has nothing to end",
			Upstream{IDTokenHint: "t"}.Marshal(), "", ErrNoUpstreamLogout},
		{"the end-session endpoint gets the hint, the client ID, the return and the state",
			Upstream{EndSessionURL: "https://idp.example/logout?x=1", IDTokenHint: "t", ClientID: "hallpass"}.Marshal(),
			"https://idp.example/logout?client_id=hallpass&id_token_hint=t&post_logout_redirect_uri=https%3A%2F%2Fsso.example%2Freturn&state=s&x=1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := LogoutURL(tc.upstream, "https://sso.example/return", "s")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != nil && got.String() != tc.want || got == nil && tc.want != "" {
				t.Errorf("URL = %v, want %q", got, tc.want)
			}
		})
	}
	t.Run("an end-session endpoint that is not http(s) is refused", func(t *testing.T) {
		t.Parallel()
		if _, err := LogoutURL([]byte(`{"endSessionURL":"javascript:alert(1)"}`), "", ""); err == nil || errors.Is(err, ErrNoUpstreamLogout) {
			t.Errorf("err = %v, want a refusal of the URL", err)
		}
	})
}
